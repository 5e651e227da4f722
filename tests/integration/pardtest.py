"""Harness for the black-box tests: starts the real pard, drives it with curl, and checks
that every line pard prints is one JSON object with timestamp, level and event."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

PARD = os.environ.get("PARD", "")
PARCTL = os.environ.get("PARCTL", "")
SOURCE_DIR = os.environ.get("PAR_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
DEMO_AGENT = os.path.join(SOURCE_DIR, "examples", "demo-agent")
# Sanitizer and valgrind builds are slower; every wait scales with this.
SLOW = float(os.environ.get("PAR_TEST_SLOWDOWN", "1"))

EXIT = {"ok": 0, "usage": 2, "config": 10, "fetch": 11, "load": 12, "bind": 13, "budget": 14, "internal": 15}


def free_port():
    """A port the kernel just handed out and nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return list(ports)


def poll(pred, timeout, interval=0.02, what="condition"):
    """Waits until pred() is truthy and returns its value; fails the test on timeout."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * SLOW, what))
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body, curl_rc):
        self.status = status
        self.headers = headers
        self.body = body
        self.curl_rc = curl_rc

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())


def curl(url, method="GET", headers=None, timeout=5, extra=None):
    """One request with the real curl. status 0 and curl_rc != 0 when it failed
    (7: connection refused, 28: timeout, 52: empty reply)."""
    args = ["curl", "-sS", "--path-as-is", "-o", "-", "-D", "/dev/stderr", "-w", "", "--max-time", str(timeout * SLOW)]
    if method == "HEAD":
        args += ["-I"]
    elif method != "GET":
        args += ["-X", method]
    for k, v in (headers or {}).items():
        args += ["-H", "%s: %s" % (k, v)]
    args += extra or []
    args.append(url)
    p = subprocess.run(args, capture_output=True)
    hdr_text = p.stderr.decode("latin-1")
    if method == "HEAD":
        hdr_text = p.stdout.decode("latin-1")
    status = 0
    hdrs = {}
    for line in hdr_text.splitlines():
        if line.startswith("HTTP/"):
            status = int(line.split()[1])
            hdrs = {}
        elif ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    body = b"" if method == "HEAD" else p.stdout
    return Response(status if p.returncode == 0 else 0, hdrs, body, p.returncode)


class Pard:
    """One pard process with a private cache/state directory and free ports."""

    def __init__(self, test, env=None, args=None, package=DEMO_AGENT, wrapper=None):
        self.test = test
        self.tmp = tempfile.mkdtemp(prefix="pard-it-")
        self.rest_port, self.a2a_port, self.ui_port = free_ports(3)
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AGENT_APP_ID": "it-agent",
            "REST_PORT": str(self.rest_port),
            "A2A_PORT": str(self.a2a_port),
            "UI_PORT": str(self.ui_port),
            "PAR_CACHE_DIR": os.path.join(self.tmp, "cache"),
            "PAR_ADMIN_SOCKET": os.path.join(self.tmp, "admin.sock"),
            "LOG_LEVEL": "debug",
        }
        if package:
            base["AGENT_PACKAGE_PATH"] = package
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                base[k] = os.environ[k]
        for k, v in (env or {}).items():
            if v is None:
                base.pop(k, None)
            else:
                base[k] = v
        self.env = base
        self.args = args or []
        self.wrapper = wrapper or []
        self.proc = None
        self.lines = []          # raw stdout lines
        self.records = []        # parsed JSON objects
        self.stderr = b""
        self._cv = threading.Condition()
        test.addCleanup(self.cleanup)

    @property
    def admin_socket(self):
        """The admin socket this pard was told to use (each pard gets its own)."""
        return self.env.get("PAR_ADMIN_SOCKET")

    @property
    def state_dir(self):
        return self.env.get("PAR_STATE_DIR", os.path.join(self.env["PAR_CACHE_DIR"], "state"))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.rest_port, path)

    def start(self):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.wrapper + [PARD] + self.args, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._ereader = threading.Thread(target=self._read_err, daemon=True)
        self._ereader.start()
        return self

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cv:
                self.lines.append(line)
                try:
                    self.records.append(json.loads(line))
                except ValueError:
                    self.records.append(None)
                self._cv.notify_all()

    def _read_err(self):
        self.stderr = self.proc.stderr.read()

    def events(self, name=None):
        with self._cv:
            recs = [r for r in self.records if r]
        return [r for r in recs if name is None or r.get("event") == name]

    def wait_event(self, name, timeout=10, pred=None):
        """The first log record with this event (and matching pred)."""
        deadline = time.monotonic() + timeout * SLOW
        with self._cv:
            while True:
                for r in self.records:
                    if r and r.get("event") == name and (pred is None or pred(r)):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %r log line within %.1fs; got: %s" % (name, timeout * SLOW, "\n".join(self.lines[-30:])))
                self._cv.wait(min(left, 0.1))

    def wait_ready(self, timeout=10):
        return self.wait_event("lifecycle.ready", timeout)

    def wait_exit(self, timeout=15):
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError("pard did not exit within %.1fs; last lines:\n%s" % (timeout * SLOW, "\n".join(self.lines[-30:])))
        self._reader.join(5)
        self._ereader.join(5)
        return rc

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def get(self, path, **kw):
        return curl(self.url(path), **kw)

    def check_log_lines(self):
        """SPEC §7: every stdout line is one JSON object with timestamp, level and event."""
        for line in self.lines:
            try:
                rec = json.loads(line)
            except ValueError:
                self.test.fail("pard printed a non-JSON line: %r" % line)
            self.test.assertIsInstance(rec, dict, line)
            for key in ("timestamp", "level", "event", "msg", "agentAppId"):
                self.test.assertIn(key, rec, "missing %r in %s" % (key, line))
            self.test.assertRegex(rec["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.test.assertIn(rec["level"], ("debug", "info", "warn", "error"))

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self._reader.join(5)
            self._ereader.join(5)
            self.proc.stdout.close()
            self.proc.stderr.close()
            self.check_log_lines()
            # A sanitizer report goes to stderr: any report fails the test that caused it.
            err = self.stderr.decode("utf-8", "replace")
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                self.test.assertNotIn(marker, err, err[-4000:])
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_pard(test, env=None, args=None, timeout=20, **kw):
    """Runs pard to completion; returns (exit code, Pard)."""
    p = Pard(test, env=env, args=args, **kw).start()
    rc = p.wait_exit(timeout)
    return rc, p


class PardTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        if not PARD or not os.path.exists(PARD):
            self.fail("PARD must name the pard binary (run through ctest)")
