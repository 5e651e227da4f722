"""The admin socket (SPEC §8, issue 7): the protocol's errors (malformed, wrong version,
oversized), many clients at once, answers during boot and drain, drain --no-exit / undrain /
drain, status against its JSON schema, the read-only socket, the peer check, stale sockets,
the path fallback, and monitor."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

import jsonschema

import adminproto as ap
from pardtest import SLOW, Pard, PardTestCase, poll

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("PAR_BUILD_DIR", "")
with open(os.path.join(HERE, "schemas", "status.schema.json")) as f:
    STATUS_SCHEMA = json.load(f)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# Run as another uid: one request on a socket, the answer line on stdout (stdlib only, so
# it needs nothing readable but the socket).
AS_OTHER_UID = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall((json.dumps({"v": 1, "id": 1, "cmd": sys.argv[2], "args": {}}) + "\n").encode())
buf = b""
while b"\n" not in buf:
    c = s.recv(4096)
    if not c:
        break
    buf += c
print(buf.split(b"\n")[0].decode())
"""


def example(name):
    apkg = os.path.join(BUILD, "examples", name + ".apkg")
    return apkg if os.path.exists(apkg) else os.path.join(BUILD, "examples", name)


def as_nobody(path, cmd):
    p = subprocess.run(NOBODY + ["/usr/bin/python3", "-c", AS_OTHER_UID, path, cmd],
                       capture_output=True, timeout=20 * SLOW)
    if p.returncode != 0:
        raise AssertionError("client as nobody failed: %s" % p.stderr.decode())
    return json.loads(p.stdout)


class AdminBase(PardTestCase):
    def start(self, env=None, ready=True, **kw):
        p = Pard(self, env=env, **kw).start()
        if ready:
            p.wait_ready(20)
        else:
            p.wait_event("admin.listening")
        return p

    def status(self, path):
        r = ap.result(path, "status")
        jsonschema.validate(r, STATUS_SCHEMA)
        return r

    def assert_error(self, resp, code):
        self.assertFalse(resp["ok"], resp)
        self.assertEqual(resp["error"]["code"], code, resp)
        self.assertTrue(resp["error"]["message"])
        self.assertEqual(resp["v"], 1)


class Protocol(AdminBase):
    def test_malformed_lines_get_errors_and_the_connection_stays(self):
        p = self.start()
        lines = ap.raw(p.admin_socket,
                       b"garbage\n"
                       b"[1,2]\n"
                       b'{"v":1,"id":2,"cmd":"ping"} trailing\n'
                       b'{"v":1,"id":3,"cmd":7}\n'
                       b'{"v":1,"id":4,"cmd":"bogus"}\n'
                       b'{"v":1,"id":5,"cmd":"ping","args":{"x":1}}\n'
                       b"\n"
                       b'{"v":1,"id":6,"cmd":"ping"}\n')
        self.assertEqual(len(lines), 7, lines)
        for resp, code in zip(lines, ["malformed", "malformed", "malformed", "malformed",
                                      "unknown_command", "bad_args"]):
            self.assert_error(resp, code)
        self.assertIsNone(lines[0]["id"])
        self.assertEqual(lines[3]["id"], 3)
        self.assertEqual((lines[6]["id"], lines[6]["ok"]), (6, True))
        self.assertTrue(lines[6]["result"]["pong"])

    def test_wrong_version_is_a_clear_error(self):
        p = self.start()
        lines = ap.raw(p.admin_socket, ap.request_line("status", rid=9, v=2))
        self.assertEqual(len(lines), 1)
        self.assert_error(lines[0], "version")
        self.assertEqual(lines[0]["id"], 9)
        self.assertIn("2", lines[0]["error"]["message"])
        self.assertIn("version 1", lines[0]["error"]["message"])
        self.assertEqual(ap.result(p.admin_socket, "version"),
                         {"name": "pard", "version": ap.result(p.admin_socket, "status")["version"],
                          "protocol": 1})

    def test_oversized_line_is_too_long_then_closed_and_pard_fine(self):
        p = self.start()
        # 1 MB without a newline: pard answers too_long and closes, never reads it all.
        with ap.connect(p.admin_socket, 10) as s:
            sent = 0
            chunk = b"x" * 65536
            try:
                while sent < (1 << 20):
                    s.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            line, _ = ap.read_line(s)
            self.assert_error(json.loads(line), "too_long")
            s.settimeout(5 * SLOW)
            try:
                rest = s.recv(100)
            except ConnectionResetError:
                rest = b""
            self.assertEqual(rest, b"", "the connection must be closed after too_long")
        self.assertTrue(ap.result(p.admin_socket, "ping")["pong"])
        self.assertEqual(p.get("/health").status, 200)
        # A line of exactly the limit (with its newline) is still a request, if a bad one.
        head, tail = b'{"v":1,"id":1,"cmd":"ping","pad":"', b'"}\n'
        big = head + b"p" * (65536 - len(head) - len(tail)) + tail
        self.assertEqual(len(big), 65536)
        lines = ap.raw(p.admin_socket, big)
        self.assertEqual(lines[0]["ok"], True, lines[0])

    def test_many_clients_at_once_and_a_silent_one(self):
        p = self.start()
        silent = ap.connect(p.admin_socket)      # connects, never sends
        half = ap.connect(p.admin_socket)        # sends half a line, never the rest
        half.sendall(b'{"v":1,"cmd":"sta')
        try:
            n = 100
            socks = [ap.connect(p.admin_socket, 20) for _ in range(n)]
            results = [None] * n

            def one(i):
                try:
                    socks[i].sendall(ap.request_line("status", rid=i))
                    line, _ = ap.read_line(socks[i])
                    results[i] = json.loads(line)
                except Exception as e:     # noqa: BLE001 - reported below
                    results[i] = e
            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60 * SLOW)
            for i, r in enumerate(results):
                self.assertIsInstance(r, dict, "client %d: %r" % (i, r))
                self.assertTrue(r["ok"], r)
                self.assertEqual(r["id"], i)
                jsonschema.validate(r["result"], STATUS_SCHEMA)
            for s in socks:
                s.close()
        finally:
            silent.close()
            half.close()
        self.assertEqual(p.get("/health").status, 200)
        self.assertTrue(ap.result(p.admin_socket, "ping")["pong"])

    def test_show_verbs(self):
        p = self.start(env={"PAR_DRAIN_DELAY_SEC": "20", "GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "30"})
        path = p.admin_socket
        boot = ap.result(path, "show boot")
        self.assertEqual([ph["name"] for ph in boot["phases"]][:2], ["config", "listen"])
        self.assertEqual(boot["budget"]["verdict"], "within")
        self.assertTrue(boot["budget"]["final"])
        self.assertIsNone(boot["whyNotReady"])
        cfg = ap.result(path, "show config")
        self.assertEqual(cfg["PAR_ADMIN_SOCKET"], path)
        self.assertEqual(ap.result(path, "show package")["name"], "demo-agent")
        budgets = ap.result(path, "show budgets")
        self.assertEqual(budgets["drain"]["worstCaseSec"], 20 + 30 + 5 + 2)
        self.assertEqual(budgets["verdict"], "raise_stop_timeout")
        self.assertFalse(budgets["stopTimeouts"][0]["fits"])
        m = ap.result(path, "show metrics")
        names = {f["name"] for f in m["metrics"]}
        self.assertIn("par_state", names)
        om = ap.result(path, "show metrics", {"format": "openmetrics"})
        self.assertIn("par_state{", om["text"])
        self.assertTrue(om["text"].endswith("# EOF\n"))
        self.assert_error(ap.call(path, "show metrics", {"format": "xml"}), "bad_args")
        lvl = ap.result(path, "log level", {"level": "warn"})
        self.assertEqual((lvl["previous"], lvl["level"]), ("debug", "warn"))
        self.assertEqual(self.status(path)["logLevel"], "warn")
        self.assert_error(ap.call(path, "log level", {"level": "loud"}), "bad_args")
        ap.result(path, "log level", {"level": "debug"})

    def test_health_fail_and_ok(self):
        p = self.start()
        path = p.admin_socket
        self.assertEqual(ap.result(path, "health", {"state": "fail"})["health"], "failing")
        self.assertEqual(p.get("/health").status, 503)
        st = self.status(path)
        self.assertFalse(st["ready"])
        self.assertIn("health.fail", st["whyNotReady"])
        self.assertEqual([f["name"] for f in st["faults"]["runtime"]], ["health.fail"])
        ap.result(path, "health", {"state": "ok"})
        self.assertEqual(p.get("/health").status, 200)
        self.assertEqual(self.status(path)["faults"]["runtime"], [])
        self.assert_error(ap.call(path, "health", {"state": "maybe"}), "bad_args")
        self.assert_error(ap.call(path, "fault set", {"name": "nope"}), "bad_args")


class Lifecycle(AdminBase):
    def test_answers_during_boot_and_status_validates(self):
        p = self.start(env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "boot.delay=3000"},
                       ready=False)
        st = self.status(p.admin_socket)
        self.assertEqual(st["state"], "booting")
        self.assertFalse(st["ready"])
        self.assertIn("booting", st["whyNotReady"])
        self.assertEqual(st["faults"]["boot"], [{"name": "boot.delay", "value": 3000}])
        boot = ap.result(p.admin_socket, "show boot")
        self.assertFalse(boot["budget"]["final"])
        # drain --no-exit needs READY: a boot cannot be undone.
        self.assert_error(ap.call(p.admin_socket, "drain", {"no_exit": True}), "bad_state")
        p.wait_ready(20)
        st = self.status(p.admin_socket)
        self.assertEqual((st["state"], st["ready"], st["phase"]), ("ready", True, None))
        self.assertGreaterEqual(st["bootMs"], 3000)

    def test_drain_no_exit_then_undrain_then_drain_exits_0(self):
        p = self.start(package=example("echo-agent"))
        from a2a_client import Client
        c = Client(p.a2a_port)
        self.addCleanup(c.close)
        path = p.admin_socket
        with ap.Monitor(path) as mon:
            r = ap.result(path, "drain", {"no_exit": True})
            self.assertEqual((r["state"], r["noExit"]), ("draining", True))
            ev = mon.wait_event(lambda e: e.get("event") == "lifecycle.state")
            self.assertEqual(ev["to"], "draining")
            mon.wait_event(lambda e: e.get("event") == "drain.held")
        self.assertEqual(p.get("/health").status, 503)
        self.assertEqual(c.status_name(c.check().status), "NOT_SERVING")
        st = self.status(path)
        self.assertEqual((st["state"], st["drain"]["step"], st["drain"]["noExit"]),
                         ("draining", "held", True))
        self.assertEqual(st["drain"]["source"], "admin")
        self.assertTrue(ap.result(path, "ping")["pong"])
        self.assert_error(ap.call(path, "drain", {"no_exit": True}), "bad_state")
        self.assertEqual(ap.result(path, "undrain")["state"], "ready")
        self.assertEqual(p.get("/health").status, 200)
        poll(lambda: c.status_name(c.check().status) == "SERVING", 5, what="gRPC SERVING")
        self.assertFalse(self.status(path)["drain"]["active"])
        self.assert_error(ap.call(path, "undrain"), "bad_state")
        self.assert_error(ap.call(path, "drain", {"timeout_s": -1}), "bad_args")
        r = ap.result(path, "drain", {"timeout_s": 2})
        self.assertEqual(r["graceSec"], 2)
        self.assertEqual(p.wait_exit(15), 0)
        self.assertEqual(p.wait_event("drain.start")["source"], "admin")
        p.wait_event("drain.done")
        self.assertFalse(os.path.exists(path), "the socket is unlinked on exit")

    def test_answers_during_a_signal_drain(self):
        p = self.start(env={"PAR_DRAIN_DELAY_SEC": "3"})
        p.signal(signal.SIGTERM)
        p.wait_event("drain.start")
        st = self.status(p.admin_socket)
        self.assertEqual((st["state"], st["drain"]["source"], st["drain"]["step"]),
                         ("draining", "SIGTERM", "delay"))
        self.assert_error(ap.call(p.admin_socket, "undrain"), "bad_state")
        self.assert_error(ap.call(p.admin_socket, "drain"), "bad_state")
        self.assertEqual(p.wait_exit(15), 0)

    def test_sigterm_turns_a_no_exit_drain_into_an_exit(self):
        p = self.start()
        ap.result(p.admin_socket, "drain", {"no_exit": True})
        p.wait_event("drain.held")
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(15), 0)


class Access(AdminBase):
    def test_read_only_socket(self):
        p = Pard(self)
        ro = os.path.join(p.tmp, "ro.sock")
        p.env["PAR_ADMIN_RO_SOCKET"] = ro
        p.start()
        p.wait_ready()
        self.assertEqual(os.stat(ro).st_mode & 0o777, 0o666)
        self.assertEqual(os.stat(p.admin_socket).st_mode & 0o777, 0o660)
        st = self.status(ro)
        self.assertTrue(st["admin"]["readOnly"])
        self.assertEqual(st["admin"]["readOnlySocket"], ro)
        for cmd, args in (("drain", None), ("undrain", None), ("fault set", {"name": "hang"}),
                          ("health", {"state": "fail"}), ("log level", {"level": "error"})):
            self.assert_error(ap.call(ro, cmd, args), "denied")
        self.assertEqual(p.get("/health").status, 200)
        self.assertIn("faults", ap.result(ro, "fault list"))
        with ap.Monitor(ro) as mon:
            ap.result(p.admin_socket, "health", {"state": "fail"})
            ev = mon.wait_event(lambda e: e.get("event") == "fault.set")
            self.assertEqual(ev["fault"], "health.fail")

    def test_peer_check_refuses_other_uid_and_ro_serves_it(self):
        p = Pard(self)
        ro = os.path.join(p.tmp, "ro.sock")
        p.env["PAR_ADMIN_RO_SOCKET"] = ro
        os.chmod(p.tmp, 0o711)       # nobody may reach the sockets, not list the directory
        p.start()
        p.wait_ready()
        # Only the peer check stands between nobody and the main socket now.
        os.chmod(p.admin_socket, 0o666)
        r = as_nobody(p.admin_socket, "status")
        self.assertEqual(r["error"]["code"], "denied", r)
        self.assertIn("uid 65534 is not allowed on %s" % p.admin_socket, r["error"]["message"])
        # pard runs as root here: root is the only uid allowed, and the message says how
        # to let others in.
        self.assertIn("(root; PAR_ADMIN_GROUP adds a group)", r["error"]["message"])
        p.wait_event("admin.denied", pred=lambda e: e.get("uid") == 65534)
        r = as_nobody(ro, "status")
        self.assertTrue(r["ok"], r)
        jsonschema.validate(r["result"], STATUS_SCHEMA)
        r = as_nobody(ro, "drain")
        self.assertEqual(r["error"]["code"], "denied")
        self.assertEqual(p.get("/health").status, 200)

    def test_admin_group_is_allowed(self):
        p = Pard(self, env={"PAR_ADMIN_GROUP": "nogroup"})
        os.chmod(p.tmp, 0o711)
        p.start()
        p.wait_ready()
        st = os.stat(p.admin_socket)
        self.assertEqual((st.st_mode & 0o777, st.st_gid), (0o660, 65534))
        r = as_nobody(p.admin_socket, "status")
        self.assertTrue(r["ok"], r)


class Paths(AdminBase):
    def test_stale_socket_is_replaced(self):
        p = Pard(self)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(p.admin_socket)   # bound, never listening, then gone: a dead pard's
        stale.close()
        p.start()
        p.wait_ready()
        p.wait_event("admin.stale_removed")
        self.assertTrue(ap.result(p.admin_socket, "ping")["pong"])

    def test_live_socket_is_not_taken(self):
        p = Pard(self)
        live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        live.bind(p.admin_socket)
        live.listen(1)
        self.addCleanup(live.close)
        p.start()
        p.wait_ready()
        ev = p.wait_event("admin.in_use")
        self.assertEqual(ev["path"], p.admin_socket)
        self.assertEqual(p.get("/health").status, 200)
        self.assertTrue(os.path.exists(p.admin_socket), "another daemon's socket stays")

    def test_non_socket_file_is_left_alone_and_falls_back(self):
        p = Pard(self)
        xdg = os.path.join(p.tmp, "xdg")
        os.mkdir(xdg, 0o700)
        p.env["XDG_RUNTIME_DIR"] = xdg
        with open(p.admin_socket, "w") as f:
            f.write("precious")
        p.start()
        p.wait_ready()
        ev = p.wait_event("admin.listening")
        self.assertEqual(ev["path"], os.path.join(xdg, "par", "admin.sock"))
        with open(p.admin_socket) as f:
            self.assertEqual(f.read(), "precious")

    def test_fallback_when_the_directory_cannot_be_created(self):
        p = Pard(self)
        blocker = os.path.join(p.tmp, "file")
        with open(blocker, "w"):
            pass
        xdg = os.path.join(p.tmp, "xdg")
        os.mkdir(xdg, 0o700)
        p.env["PAR_ADMIN_SOCKET"] = os.path.join(blocker, "admin.sock")
        p.env["XDG_RUNTIME_DIR"] = xdg
        p.start()
        p.wait_ready()
        ev = p.wait_event("admin.listening")
        want = os.path.join(xdg, "par", "admin.sock")
        self.assertEqual(ev["path"], want)
        self.assertTrue(ev["fallback"])
        self.assertEqual(ev["configured"], os.path.join(blocker, "admin.sock"))
        self.assertIn("cannot create directory", ev["fallbackReason"])
        self.assertIn(want, ev["msg"])
        self.assertEqual(os.stat(os.path.join(xdg, "par")).st_mode & 0o777, 0o700)
        st = self.status(want)
        self.assertEqual(st["admin"]["socket"], want)
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(15), 0)
        self.assertFalse(os.path.exists(want))


class Monitor(AdminBase):
    def test_monitor_streams_state_changes_and_faults(self):
        p = self.start()
        path = p.admin_socket
        with ap.Monitor(path) as mon:
            ap.result(path, "fault set", {"name": "rest.latency", "value": "10"})
            ev = mon.wait_event(lambda e: e.get("event") == "fault.set")
            self.assertEqual((ev["fault"], ev["value"]), ("rest.latency", 10))
            ap.result(path, "fault clear", {"name": "rest.latency"})
            mon.wait_event(lambda e: e.get("event") == "fault.cleared")
            ap.result(path, "drain", {"no_exit": True})
            ev = mon.wait_event(lambda e: e.get("event") == "lifecycle.state")
            self.assertEqual((ev["from"], ev["to"]), ("ready", "draining"))
            for key in ("timestamp", "level", "msg"):
                self.assertIn(key, ev)
        p.wait_event("drain.held")
        self.assertEqual(ap.result(path, "undrain")["state"], "ready")
        # The stream's end (client closed) leaves pard fine.
        self.assertTrue(ap.result(path, "ping")["pong"])


if __name__ == "__main__":
    unittest.main()
