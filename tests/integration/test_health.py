"""The REST health surface (SPEC §5, issue 2 acceptance 3–5): listener before the package,
/health gating, /livez, /agents/{id}/health under any BASE_PATH, /meta, /metrics, request
ids and JSON errors."""
import os
import tempfile
import threading
import unittest

from pardtest import SLOW, Pard, PardTestCase, curl, poll


def make_package(test, yaml_text):
    d = tempfile.mkdtemp(prefix="pkg-")
    test.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
    with open(os.path.join(d, "agent.yaml"), "w") as f:
        f.write(yaml_text)
    return d


REST_ONLY = "name: rest-only\nversion: 1.0.0\nruntime: native\nrest: {}\n"


class BootGating(PardTestCase):
    def test_health_is_503_not_refused_during_a_slow_boot_then_200(self):
        p = Pard(self, env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "boot.delay=1500"}).start()
        poll(lambda: p.events("rest.listening"), 5, what="REST listener")
        seen = {"health": set(), "livez": set()}
        stop = threading.Event()

        def watch():
            # /livez must answer 200 during the whole boot, /health 503 until READY.
            while not stop.is_set():
                seen["health"].add(p.get("/health").status)
                seen["livez"].add(p.get("/livez").status)

        r = p.get("/health")
        self.assertEqual(r.status, 503)
        body = r.json()
        self.assertEqual(body["state"], "booting")
        self.assertFalse(body["ok"])
        self.assertEqual(body["surfaces"]["rest"], "up")
        self.assertIsInstance(body["timestamp"], int)

        t = threading.Thread(target=watch)
        t.start()
        try:
            ready = p.wait_ready(10)
        finally:
            poll(lambda: p.get("/health").status == 200, 5, what="/health 200")
            stop.set()
            t.join()
        self.assertGreaterEqual(ready["bootMs"], 1500)
        self.assertEqual(seen["livez"], {200})
        self.assertIn(503, seen["health"])
        self.assertNotIn(0, seen["health"], "a health check was refused during boot")
        r = p.get("/health")
        self.assertEqual(r.json()["state"], "ready")
        self.assertTrue(r.json()["ok"])

    def test_rest_only_package_becomes_ready(self):
        p = Pard(self, package=make_package(self, REST_ONLY)).start()
        p.wait_ready()
        r = p.get("/health")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["surfaces"], {"rest": "up", "a2a": "absent", "ui": "absent", "agent": "absent"})

    def test_head_health(self):
        p = Pard(self).start()
        p.wait_ready()
        r = p.get("/health", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "application/json")


class AgentHealth(PardTestCase):
    def check_agent_routes(self, p, prefix=""):
        r = p.get(prefix + "/agents/it-agent/health")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["status"], "healthy")
        self.assertEqual(r.json()["agentAppId"], "it-agent")
        r = p.get(prefix + "/agents/someone-else/health")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"]["code"], "unknown_agent")

    def test_root_base_path(self):
        p = Pard(self, env={"BASE_PATH": "/"}).start()
        p.wait_ready()
        self.check_agent_routes(p)

    def test_base_path_is_the_agent_path(self):
        # SPEC §12.13: BASE_PATH=/agents/{id} must not shadow /agents/{id}/health.
        p = Pard(self, env={"BASE_PATH": "/agents/it-agent"}).start()
        p.wait_ready()
        self.check_agent_routes(p)
        self.check_agent_routes(p, "/agents/it-agent")
        self.assertEqual(p.get("/agents/it-agent/meta").status, 200)
        self.assertEqual(p.get("/health").status, 200)

    def test_starting_while_booting(self):
        p = Pard(self, env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "boot.delay=3000"}).start()
        poll(lambda: p.events("rest.listening"), 5, what="REST listener")
        r = p.get("/agents/it-agent/health")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json()["status"], "starting")


class Routes(PardTestCase):
    def setUp(self):
        super().setUp()
        self.p = Pard(self, env={"BASE_PATH": "/svc", "DEPLOYMENT_ID": "dep-1"}).start()
        self.p.wait_ready()

    def test_meta_under_both_paths(self):
        for path in ("/meta", "/svc/meta"):
            r = self.p.get(path)
            self.assertEqual(r.status, 200)
            m = r.json()
            self.assertEqual(m["name"], "demo-agent")
            self.assertEqual(m["agentAppId"], "it-agent")
            self.assertEqual(m["deploymentId"], "dep-1")
            phases = [ph["name"] for ph in m["boot"]["phases"]]
            self.assertEqual(phases, ["config", "listen", "fetch", "verify", "extract", "manifest", "install", "load", "surfaces", "probe"])
            self.assertTrue(all(ph["status"] in ("done", "skipped") for ph in m["boot"]["phases"]))
            self.assertIsInstance(m["boot"]["totalMs"], int)
            self.assertIsInstance(m["manifest"], dict)

    def test_base_health(self):
        self.assertEqual(self.p.get("/svc/health").status, 200)

    def test_metrics_exposition(self):
        self.p.get("/health")
        r = self.p.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type").startswith("text/plain; version=0.0.4"))
        text = r.body.decode()
        self.assertIn('par_state{state="ready"} 1', text)
        self.assertIn('par_state{state="booting"} 0', text)
        self.assertIn('par_boot_phase_duration_seconds{phase="manifest"}', text)
        self.assertRegex(text, r'par_http_requests_total\{surface="rest",code="200"\} [1-9]')
        self.assertIn("# TYPE par_http_request_duration_seconds histogram", text)

    def test_request_id_echoed_or_generated(self):
        r = self.p.get("/health", headers={"X-Request-ID": "abc-123"})
        self.assertEqual(r.header("x-request-id"), "abc-123")
        self.p.wait_event("rest.request", pred=lambda e: e.get("requestId") == "abc-123")
        r1 = self.p.get("/health")
        r2 = self.p.get("/health")
        self.assertTrue(r1.header("x-request-id"))
        self.assertNotEqual(r1.header("x-request-id"), r2.header("x-request-id"))
        # A hostile id (spaces, quotes) is replaced, never echoed.
        r = self.p.get("/health", headers={"X-Request-ID": 'x" y'})
        self.assertNotIn('"', r.header("x-request-id"))

    def test_json_errors(self):
        r = self.p.get("/nope")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"]["code"], "not_found")
        self.assertTrue(r.json()["requestId"])
        r = self.p.get("/health", method="POST")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("allow"), "GET, HEAD")
        self.assertEqual(r.json()["error"]["code"], "method_not_allowed")

    def test_livez(self):
        r = self.p.get("/livez")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json()["ok"])


class Listener(PardTestCase):
    def test_port_taken_is_a_bind_error(self):
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 0))
        s.listen()
        self.addCleanup(s.close)
        p = Pard(self)
        p.env["REST_PORT"] = str(s.getsockname()[1])
        p.start()
        self.assertEqual(p.wait_exit(), 13)
        e = p.wait_event("rest.bind.failed")
        self.assertEqual(e["variable"], "REST_PORT")
        self.assertIn("in use", e["error"])


if __name__ == "__main__":
    unittest.main()
