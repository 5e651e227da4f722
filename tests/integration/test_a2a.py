"""The A2A surface (SPEC §5, §6.3, §12): pixell.agent.AgentService and grpc.health.v1.Health
driven by Python grpcio with stubs generated from the repo's protos; deadlines, limits,
unknown methods, garbage, and the drain — in-flight calls finish, new ones are refused, a call
longer than the grace is cancelled and pard still exits 0 (no abort), a taken port is exit 13."""
import json
import os
import re
import shutil
import signal
import threading
import time
import unittest

import grpc

from a2a_client import Client
from pardtest import EXIT, SLOW, Pard, PardTestCase, poll

BUILD = os.environ.get("PAR_BUILD_DIR", "")
ECHO_ACTIONS = ["echo", "reverse", "upper", "sum", "fail", "sleep"]


def example(name):
    """The packed example agent (.apkg), else its directory in the build tree."""
    apkg = os.path.join(BUILD, "examples", name + ".apkg")
    return apkg if os.path.exists(apkg) else os.path.join(BUILD, "examples", name)


def code_of(fn):
    """The gRPC status code fn() fails with (OK when it does not fail), and the error."""
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e
    return grpc.StatusCode.OK, None


def grpc_in_flight(p):
    text = p.get("/metrics").body.decode()
    m = re.search(r"^par_grpc_in_flight (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


class A2ABase(PardTestCase):
    def start(self, package="echo-agent", env=None):
        p = Pard(self, package=example(package), env=env).start()
        p.wait_ready(20)
        return p

    def client(self, p, **kw):
        c = Client(p.a2a_port, **kw)
        self.addCleanup(c.close)
        return c


class AgentService(A2ABase):
    def test_every_method_and_field(self):
        p = self.start()
        c = self.client(p)
        now = time.time() * 1000

        h = c.agent.Health(c.empty(), timeout=5)
        self.assertEqual((h.ok, h.message), (True, "ready"))
        self.assertLess(abs(h.timestamp - now), 10000)

        pong = c.agent.Ping(c.empty(), timeout=5)
        self.assertEqual(pong.message, "pong")
        self.assertLess(abs(pong.timestamp - now), 10000)

        caps = c.agent.DescribeCapabilities(c.empty(), timeout=5)
        self.assertEqual(list(caps.methods), ECHO_ACTIONS)
        md = dict(caps.metadata)
        self.assertEqual(md["name"], "echo-agent")
        self.assertEqual(md["version"], "0.1.0")
        self.assertEqual(md["description"],
                         "Echoes, reverses, upper-cases and sums what it is sent")
        self.assertEqual(md["agentAppId"], "it-agent")

        r = c.invoke("echo", {"text": "hi", "n": "1"}, request_id="rid-42")
        self.assertTrue(r.success)
        self.assertEqual(json.loads(r.result), {"echo": {"text": "hi", "n": "1"}})
        self.assertEqual((r.error, r.request_id), ("", "rid-42"))
        self.assertGreaterEqual(r.duration_ms, 0)
        self.assertLess(r.duration_ms, 5000)

        r = c.invoke("sum", {"a": "2", "b": "40"})
        self.assertEqual(json.loads(r.result), {"sum": 42})
        r = c.invoke("upper", {"text": "grpc"})
        self.assertTrue(r.success)
        self.assertIn("GRPC", json.loads(r.result).values())

        # An agent error travels in-band, with status OK.
        r = c.invoke("fail")
        self.assertFalse(r.success)
        self.assertEqual((r.result, r.error), ("", "asked to fail"))

    def test_every_capability_is_invocable(self):
        p = self.start()
        c = self.client(p)
        for action in c.agent.DescribeCapabilities(c.empty(), timeout=5).methods:
            r = c.invoke(action, {"text": "x", "a": "1", "b": "2", "ms": "1"})
            self.assertTrue(r.success or r.error == "asked to fail", (action, r))
            if r.success:
                json.loads(r.result)   # JSON text, never a language-specific repr (§12.12)

    def test_unknown_action_is_in_band(self):
        p = self.start()
        c = self.client(p)
        r = c.invoke("no-such-action", request_id="u1")
        self.assertFalse(r.success)
        self.assertEqual(r.error, "No handler found for action: no-such-action")
        self.assertEqual((r.result, r.request_id), ("", "u1"))

    def test_missing_request_id_is_generated_and_unique(self):
        p = self.start()
        c = self.client(p)
        ids = [c.invoke("echo").request_id for _ in range(3)]
        for rid in ids:
            self.assertRegex(rid, r"^req_\d{13}_\d+$")
        self.assertEqual(len(set(ids)), 3)
        # The log line of the call carries the same id.
        p.wait_event("a2a.call", pred=lambda r: r.get("requestId") == ids[0])

    def test_duplicate_parameter_keeps_the_last_value(self):
        p = self.start()
        c = self.client(p)
        req = c.agent_pb2.ActionRequest(action="echo")
        # Two wire entries for one map key: a proto3 map keeps the last.
        e1 = c.agent_pb2.ActionRequest.ParametersEntry(key="k", value="first").SerializeToString()
        e2 = c.agent_pb2.ActionRequest.ParametersEntry(key="k", value="last").SerializeToString()
        raw = req.SerializeToString()
        for e in (e1, e2):   # field 2, length-delimited
            raw += b"\x12" + bytes([len(e)]) + e
        out = c.raw("/pixell.agent.AgentService/Invoke")(raw, timeout=5)
        r = c.agent_pb2.ActionResult.FromString(out)
        self.assertEqual(json.loads(r.result), {"echo": {"k": "last"}})

    def test_unknown_method_is_unimplemented(self):
        p = self.start()
        c = self.client(p)
        for method in ("/pixell.agent.AgentService/Nope", "/no.Such/Service"):
            code, _ = code_of(lambda: c.raw(method)(b"", timeout=5))
            self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED, method)
        p.wait_event("a2a.call", pred=lambda r: r.get("path") == "/no.Such/Service"
                     and r["grpcStatus"] == "UNIMPLEMENTED")

    def test_garbage_payload_is_invalid_argument(self):
        p = self.start()
        c = self.client(p)
        for method in ("/pixell.agent.AgentService/Invoke", "/pixell.agent.AgentService/Health",
                       "/pixell.agent.AgentService/Ping", "/grpc.health.v1.Health/Check"):
            code, _ = code_of(lambda: c.raw(method)(b"\xff\xff\xff\xff\xff", timeout=5))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, method)
        self.assertTrue(c.invoke("echo").success, "the server still serves after garbage")

    def test_oversized_message_is_resource_exhausted(self):
        p = self.start()
        c = self.client(p)
        code, _ = code_of(lambda: c.invoke("echo", {"x": "a" * (5 * 1024 * 1024)}))
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        # Just under the 4 MiB cap still goes through.
        r = c.invoke("echo", {"x": "b" * (3 * 1024 * 1024)}, timeout=20)
        self.assertEqual(len(json.loads(r.result)["echo"]["x"]), 3 * 1024 * 1024)

    def test_calls_are_logged_and_counted(self):
        p = self.start()
        c = self.client(p)
        c.invoke("echo", request_id="logged-1")
        c.agent.Ping(c.empty(), timeout=5)
        c.check()
        rec = p.wait_event("a2a.call", pred=lambda r: r.get("requestId") == "logged-1")
        self.assertEqual((rec["level"], rec["method"], rec["grpcStatus"], rec["action"]),
                         ("info", "pixell.agent.AgentService/Invoke", "OK", "echo"))
        self.assertIsInstance(rec["durationMs"], (int, float))
        ping = p.wait_event("a2a.call", pred=lambda r: r["method"].endswith("/Ping"))
        self.assertEqual(ping["level"], "debug")
        self.assertTrue(ping["requestId"])
        check = p.wait_event("a2a.call", pred=lambda r: r["method"].endswith("/Check"))
        self.assertEqual(check["level"], "debug")
        text = p.get("/metrics").body.decode()
        self.assertRegex(text, r'par_grpc_requests_total\{method="pixell.agent.AgentService/'
                               r'Invoke",code="OK"\} 1\b')
        self.assertRegex(text, r'par_grpc_request_duration_seconds_count\{method='
                               r'"pixell.agent.AgentService/Ping"\} 1\b')
        self.assertRegex(text, r"(?m)^par_grpc_in_flight 0$")

    def test_deadline_exceeded_and_the_next_call_works(self):
        p = self.start("slow-agent")
        c = self.client(p)
        t0 = time.monotonic()
        code, _ = code_of(lambda: c.invoke("slow", {"ms": "2000"}, timeout=0.1))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        # At the deadline, not when the 2 s call would have ended.
        self.assertLess(time.monotonic() - t0, 1.5)
        r = c.invoke("quick", timeout=2)
        self.assertTrue(r.success)
        self.assertEqual(json.loads(r.result), {"quick": True})
        # The server stopped at the deadline too (the agent did not sleep the full 2 s).
        rec = p.wait_event("a2a.call", pred=lambda r: r.get("action") == "slow")
        self.assertEqual(rec["grpcStatus"], "DEADLINE_EXCEEDED")
        self.assertLess(rec["durationMs"], 1000 * SLOW)

    def test_rest_only_package_has_no_a2a(self):
        p = Pard(self).start()    # the REST-only demo package
        p.wait_ready()
        self.assertEqual(p.get("/health").json()["surfaces"]["a2a"], "absent")
        c = self.client(p)
        code, _ = code_of(lambda: c.agent.Ping(c.empty(), timeout=2))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)


class HealthService(A2ABase):
    def test_check(self):
        p = self.start()
        c = self.client(p)
        serving = c.health_pb2.HealthCheckResponse.SERVING
        self.assertEqual(c.check("").status, serving)
        self.assertEqual(c.check("pixell.agent.AgentService").status, serving)
        code, _ = code_of(lambda: c.check("no.such.Service"))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(p.get("/health").json()["surfaces"]["a2a"], "up")

    def test_not_serving_while_draining(self):
        p = self.start(env={"PAR_DRAIN_DELAY_SEC": "3"})
        c = self.client(p)
        p.signal(signal.SIGTERM)
        p.wait_event("drain.start")
        self.assertEqual(c.check("").status, c.health_pb2.HealthCheckResponse.NOT_SERVING)
        self.assertEqual(c.check("pixell.agent.AgentService").status,
                         c.health_pb2.HealthCheckResponse.NOT_SERVING)
        h = c.agent.Health(c.empty(), timeout=5)
        self.assertEqual((h.ok, h.message), (False, "draining"))
        # Through the drain delay the agent is still served.
        self.assertTrue(c.invoke("echo").success)
        self.assertEqual(p.wait_exit(20), 0)

    def test_watch_serving_then_not_serving_on_sigterm(self):
        p = self.start(env={"PAR_DRAIN_DELAY_SEC": "1"})
        c = self.client(p)
        req = c.health_pb2.HealthCheckRequest(service="")
        stream = c.health.Watch(req, timeout=30)
        self.assertEqual(next(stream).status, c.health_pb2.HealthCheckResponse.SERVING)
        unknown = c.health.Watch(c.health_pb2.HealthCheckRequest(service="nope"), timeout=30)
        self.assertEqual(next(unknown).status, c.health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
        poll(lambda: re.search(r"(?m)^par_grpc_watch_streams 2$", p.get("/metrics").body.decode()),
             5, what="two open Watch streams")
        p.signal(signal.SIGTERM)
        self.assertEqual(next(stream).status, c.health_pb2.HealthCheckResponse.NOT_SERVING)
        # The stream then ends (the server is going away) rather than hang the shutdown.
        code, _ = code_of(lambda: next(stream))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        code, _ = code_of(lambda: next(unknown))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(p.wait_exit(20), 0)
        self.assertEqual(p.wait_event("drain.done")["cancelled"], 0)

    def test_watch_cancelled_by_the_client_is_released(self):
        p = self.start()
        c = self.client(p)
        stream = c.health.Watch(c.health_pb2.HealthCheckRequest(service=""), timeout=30)
        self.assertEqual(next(stream).status, c.health_pb2.HealthCheckResponse.SERVING)
        stream.cancel()
        rec = p.wait_event("a2a.call", pred=lambda r: r["method"].endswith("/Watch"))
        self.assertEqual(rec["grpcStatus"], "CANCELLED")
        poll(lambda: re.search(r"(?m)^par_grpc_watch_streams 0$", p.get("/metrics").body.decode()),
             5, what="no open Watch stream")


class Drain(A2ABase):
    def run_calls(self, c, n, ms, timeout=30):
        results = [None] * n

        def one(i):
            try:
                results[i] = c.invoke("slow", {"ms": str(ms)}, request_id="d%d" % i,
                                      timeout=timeout)
            except grpc.RpcError as e:
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        return threads, results

    def test_eight_grpc_and_eight_rest_calls_all_complete(self):
        """Issue 4 acceptance 4: 8 slow gRPC and 8 slow REST calls in flight at SIGTERM."""
        p = self.start("slow-agent", env={"GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "20"})
        c = self.client(p)
        threads, results = self.run_calls(c, 8, 2500)
        rest = [None] * 8

        def one(i):
            rest[i] = p.get("/api/slow?ms=2500", timeout=30)
        rthreads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in rthreads:
            t.start()
        poll(lambda: grpc_in_flight(p) >= 8, 10, what="8 gRPC calls in flight")
        poll(lambda: (lambda m: m and int(m.group(1)) >= 9)(re.search(
            r'^par_http_in_flight\{surface="rest"\} (\d+)', p.get("/metrics").body.decode(), re.M)),
            10, what="8 REST calls in flight")
        p.signal(signal.SIGTERM)
        p.wait_event("rest.listener.closed")
        self.assertEqual(p.get("/health", timeout=3).curl_rc, 7, "new REST connections are refused")
        for t in threads + rthreads:
            t.join(30)
        for i, r in enumerate(results):
            self.assertFalse(isinstance(r, grpc.RpcError), "gRPC call %d: %r" % (i, r))
            self.assertTrue(r.success, r.error)
        for i, r in enumerate(rest):
            self.assertEqual(r.status, 200, "REST call %d" % i)
        self.assertEqual(p.wait_exit(30), 0)
        self.assertEqual(p.wait_event("drain.done")["cancelled"], 0)

    def test_in_flight_calls_complete_and_new_calls_are_refused(self):
        p = self.start("slow-agent", env={"GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "20"})
        c = self.client(p)
        threads, results = self.run_calls(c, 8, 2500)
        poll(lambda: grpc_in_flight(p) >= 8, 10, what="8 gRPC calls in flight")
        p.signal(signal.SIGTERM)
        p.wait_event("a2a.listener.closed")
        # A new call, on a new connection, is refused at once (no hang).
        fresh = Client(p.a2a_port)
        t0 = time.monotonic()
        code, _ = code_of(lambda: fresh.agent.Ping(fresh.empty(), timeout=3))
        fresh.close()
        # Refused by the closed listener (UNAVAILABLE), or — when the connect raced the
        # shutdown — accepted and cancelled by it (CANCELLED): never served, never hung.
        self.assertIn(code, (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED))
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW)
        self.assertIsNone(p.proc.poll(), "pard exited with calls in flight")
        for t in threads:
            t.join(30)
        for i, r in enumerate(results):
            self.assertNotIsInstance(r, grpc.RpcError, r)
            self.assertTrue(r.success)
            self.assertEqual((json.loads(r.result), r.request_id), ({"slept": 2500}, "d%d" % i))
        self.assertEqual(p.wait_exit(20), 0)
        self.assertEqual(p.wait_event("drain.done")["cancelled"], 0)
        p.wait_event("a2a.stopped")

    def test_call_longer_than_the_grace_is_cancelled_without_abort(self):
        # The handler returns (at its 3 s deadline) after the cancel: the queue must still be
        # there for its batch (dependencies guide §1.5: the abort to avoid).
        p = self.start("slow-agent", env={"GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "1"})
        c = self.client(p)
        threads, results = self.run_calls(c, 2, 60000, timeout=3)
        poll(lambda: grpc_in_flight(p) >= 2, 10, what="2 gRPC calls in flight")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        for r in results:
            self.assertIsInstance(r, grpc.RpcError)
            self.assertIn(r.code(), (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED))
        self.assertEqual(p.wait_exit(20), 0)
        self.assertLess(time.monotonic() - t0, 8 * SLOW)
        p.wait_event("a2a.cancel")
        p.wait_event("a2a.stopped")
        self.assertNotIn(b"assertion failed", p.stderr)

    def test_call_stuck_in_the_agent_does_not_hold_the_exit(self):
        # No deadline at all: the agent call outlives every wait; pard still exits 0.
        p = self.start("slow-agent", env={"GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "1"})
        c = self.client(p)
        threads, results = self.run_calls(c, 1, 30000, timeout=None)
        poll(lambda: grpc_in_flight(p) >= 1, 10, what="a gRPC call in flight")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(25), 0)
        self.assertLess(time.monotonic() - t0, 15 * SLOW)
        threads[0].join(10)
        self.assertIsInstance(results[0], grpc.RpcError)
        p.wait_event("a2a.stop.abandoned")
        self.assertNotIn(b"assertion failed", p.stderr)


class Bind(A2ABase):
    def test_second_pard_on_the_same_a2a_port_exits_13(self):
        first = self.start()
        second = Pard(self, package=example("echo-agent"),
                      env={"A2A_PORT": str(first.a2a_port)}).start()
        self.assertEqual(second.wait_exit(20), EXIT["bind"])
        rec = second.wait_event("boot.failed")
        self.assertEqual(rec["exitCode"], 13)
        self.assertIn("A2A_PORT %d" % first.a2a_port, rec["reason"])
        self.assertIn("in use", rec["reason"])
        # The first one is untouched.
        c = self.client(first)
        self.assertTrue(c.invoke("echo").success)


VALGRIND = shutil.which("valgrind")


@unittest.skipIf(os.environ.get("PAR_SANITIZE_BUILD") == "1", "ASan and valgrind do not mix")
class Valgrind(A2ABase):
    def test_boot_calls_drain_is_clean(self):
        """Every kind of call, then a drain that cancels one: no memory error, no definite or
        indirect leak (every byte buffer, slice, metadata array and call released)."""
        self.assertTrue(VALGRIND, "valgrind is installed by scripts/install-deps.sh")
        wrapper = [VALGRIND, "--quiet", "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite,indirect",
                   "--show-leak-kinds=definite,indirect", "--track-fds=no"]
        p = Pard(self, package=example("echo-agent"), wrapper=wrapper,
                 env={"BOOT_BUDGET_MS": "60000", "GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "1"}).start()
        p.wait_ready(90)
        c = self.client(p)
        c.agent.Health(c.empty(), timeout=20)
        c.agent.Ping(c.empty(), timeout=20)
        c.agent.DescribeCapabilities(c.empty(), timeout=20)
        for i in range(20):
            self.assertTrue(c.invoke("echo", {"i": str(i)}, timeout=20).success)
        self.assertFalse(c.invoke("nope", timeout=20).success)
        # echo-agent refuses up front a sleep that would pass the deadline: in-band.
        self.assertFalse(c.invoke("sleep", {"ms": "5000"}, timeout=0.5).success)
        self.assertEqual(code_of(lambda: c.raw("/x.Y/Z")(b"", timeout=20))[0],
                         grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(code_of(lambda: c.raw("/pixell.agent.AgentService/Invoke")(
            b"\xff\xff\xff", timeout=20))[0], grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(code_of(lambda: c.invoke("echo", {"x": "a" * (5 << 20)}, timeout=20))[0],
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        c.check("", timeout=20)
        self.assertEqual(code_of(lambda: c.check("nope", timeout=20))[0], grpc.StatusCode.NOT_FOUND)
        gone = c.health.Watch(c.health_pb2.HealthCheckRequest(service=""), timeout=60)
        next(gone)
        gone.cancel()
        kept = c.health.Watch(c.health_pb2.HealthCheckRequest(service=""), timeout=60)
        next(kept)
        # In flight at SIGTERM and longer than the 1 s grace: cancelled, then released.
        slow = []
        t = threading.Thread(target=lambda: slow.append(code_of(
            lambda: c.invoke("sleep", {"ms": "2000"}, timeout=60))[0]))
        t.start()
        poll(lambda: grpc_in_flight(p) >= 1, 20, what="a call in flight")
        p.signal(signal.SIGTERM)
        rc = p.wait_exit(90)
        t.join(30)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(rc, 0, err[-6000:])
        self.assertIn(slow[0], (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED))
        p.wait_event("a2a.cancel")
        p.wait_event("a2a.stopped")


if __name__ == "__main__":
    unittest.main()
