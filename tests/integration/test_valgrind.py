"""valgrind over one full boot → traffic → drain cycle of the real pard: no memory errors and
no definite or indirect leaks (the sanitizer pass covers the rest of the suite)."""
import os
import shutil
import signal
import unittest

from pardtest import Pard, PardTestCase, curl

VALGRIND = shutil.which("valgrind")
LEAK_EXIT = 99


@unittest.skipIf(os.environ.get("PAR_SANITIZE_BUILD") == "1", "ASan and valgrind do not mix")
class Valgrind(PardTestCase):
    def test_boot_traffic_drain_is_clean(self):
        self.assertTrue(VALGRIND, "valgrind is installed by scripts/install-deps.sh")
        wrapper = [VALGRIND, "--quiet", "--error-exitcode=%d" % LEAK_EXIT, "--leak-check=full",
                   "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                   "--track-fds=no"]
        p = Pard(self, wrapper=wrapper, env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "rest.latency=50",
                                             "BOOT_BUDGET_MS": "60000"}).start()
        p.wait_ready(60)
        for path in ("/health", "/meta", "/metrics", "/livez", "/agents/it-agent/health",
                     "/agents/other/health", "/nope", "/api/x"):
            self.assertNotEqual(p.get(path, timeout=20).status, 0, path)
        self.assertEqual(p.get("/health", method="POST", timeout=20).status, 405)
        p.signal(signal.SIGTERM)
        rc = p.wait_exit(60)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(rc, 0, err[-6000:])
        p.wait_event("drain.done")


if __name__ == "__main__":
    unittest.main()
