"""valgrind over one full boot → calls → drain cycle of the real pard (issue 4 acceptance 8):
the echo agent loaded in-process, REST, /api, AgentCore, UI and A2A calls, a deadline, then a
SIGTERM drain — no memory errors and no definite or indirect leaks. (The sanitizer pass
covers the rest of the suite.)"""
import json
import os
import shutil
import signal
import unittest

import grpc

from pardtest import Pard, PardTestCase, curl

VALGRIND = shutil.which("valgrind")
LEAK_EXIT = 99
BUILD = os.environ.get("PAR_BUILD_DIR", "")


@unittest.skipIf(os.environ.get("PAR_SANITIZE_BUILD") == "1", "ASan and valgrind do not mix")
class Valgrind(PardTestCase):
    def test_boot_calls_drain_is_clean(self):
        from a2a_client import Client
        self.assertTrue(VALGRIND, "valgrind is installed by scripts/install-deps.sh")
        wrapper = [VALGRIND, "--quiet", "--error-exitcode=%d" % LEAK_EXIT, "--leak-check=full",
                   "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                   "--track-fds=no"]
        p = Pard(self, wrapper=wrapper, package=os.path.join(BUILD, "examples", "echo-agent.apkg"),
                 env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "rest.latency=20",
                      "BOOT_BUDGET_MS": "120000"}).start()
        p.wait_ready(120)
        for path in ("/health", "/meta", "/metrics", "/livez", "/ping", "/agents/it-agent/health",
                     "/agents/other/health", "/nope", "/api/hello", "/a2a/health"):
            self.assertNotEqual(p.get(path, timeout=30).status, 0, path)
        self.assertEqual(p.get("/health", method="POST", timeout=30).status, 405)
        r = p.get("/invocations", method="POST", extra=["--data", '{"text":"v"}'], timeout=30)
        self.assertEqual(r.json(), {"echo": {"text": "v"}})
        r = p.get("/api/echo", method="POST", extra=["--data", "payload"], timeout=30)
        self.assertEqual(r.body, b"payload")
        ui = curl("http://127.0.0.1:%d/" % p.ui_port, timeout=30)
        self.assertEqual(ui.status, 200)
        self.assertEqual(curl("http://127.0.0.1:%d/../x" % p.ui_port, timeout=30).status, 400)

        c = Client(p.a2a_port)
        self.addCleanup(c.close)
        res = c.invoke("echo", {"a": "1"}, request_id="vg-1", timeout=30)
        self.assertTrue(res.success)
        self.assertEqual(json.loads(res.result), {"echo": {"a": "1"}})
        self.assertFalse(c.invoke("nope", timeout=30).success)
        # A call that cannot finish inside its deadline: refused in-band by the agent, or
        # cut by gRPC — either way a deadline path runs under valgrind.
        try:
            self.assertFalse(c.invoke("sleep", {"ms": "3000"}, timeout=0.3).success)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(c.status_name(c.check(timeout=30).status), "SERVING")
        c.close()

        p.signal(signal.SIGTERM)
        rc = p.wait_exit(120)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(rc, 0, err[-6000:])
        p.wait_event("drain.done")


if __name__ == "__main__":
    unittest.main()
