"""The Bedrock AgentCore contract on the REST port (issue 4 acceptance 7): GET /ping reports
Healthy / HealthyBusy / Unhealthy with a time that moves only when the status does, and
POST /invocations reaches the agent's default action."""
import json
import os
import signal
import threading
import time
import unittest

from pardtest import Pard, PardTestCase, curl, poll

BUILD = os.environ.get("PAR_BUILD_DIR", "")


def example(name):
    return os.path.join(BUILD, "examples", name)


def wait_next_second():
    """The contract's time is in whole seconds: start a transition in a fresh second so a
    change of status is visible as a change of time."""
    t = time.time()
    poll(lambda: int(time.time()) > int(t), 2, interval=0.01, what="next second")


class AgentCore(PardTestCase):
    def test_ping_follows_invocations(self):
        p = Pard(self, package=example("slow-agent")).start()
        p.wait_ready(20)
        r = p.get("/ping")
        self.assertEqual(r.status, 200)
        first = r.json()
        self.assertEqual(first["status"], "Healthy")
        self.assertIsInstance(first["time_of_last_update"], int)
        # No change of status, no change of time.
        wait_next_second()
        self.assertEqual(p.get("/ping").json(), first)

        done = []
        t = threading.Thread(target=lambda: done.append(
            p.get("/invocations", method="POST", extra=["-H", "Content-Type: application/json",
                                                          "--data", '{"ms": 1500}'], timeout=20)))
        t.start()
        busy = poll(lambda: (lambda j: j if j["status"] == "HealthyBusy" else None)(p.get("/ping").json()),
                    10, what="HealthyBusy")
        self.assertGreater(busy["time_of_last_update"], first["time_of_last_update"])
        t.join()
        self.assertEqual(done[0].status, 200, done[0].body)
        wait_next_second()
        after = p.get("/ping").json()
        self.assertEqual(after["status"], "Healthy")
        self.assertGreaterEqual(after["time_of_last_update"], busy["time_of_last_update"])

    def test_ping_unhealthy_while_draining(self):
        p = Pard(self, package=example("echo-agent"), env={"PAR_DRAIN_DELAY_SEC": "5"}).start()
        p.wait_ready(20)
        p.signal(signal.SIGTERM)
        p.wait_event("drain.start")
        r = p.get("/ping")
        self.assertEqual((r.status, r.json()["status"]), (503, "Unhealthy"))

    def test_invocations_reach_the_default_action(self):
        p = Pard(self, package=example("echo-agent")).start()
        p.wait_ready(20)
        r = p.get("/invocations", method="POST", extra=["--data", '{"text": "hi"}'])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"echo": {"text": "hi"}})
        r = p.get("/invocations", method="POST", extra=["--data", '"just a string"'])
        self.assertEqual(r.json(), {"echo": {"input": "just a string"}})
        r = p.get("/invocations", method="POST", extra=["--data", "{not json"])
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"]["code"], "invalid_json")
        r = p.get("/invocations")
        self.assertEqual((r.status, r.header("allow")), (405, "POST"))

    def test_oversized_invocation_is_413(self):
        p = Pard(self, package=example("echo-agent")).start()
        p.wait_ready(20)
        big = os.path.join(p.tmp, "big.json")
        with open(big, "w") as f:
            f.write('{"x":"' + "a" * (17 * 1024 * 1024) + '"}')
        r = p.get("/invocations", method="POST", extra=["--data-binary", "@" + big], timeout=30)
        self.assertEqual(r.status, 413)

    def test_package_without_agent_code(self):
        p = Pard(self).start()    # the REST-only demo package
        p.wait_ready()
        r = p.get("/invocations", method="POST", extra=["--data", "{}"])
        self.assertEqual(r.status, 503)
        self.assertEqual(p.get("/ping").json()["status"], "Healthy")


if __name__ == "__main__":
    unittest.main()
