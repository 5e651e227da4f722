"""Runtime fault injection (SPEC §8.3, issue 7 acceptance 5): each fault set through the admin
socket is seen on the real surfaces (curl for REST, grpcio for A2A, the worker's supervisor),
in `status`, in /metrics and in the logs, and is gone after `fault clear`."""
import http.client
import os
import re
import shutil
import signal
import threading
import time
import unittest

import grpc

from a2a_client import Client
from adminproto import AdminError, call
from pardtest import SLOW, Pard, PardTestCase, poll
from test_a2a import code_of, example
from test_exec_agent import make_package as exec_package


def admin(p, cmd, args=None):
    """The response of one admin request, once pard's socket answers."""
    poll(lambda: os.path.exists(p.admin_socket), 10, what="the admin socket")
    return call(p.admin_socket, cmd, args)


def ok(p, cmd, args=None):
    r = admin(p, cmd, args)
    if not r.get("ok"):
        raise AssertionError("%s %r failed: %r" % (cmd, args, r.get("error")))
    return r.get("result")


def fault_set(p, name, value=None, probability=None):
    args = {"name": name}
    if value is not None:
        args["value"] = str(value)
    if probability is not None:
        args["probability"] = probability
    return ok(p, "fault set", args)


def status_faults(p):
    """{name: entry} of the runtime faults `status` shows."""
    return {f["name"]: f for f in ok(p, "status")["faults"]["runtime"]}


def active_metric(p, name):
    text = p.get("/metrics").body.decode()
    m = re.search(r'^par_fault_active\{fault="%s"\} (\S+)$' % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def injected_metric(p, name):
    text = p.get("/metrics").body.decode()
    m = re.search(r'^par_fault_injected_total\{fault="%s"\} (\S+)$' % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def timed_get(p, path, **kw):
    t0 = time.monotonic()
    r = p.get(path, **kw)
    return r, time.monotonic() - t0


class FaultsBase(PardTestCase):
    def start(self, package=None, env=None):
        p = Pard(self, package=package or example("echo-agent"), env=env).start()
        p.wait_ready(20)
        return p

    def client(self, p):
        c = Client(p.a2a_port)
        self.addCleanup(c.close)
        return c

    def drain_cleanly(self, p):
        """A clean exit: under ASan, LeakSanitizer then checks nothing a fault touched leaked."""
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(20), 0)

    def assert_set(self, p, name, value=None):
        """name shows in status (with its value), in /metrics and in a fault.set log line."""
        f = status_faults(p)
        self.assertIn(name, f)
        self.assertEqual(f[name]["value"], value)
        self.assertEqual(active_metric(p, name), 1)
        p.wait_event("fault.set", pred=lambda r: r.get("fault") == name)

    def clear_and_check(self, p, name=None):
        """`fault clear [name]`, then name is gone from status and /metrics and logged."""
        ok(p, "fault clear", {"name": name} if name else {})
        names = [name] if name else []
        for n in names:
            self.assertNotIn(n, status_faults(p))
            self.assertEqual(active_metric(p, n), 0)
            p.wait_event("fault.cleared", pred=lambda r: r.get("fault") == n)
        if not name:
            self.assertEqual(status_faults(p), {})


class RestFaults(FaultsBase):
    def test_rest_latency_delays_requests_but_not_livez_or_metrics(self):
        p = self.start()
        self.assertEqual(active_metric(p, "rest.latency"), 0)
        fault_set(p, "rest.latency", 1000)
        self.assert_set(p, "rest.latency", 1000)
        for path in ("/meta", "/health", "/api/hello"):
            r, took = timed_get(p, path, timeout=30)
            self.assertEqual(r.status, 200, (path, r.body))
            self.assertGreaterEqual(took, 1.0, path)
        # Liveness and the scrape that shows the fault do not wait.
        r, livez = timed_get(p, "/livez", timeout=30)
        self.assertEqual(r.status, 200)
        _, meta = timed_get(p, "/meta", timeout=30)
        self.assertLess(livez, meta)
        self.assertGreaterEqual(injected_metric(p, "rest.latency"), 4)
        self.clear_and_check(p, "rest.latency")
        self.drain_cleanly(p)

    def test_clearing_rest_latency_releases_waiting_requests(self):
        p = self.start()
        fault_set(p, "rest.latency", 600000)
        got = {}
        t = threading.Thread(target=lambda: got.update(r=p.get("/meta", timeout=120)))
        t.start()
        poll(lambda: (injected_metric(p, "rest.latency") or 0) >= 1, 10,
             what="the request to start waiting")
        self.clear_and_check(p, "rest.latency")
        t.join(60 * SLOW)
        self.assertFalse(t.is_alive(), "the delayed request was not released by the clear")
        self.assertEqual(got["r"].status, 200)
        self.drain_cleanly(p)

    def test_boot_and_runtime_latency_add_up(self):
        p = self.start(env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "rest.latency=300"})
        _, took = timed_get(p, "/meta")
        self.assertGreaterEqual(took, 0.3)
        fault_set(p, "rest.latency", 500)
        _, took = timed_get(p, "/meta", timeout=30)
        self.assertGreaterEqual(took, 0.8)
        self.clear_and_check(p, "rest.latency")
        _, took = timed_get(p, "/meta")
        self.assertGreaterEqual(took, 0.3)   # PAR_FAULTS stays as it was
        self.drain_cleanly(p)

    def test_rest_error_answers_the_status_but_health_tells_the_truth(self):
        p = self.start()
        fault_set(p, "rest.error", 503)
        self.assert_set(p, "rest.error", 503)
        for path, method, extra in (("/meta", "GET", None), ("/api/hello", "GET", None),
                                    ("/ping", "GET", None),
                                    ("/invocations", "POST", ["--data", "{}"])):
            r = p.get(path, method=method, extra=extra)
            self.assertEqual(r.status, 503, path)
            err = r.json()["error"]
            self.assertEqual(err["code"], "fault_injected", path)
            self.assertIn("rest.error", err["message"])
            self.assertTrue(r.header("x-request-id"))
        self.assertEqual(p.get("/health").status, 200)
        self.assertEqual(p.get("/agents/it-agent/health").status, 200)
        self.assertEqual(p.get("/livez").status, 200)
        self.assertEqual(p.get("/metrics").status, 200)
        # Without a value: 500.
        fault_set(p, "rest.error")
        self.assertEqual(status_faults(p)["rest.error"]["value"], 500)
        self.assertEqual(p.get("/meta").status, 500)
        self.clear_and_check(p, "rest.error")
        self.assertEqual(p.get("/meta").status, 200)
        self.drain_cleanly(p)

    def test_rest_error_probability_fails_some_requests(self):
        p = self.start()
        fault_set(p, "rest.error", 502, probability=0.5)
        self.assertEqual(status_faults(p)["rest.error"]["probability"], 0.5)
        statuses = []
        conn = http.client.HTTPConnection("127.0.0.1", p.rest_port, timeout=10 * SLOW)
        for _ in range(200):
            conn.request("GET", "/meta")
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        conn.close()
        errors = statuses.count(502)
        self.assertEqual(errors + statuses.count(200), 200, set(statuses))
        self.assertGreater(errors, 0)
        self.assertLess(errors, 200)
        self.assertEqual(injected_metric(p, "rest.error"), errors)
        self.clear_and_check(p)
        self.drain_cleanly(p)


class HealthFault(FaultsBase):
    def test_health_fail_and_ok(self):
        p = self.start()
        c = self.client(p)
        ok(p, "health", {"state": "fail"})
        self.assert_set(p, "health.fail")
        r = p.get("/health")
        self.assertEqual(r.status, 503)
        self.assertEqual((r.json()["state"], r.json()["fault"]), ("ready", "health.fail"))
        self.assertEqual(p.get("/ping").json()["status"], "Unhealthy")
        self.assertEqual(p.get("/agents/it-agent/health").status, 503)
        self.assertEqual(c.status_name(c.check().status), "NOT_SERVING")
        self.assertFalse(c.agent.Health(c.empty(), timeout=5).ok)
        self.assertEqual(p.get("/livez").status, 200)
        # Only health fails: the agent still answers.
        self.assertEqual(p.get("/meta").status, 200)
        self.assertTrue(c.invoke("echo", {"a": "b"}).success)
        ok(p, "health", {"state": "ok"})
        self.assertEqual(p.get("/health").status, 200)
        self.assertNotIn("fault", p.get("/health").json())
        self.assertEqual(c.status_name(c.check().status), "SERVING")
        self.assertEqual(status_faults(p), {})
        self.assertEqual(active_metric(p, "health.fail"), 0)
        # The same fault through `fault set` / `fault clear`.
        fault_set(p, "health.fail")
        self.assertEqual(p.get("/health").status, 503)
        self.clear_and_check(p, "health.fail")
        self.assertEqual(p.get("/health").status, 200)
        self.drain_cleanly(p)


class A2AFaults(FaultsBase):
    def test_a2a_latency(self):
        p = self.start()
        c = self.client(p)
        fault_set(p, "a2a.latency", 1000)
        self.assert_set(p, "a2a.latency", 1000)
        t0 = time.monotonic()
        r = c.invoke("echo", {"x": "1"}, timeout=30 * SLOW)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertTrue(r.success)
        # A deadline shorter than the latency: the client sees DEADLINE_EXCEEDED.
        code, _ = code_of(lambda: c.invoke("echo", timeout=0.3))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        # Health is not delayed: it runs on the completion-queue threads.
        self.assertEqual(c.status_name(c.check().status), "SERVING")
        self.clear_and_check(p, "a2a.latency")
        self.assertTrue(c.invoke("echo").success)
        self.drain_cleanly(p)

    def test_a2a_error(self):
        p = self.start()
        c = self.client(p)
        fault_set(p, "a2a.error")
        self.assert_set(p, "a2a.error", 14)
        code, e = code_of(lambda: c.invoke("echo", timeout=10))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn("a2a.error", e.details())
        code, _ = code_of(lambda: c.agent.DescribeCapabilities(c.empty(), timeout=10))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        fault_set(p, "a2a.error", 13)
        code, e = code_of(lambda: c.invoke("echo", timeout=10))
        self.assertEqual(code, grpc.StatusCode.INTERNAL)
        # The health service keeps the truth.
        self.assertEqual(c.status_name(c.check().status), "SERVING")
        self.assertTrue(c.agent.Health(c.empty(), timeout=5).ok)
        self.clear_and_check(p, "a2a.error")
        self.assertTrue(c.invoke("echo").success)
        self.drain_cleanly(p)


class HangFault(FaultsBase):
    def test_hang_holds_health_until_cleared_while_livez_answers(self):
        p = self.start()
        c = self.client(p)
        fault_set(p, "hang")
        self.assert_set(p, "hang")
        self.assertEqual(p.get("/livez").status, 200)
        r = p.get("/health", timeout=1)
        self.assertEqual((r.status, r.curl_rc), (0, 28), "/health answered during a hang")
        held = {}
        t = threading.Thread(target=lambda: held.update(r=p.get("/health", timeout=120)))
        t.start()
        code, _ = code_of(lambda: c.invoke("echo", timeout=1))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        poll(lambda: status_faults(p)["hang"]["waiting"] >= 1, 10, what="a held request")
        self.clear_and_check(p, "hang")
        t.join(60 * SLOW)
        self.assertFalse(t.is_alive(), "the held /health was not released by the clear")
        self.assertEqual(held["r"].status, 200)
        self.assertEqual(p.get("/health").status, 200)
        self.assertTrue(c.invoke("echo").success)
        self.drain_cleanly(p)

    def test_sigterm_during_a_hang_still_exits(self):
        p = self.start(env={"PAR_DRAIN_DELAY_SEC": "0"})
        fault_set(p, "hang")
        held = {}
        t = threading.Thread(target=lambda: held.update(r=p.get("/health", timeout=120)))
        t.start()
        poll(lambda: status_faults(p)["hang"]["waiting"] >= 1, 10, what="a held request")
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(30), 0)
        t.join(60 * SLOW)
        self.assertFalse(t.is_alive())
        # Released by the drain: it answered (503, draining) or its connection was closed.
        self.assertIn(held["r"].status, (503, 0))


    def test_sigterm_during_a_long_runtime_latency_still_exits(self):
        p = self.start(env={"PAR_DRAIN_DELAY_SEC": "0"})
        fault_set(p, "rest.latency", 600000)
        got = {}
        t = threading.Thread(target=lambda: got.update(r=p.get("/meta", timeout=120)))
        t.start()
        poll(lambda: (injected_metric(p, "rest.latency") or 0) >= 1, 10,
             what="the request to start waiting")
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(30), 0)
        t.join(60 * SLOW)
        self.assertFalse(t.is_alive())
        self.assertIn(got["r"].status, (200, 0))


class OneShotFaults(FaultsBase):
    def test_worker_kill_restarts_the_worker(self):
        tmp = __import__("tempfile").mkdtemp(prefix="exec-tmp-")
        self.addCleanup(shutil.rmtree, tmp, True)
        p = self.start(package=exec_package(self), env={"PATH": "/usr/bin:/bin", "TMPDIR": tmp})
        pid = p.wait_event("worker.ready")["pid"]
        ok(p, "fault set", {"name": "worker.kill"})
        ex = p.wait_event("worker.exited")
        self.assertEqual((ex["pid"], ex["signal"]), (pid, "SIGKILL"))
        self.assertEqual(p.get("/health").status, 503)
        self.assertEqual(p.wait_event("fault.worker.kill")["pid"], pid)
        again = p.wait_event("worker.ready", pred=lambda r: r["restarts"] == 1, timeout=15)
        self.assertNotEqual(again["pid"], pid)
        poll(lambda: p.get("/health").status == 200, 10, what="health 200 after the restart")
        m = re.search(r"^par_worker_restarts_total (\d+)", p.get("/metrics").body.decode(), re.M)
        self.assertEqual(int(m.group(1)), 1)
        self.assertEqual(injected_metric(p, "worker.kill"), 1)
        self.assertEqual(status_faults(p), {})   # one-shot: nothing stays set
        self.drain_cleanly(p)

    def test_worker_kill_without_a_worker_is_an_error(self):
        p = self.start()
        r = admin(p, "fault set", {"name": "worker.kill"})
        self.assertFalse(r["ok"])
        self.assertIn("no worker", r["error"]["message"])
        self.assertEqual(p.get("/health").status, 200)
        self.drain_cleanly(p)

    def test_crash_aborts_pard(self):
        p = Pard(self, package=example("echo-agent"),
                 wrapper=["prlimit", "--core=0"]).start()   # no core file left behind
        p.wait_ready(20)
        try:
            # pard may answer first (the answer cannot come after abort()).
            r = admin(p, "fault set", {"name": "crash"})
            self.assertTrue(r["ok"], r)
        except (AdminError, ConnectionError):
            pass
        self.assertEqual(p.wait_exit(20), -signal.SIGABRT)
        p.wait_event("fault.crash")


class Validation(FaultsBase):
    def test_bad_requests_get_clear_errors(self):
        p = self.start()
        names = ["health.fail", "rest.latency", "rest.error", "a2a.latency", "a2a.error",
                 "worker.kill", "crash", "hang"]
        r = admin(p, "fault set", {"name": "rest.latencyy", "value": "10"})
        self.assertFalse(r["ok"])
        for n in names:
            self.assertIn(n, r["error"]["message"])
        for args, words in (({"name": "rest.latency"}, "value"),
                            ({"name": "rest.latency", "value": "600001"}, "600001"),
                            ({"name": "rest.error", "value": "200"}, "400..599"),
                            ({"name": "a2a.error", "value": "0"}, "1..16"),
                            ({"name": "hang", "value": "5"}, "no value"),
                            ({"name": "rest.error", "probability": 0}, "probability"),
                            ({"name": "rest.error", "probability": 1.5}, "probability")):
            r = admin(p, "fault set", args)
            self.assertFalse(r["ok"], args)
            self.assertIn(words, r["error"]["message"], args)
        r = admin(p, "fault clear", {"name": "hang"})
        self.assertFalse(r["ok"])
        self.assertIn("not set", r["error"]["message"])
        self.assertEqual(status_faults(p), {})
        self.assertEqual(p.get("/health").status, 200)
        self.drain_cleanly(p)

    def test_clear_all(self):
        p = self.start()
        fault_set(p, "rest.latency", 10)
        fault_set(p, "a2a.error")
        fault_set(p, "health.fail")
        self.assertEqual(set(status_faults(p)), {"rest.latency", "a2a.error", "health.fail"})
        self.clear_and_check(p)
        for n in ("rest.latency", "a2a.error", "health.fail"):
            self.assertEqual(active_metric(p, n), 0)
        self.assertEqual(p.get("/health").status, 200)
        self.drain_cleanly(p)


if __name__ == "__main__":
    unittest.main()
