"""The drain (SPEC §6.3, issue 2 acceptance 6): SIGTERM finishes in-flight requests, the
drain delay keeps serving 503, then new connections are refused at once; a second signal
exits at once."""
import re
import signal
import threading
import time
import unittest

from pardtest import SLOW, Pard, PardTestCase, curl, poll


def in_flight(p):
    text = p.get("/metrics").body.decode()
    m = re.search(r'^par_http_in_flight\{surface="rest"\} (\d+)', text, re.M)
    # The /metrics request itself is in flight while it is answered.
    return int(m.group(1)) - 1 if m else 0


class Drain(PardTestCase):
    def start_slow(self, p, path="/meta", results=None):
        results = results if results is not None else []

        def run():
            results.append(p.get(path, timeout=30))
        t = threading.Thread(target=run)
        t.start()
        return t, results

    def test_in_flight_request_completes_and_pard_exits_0(self):
        p = Pard(self, env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "rest.latency=1500",
                            "GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "20"}).start()
        p.wait_ready()
        t, results = self.start_slow(p)
        poll(lambda: in_flight(p) >= 1, 5, what="slow request in flight")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        rc = p.wait_exit(20)
        t.join()
        self.assertEqual(rc, 0)
        self.assertEqual(results[0].status, 200)
        self.assertEqual(results[0].header("connection"), "close")
        self.assertEqual(results[0].json()["name"], "demo-agent")
        self.assertLess(time.monotonic() - t0, 10 * SLOW, "drain took as long as the deadline")
        done = p.wait_event("drain.done")
        self.assertEqual(done["cancelled"], 0)
        states = [e["to"] for e in p.events("lifecycle.state")]
        self.assertEqual(states[-2:], ["draining", "stopped"])

    def test_drain_delay_serves_503_then_refuses_new_connections(self):
        p = Pard(self, env={"PAR_DRAIN_DELAY_SEC": "2"}).start()
        p.wait_ready()
        p.signal(signal.SIGTERM)
        p.wait_event("drain.start")
        t_start = time.monotonic()
        r = p.get("/health")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json()["state"], "draining")
        self.assertEqual(r.header("connection"), "close")
        self.assertEqual(p.get("/livez").status, 200)
        r = p.get("/agents/it-agent/health")
        self.assertEqual((r.status, r.json()["status"]), (503, "draining"))
        # Still serving 503 (not refusing) through the delay.
        while time.monotonic() - t_start < 1.2:
            self.assertEqual(p.get("/health").status, 503)
            time.sleep(0.1)
        p.wait_event("rest.listener.closed", 5)
        t0 = time.monotonic()
        r = p.get("/health", timeout=5)
        self.assertEqual(r.curl_rc, 7, "expected connection refused, got status %d" % r.status)
        self.assertLess(time.monotonic() - t0, 1.0, "a refused connect must not hang")
        self.assertEqual(p.wait_exit(10), 0)
        self.assertGreaterEqual(time.monotonic() - t_start, 1.8)

    def test_second_sigterm_exits_at_once(self):
        p = Pard(self, env={"PAR_DRAIN_DELAY_SEC": "60"}).start()
        p.wait_ready()
        p.signal(signal.SIGTERM)
        p.wait_event("drain.start")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        rc = p.wait_exit(5)
        self.assertLess(time.monotonic() - t0, 2 * SLOW)
        self.assertEqual(rc, 128 + signal.SIGTERM)
        p.wait_event("drain.forced")

    def test_sigint_drains_like_sigterm(self):
        p = Pard(self).start()
        p.wait_ready()
        p.signal(signal.SIGINT)
        self.assertEqual(p.wait_exit(10), 0)
        self.assertEqual(p.wait_event("drain.start")["signal"], "SIGINT")

    def test_request_longer_than_grace_is_cancelled_and_exit_is_0(self):
        p = Pard(self, env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "rest.latency=4000",
                            "GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "1"}).start()
        p.wait_ready()
        t, results = self.start_slow(p)
        poll(lambda: in_flight(p) >= 1, 8, what="slow request in flight")
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(15), 0)
        t.join()
        self.assertNotEqual(results[0].status, 200)
        self.assertEqual(p.wait_event("drain.timeout")["inFlight"], 1)

    def test_sigterm_during_boot_stops_promptly(self):
        p = Pard(self, env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "boot.delay=20000",
                            "PAR_DRAIN_DELAY_SEC": "30"}).start()
        poll(lambda: p.events("rest.listening"), 5, what="REST listener")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(10), 0)
        # Never READY, so never in rotation: no drain delay to sit out.
        self.assertLess(time.monotonic() - t0, 3 * SLOW)
        self.assertFalse(p.events("lifecycle.ready"))


if __name__ == "__main__":
    unittest.main()
