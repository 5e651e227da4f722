"""The exec agent (SPEC §4.2): a worker process on a Unix socket, started in the load phase,
its output turned into JSON log lines, its /api routes proxied verbatim and streamed (10 MB
each way), supervised (a crash drops /health to 503, a restart brings it back), and stopped
by the drain (SIGTERM, then SIGKILL after the grace)."""
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest

from pardtest import EXIT, SLOW, Pard, PardTestCase, curl, poll

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "workers", "echo_worker.py")
# The worker is Debian's python3 (stdlib only), found through PATH like any bare command name.
ENV = {"PATH": "/usr/bin:/bin"}
PATTERN = hashlib.sha256(b"par").digest() * 2048   # the worker's /api/big content, 64 KiB


def make_package(test, command=("python3", "echo_worker.py"), env=None):
    """A package directory holding the echo worker and an exec agent.yaml."""
    d = tempfile.mkdtemp(prefix="exec-pkg-")
    test.addCleanup(shutil.rmtree, d, True)
    shutil.copy(WORKER, d)
    lines = ["name: echo-worker", "version: 1.0.0", "runtime: exec", "exec:",
             "  command: [%s]" % ", ".join(json.dumps(c) for c in command)]
    if env:
        lines.append("  env:")
        lines += ["    %s: %s" % (k, json.dumps(v)) for k, v in env.items()]
    with open(os.path.join(d, "agent.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return d


def worker_pid(p):
    return p.wait_event("worker.ready")["pid"]


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


SANITIZED = os.environ.get("PAR_SANITIZE_BUILD", "0") in ("1", "ON", "TRUE", "true")


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M).group(1))


def in_flight(p):
    m = re.search(r'^par_http_in_flight\{surface="rest"\} (\d+)', p.get("/metrics").body.decode(), re.M)
    return int(m.group(1)) - 1 if m else 0    # less the /metrics request itself


def big_sha(mb):
    h = hashlib.sha256()
    for _ in range(mb * 16):
        h.update(PATTERN)
    return h.hexdigest()


class ExecAgent(PardTestCase):
    def setUp(self):
        super().setUp()
        # The worker's socket directory goes here: a pard the harness SIGKILLs leaves nothing.
        self.tmpdir = tempfile.mkdtemp(prefix="exec-tmp-")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)
        self.env = dict(ENV, TMPDIR=self.tmpdir)

    def start(self, worker_env=None, env=None, **kw):
        e = dict(self.env)
        e.update(env or {})
        p = Pard(self, package=make_package(self, env=worker_env, **kw), env=e).start()
        return p

    def test_ready_with_worker_output_as_json_lines(self):
        p = self.start(worker_env={"ECHO_WORKER_LONG_LINE": "20000"})
        p.wait_ready(20)
        r = p.get("/health")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["surfaces"]["agent"], "up")
        pid = worker_pid(p)
        out = p.wait_event("worker.stdout", pred=lambda r: r["msg"].startswith("echo worker starting"))
        self.assertEqual((out["stream"], out["pid"]), ("stdout", pid))
        err = p.wait_event("worker.stderr", pred=lambda r: r["msg"] == "echo worker stderr check")
        self.assertEqual((err["stream"], err["pid"]), ("stderr", pid))
        # A 20,000-character line arrives in pieces of at most 8 KiB, nothing lost.
        pieces = [r["msg"] for r in p.events("worker.stdout") if set(r["msg"]) == {"x"}]
        self.assertEqual(sum(map(len, pieces)), 20000)
        self.assertTrue(all(len(x) <= 8192 for x in pieces), [len(x) for x in pieces])
        start = p.wait_event("worker.start")
        self.assertTrue(start["socket"].startswith(self.tmpdir + "/par-worker-"), start["socket"])
        self.assertTrue(start["socket"].endswith("/worker.sock"))
        # The socket lives in a private directory.
        self.assertEqual(os.stat(os.path.dirname(start["socket"])).st_mode & 0o777, 0o700)
        self.assertEqual(p.wait_event("agent.loaded")["backend"], "exec")
        self.check_worker_fds(pid)

    def check_worker_fds(self, pid):
        """No descriptor of pard's leaks into the worker: stdin is /dev/null, stdout and stderr
        are pipes, and every other descriptor is one the worker made (its Unix sockets)."""
        fds = {int(n): os.readlink("/proc/%d/fd/%s" % (pid, n)) for n in os.listdir("/proc/%d/fd" % pid)}
        self.assertEqual(fds[0], "/dev/null")
        self.assertTrue(fds[1].startswith("pipe:") and fds[2].startswith("pipe:"), fds)
        with open("/proc/net/unix") as f:
            unix = {line.split()[6] for line in list(f)[1:]}
        for n, target in fds.items():
            if n > 2:
                m = re.match(r"socket:\[(\d+)\]$", target)
                self.assertTrue(m and m.group(1) in unix, "fd %d -> %s leaked into the worker" % (n, target))

    def test_api_proxy_method_headers_status(self):
        p = self.start()
        p.wait_ready(20)
        r = p.get("/api/echo?x=1&y=a%20b", method="PUT",
                  headers={"X-Custom": "v1", "X-Request-ID": "rid-123", "TE": "trailers",
                           "Proxy-Authorization": "secret", "Connection": "keep-alive, X-Drop",
                           "X-Drop": "gone", "Keep-Alive": "timeout=5"},
                  extra=["--data-binary", "hello"])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("x-request-id"), "rid-123")
        j = r.json()
        self.assertEqual((j["method"], j["path"], j["query"]), ("PUT", "/api/echo", "x=1&y=a%20b"))
        self.assertEqual((j["length"], j["sha256"]), (5, hashlib.sha256(b"hello").hexdigest()))
        hdrs = {k.lower(): v for k, v in j["headers"]}
        self.assertEqual(hdrs["x-custom"], "v1")
        self.assertEqual(hdrs["x-request-id"], "rid-123")
        self.assertEqual(hdrs["x-forwarded-for"], "127.0.0.1")
        for gone in ("te", "proxy-authorization", "connection", "keep-alive", "x-drop", "expect"):
            self.assertNotIn(gone, hdrs)
        for method in ("DELETE", "PATCH", "POST", "GET"):
            r = p.get("/api/echo", method=method)
            self.assertEqual((r.status, r.json()["method"]), (200, method))
        r = p.get("/api/status?code=418", method="POST", extra=["--data", "x"])
        self.assertEqual(r.status, 418)
        self.assertEqual(r.header("x-worker-header"), "status-418")
        self.assertEqual(r.json(), {"status": 418})
        r = p.get("/api/status?code=204")
        self.assertEqual((r.status, r.body, r.header("x-worker-header")), (204, b"", "status-204"))
        r = p.get("/api/chunked?n=5")
        self.assertEqual((r.status, r.body), (200, b"".join(b"chunk %d\n" % i for i in range(5))))
        r = p.get("/api/big?mb=1", method="HEAD")
        self.assertEqual((r.status, r.header("content-length")), (200, str(1024 * 1024)))
        r = p.get("/api/nowhere")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json(), {"error": "no route /api/nowhere"})
        self.drain_cleanly(p)

    def test_api_proxy_streams_10mb_each_way(self):
        p = self.start()
        p.wait_ready(20)
        body = os.path.join(p.tmp, "up.bin")
        data = os.urandom(10 * 1024 * 1024)
        with open(body, "wb") as f:
            f.write(data)
        r = p.get("/api/echo", method="POST", timeout=60,
                  extra=["--data-binary", "@" + body, "-H", "Content-Type: application/octet-stream"])
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual((r.json()["length"], r.json()["sha256"]),
                         (len(data), hashlib.sha256(data).hexdigest()))
        # Chunked upload (no Content-Length) too.
        r = p.get("/api/echo", method="POST", timeout=60,
                  extra=["--data-binary", "@" + body, "-H", "Transfer-Encoding: chunked"])
        self.assertEqual((r.status, r.json()["length"]), (200, len(data)))
        r = p.get("/api/big?mb=10", timeout=60)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 10 * 1024 * 1024)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), big_sha(10))
        if not SANITIZED:   # ASan's quarantine keeps freed memory, so peaks mean nothing there
            before = peak_rss_kb(p.proc.pid)
            r = p.get("/api/big?mb=40", timeout=60)
            self.assertEqual(r.status, 200)
            self.assertLess(peak_rss_kb(p.proc.pid) - before, 16 * 1024, "memory follows the body size")
        # A client that leaves mid-download leaves nothing behind (and pard serves on).
        r = p.get("/api/big?mb=50", timeout=1, extra=["--limit-rate", "4M"])
        self.assertEqual(r.curl_rc, 28)
        poll(lambda: p.get("/health").status == 200, 5, what="health after an aborted download")
        r = p.get("/api/echo")
        self.assertEqual(r.status, 200)
        # ... and so does one that leaves while the worker is still thinking.
        r = p.get("/api/sleep?s=30", timeout=1)
        self.assertEqual(r.curl_rc, 28)
        poll(lambda: in_flight(p) == 0, 3, what="the abandoned request to end")
        self.drain_cleanly(p)

    def drain_cleanly(self, p):
        """A clean exit: under ASan, LeakSanitizer then checks every proxied request was freed."""
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(20), 0)

    def test_invocations_map_worker_results(self):
        p = self.start(worker_env={"ECHO_WORKER_DEFAULT": "echo"})
        p.wait_ready(20)
        r = p.get("/invocations", method="POST", extra=["--data", '{"a": [1, "two"]}'])
        self.assertEqual((r.status, r.json()), (200, {"a": [1, "two"]}))
        q = self.start(worker_env={"ECHO_WORKER_DEFAULT": "hello"})
        q.wait_ready(20)
        r = q.get("/invocations", method="POST", extra=["--data", "{}"])
        # A string result stays a JSON string, never a language repr.
        self.assertEqual((r.status, r.body), (200, b'"hi"'))
        f = self.start(worker_env={"ECHO_WORKER_DEFAULT": "fail"})
        f.wait_ready(20)
        r = f.get("/invocations", method="POST", extra=["--data", "{}"])
        self.assertEqual(r.status, 422, r.body)
        self.assertIn("failed as asked", r.json()["error"]["message"])
        for x in (p, q, f):
            self.drain_cleanly(x)

    def test_crash_drops_health_then_restart_restores_it(self):
        p = self.start()
        p.wait_ready(20)
        pid = worker_pid(p)
        os.kill(pid, signal.SIGKILL)
        ex = p.wait_event("worker.exited")
        self.assertEqual((ex["pid"], ex["signal"]), (pid, "SIGKILL"))
        r = p.get("/health")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json()["surfaces"]["agent"], "down")
        r = p.get("/api/echo")
        self.assertEqual((r.status, r.json()["error"]["code"]), (503, "worker_unavailable"))
        r = p.get("/invocations", method="POST", extra=["--data", "{}"])
        self.assertEqual(r.status, 503)
        # Refused before the upload: the client's body is not read.
        body = os.path.join(p.tmp, "body.bin")
        with open(body, "wb") as f:
            f.write(b"z" * (4 * 1024 * 1024))
        r = p.get("/api/echo", method="POST", extra=["--data-binary", "@" + body])
        self.assertEqual(r.status, 503)
        self.assertEqual(p.wait_event("worker.restart.scheduled")["delayMs"], 1000)
        again = p.wait_event("worker.ready", pred=lambda r: r["restarts"] == 1, timeout=15)
        self.assertNotEqual(again["pid"], pid)
        poll(lambda: p.get("/health").status == 200, 10, what="health 200 after the restart")
        self.assertEqual(p.get("/api/echo").status, 200)
        m = re.search(r"^par_worker_restarts_total (\d+)", p.get("/metrics").body.decode(), re.M)
        self.assertEqual(int(m.group(1)), 1)
        # The second crash in a row waits longer.
        os.kill(again["pid"], signal.SIGKILL)
        sched = p.wait_event("worker.restart.scheduled", pred=lambda r: r["attempt"] == 2)
        self.assertEqual(sched["delayMs"], 2000)
        p.wait_event("worker.ready", pred=lambda r: r["restarts"] == 2, timeout=15)
        self.drain_cleanly(p)

    def test_drain_stops_the_worker_with_sigterm(self):
        p = self.start()
        p.wait_ready(20)
        pid = worker_pid(p)
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(20), 0)
        stopped = p.wait_event("worker.stopped")
        self.assertEqual((stopped["pid"], stopped["by"]), (pid, "SIGTERM"))
        self.assertFalse(alive(pid))
        self.assertEqual(p.events("worker.restart.scheduled"), [])
        self.assertFalse(os.path.exists(os.path.dirname(p.wait_event("worker.start")["socket"])))

    def test_drain_kills_a_worker_that_ignores_sigterm(self):
        p = self.start(worker_env={"ECHO_WORKER_IGNORE_TERM": "1"})
        p.wait_ready(20)
        pid = worker_pid(p)
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(30), 0)
        took = time.monotonic() - t0
        stopped = p.wait_event("worker.stopped")
        self.assertEqual((stopped["pid"], stopped["by"], stopped["signal"]), (pid, "SIGKILL", "SIGKILL"))
        kill = p.wait_event("worker.kill")
        self.assertLess(took, (kill["graceMs"] / 1000 + 3) * SLOW)
        self.assertGreaterEqual(stopped["durationMs"], kill["graceMs"])
        self.assertFalse(alive(pid))

    def test_drain_cancels_calls_the_worker_does_not_finish(self):
        p = self.start(worker_env={"ECHO_WORKER_DEFAULT": "sleep"},
                       env={"GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "2"})
        p.wait_ready(20)
        results = {}
        calls = {
            "invoke": lambda: p.get("/invocations", method="POST", timeout=30,
                                    extra=["--data", '{"seconds": 60}']),
            "api": lambda: p.get("/api/sleep?s=60", timeout=30),
        }
        threads = [threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, f()))
                   for k, f in calls.items()]
        for t in threads:
            t.start()
        poll(lambda: in_flight(p) >= 2, 10, what="two calls in flight")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(30), 0)
        for t in threads:
            t.join()
        self.assertLess(time.monotonic() - t0, 6 * SLOW)
        self.assertEqual(results["invoke"].status, 503, results["invoke"].body)
        self.assertIn("shutting down", results["invoke"].json()["error"]["message"])
        self.assertEqual(results["api"].status, 503, results["api"].body)
        self.assertEqual(results["api"].json()["error"]["code"], "shutting_down")
        self.assertEqual(p.wait_event("worker.stopped")["by"], "SIGTERM")

    def test_missing_command_fails_boot_with_exit_12(self):
        p = Pard(self, package=make_package(self, command=("./no-such-worker", "x")), env=self.env).start()
        self.assertEqual(p.wait_exit(20), EXIT["load"])
        failed = p.wait_event("boot.failed")
        self.assertEqual(failed["phase"], "load")
        self.assertIn("no-such-worker", failed["reason"])
        self.assertIn("No such file", failed["reason"])

    def test_worker_exiting_during_load_fails_boot_with_its_status(self):
        p = self.start(worker_env={"ECHO_WORKER_EXIT_AT_START": "3"})
        self.assertEqual(p.wait_exit(20), EXIT["load"])
        failed = p.wait_event("boot.failed")
        self.assertEqual(failed["phase"], "load")
        self.assertIn("exited during load", failed["reason"])
        # The status comes from the main loop's reaping: pard/agent.c must hand the worker's
        # SIGCHLD to the exec backend while it is still loading.
        self.assertIn("exit status 3", failed["reason"])
        self.assertIn("fatal: exiting with 3 as asked", failed["reason"])
        self.assertEqual(os.listdir(self.tmpdir), [], "the socket directory is removed")


if __name__ == "__main__":
    unittest.main()
