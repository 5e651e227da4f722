"""Boot budgets and backoff (SPEC §6.2, §6.4, issue 2 acceptance 7): the watchdog aborts at
the hard limit during the slow phase; the failure counter persists per agent in
PAR_STATE_DIR, sets the backoff, and is cleared after READY for PAR_BACKOFF_RESET_SEC."""
import os
import signal
import tempfile
import shutil
import time
import unittest

from pardtest import EXIT, SLOW, Pard, PardTestCase


class Budget(PardTestCase):
    def setUp(self):
        super().setUp()
        self.state = tempfile.mkdtemp(prefix="pard-state-")
        self.addCleanup(shutil.rmtree, self.state, True)

    def run_slow_boot(self, extra=None):
        env = {"PAR_STATE_DIR": self.state, "BOOT_BUDGET_MS": "300",
               "BOOT_HARD_LIMIT_MULTIPLIER": "2", "PAR_ENABLE_FAULTS": "1",
               "PAR_FAULTS": "boot.delay=8000"}
        env.update(extra or {})
        p = Pard(self, env=env).start()
        rc = p.wait_exit(20)
        exit_t = time.monotonic()
        return rc, p, exit_t

    def counter_files(self):
        return [f for f in os.listdir(self.state) if f.startswith("boot-failures-")]

    def test_hard_limit_aborts_during_the_phase_and_backoff_persists(self):
        rc, p, exit_t = self.run_slow_boot()
        self.assertEqual(rc, EXIT["budget"])
        soft = p.wait_event("boot.budget.exceeded")
        self.assertEqual(soft["phase"], "load")
        hard = p.wait_event("boot.budget.hard_limit")
        self.assertEqual(hard["phase"], "load")
        self.assertEqual(hard["limitMs"], 600)
        # Aborted at the limit, long before the 8 s phase would have ended.
        self.assertLess(exit_t - p.t0, 4 * SLOW)
        failed = p.wait_event("boot.failed")
        self.assertEqual((failed["failures"], failed["backoffSec"], failed["exitCode"]), (1, 0, 14))
        self.assertEqual(len(self.counter_files()), 1)

        # The second run shares the state directory: it backs off 2 s before exiting.
        rc, p2, exit_t = self.run_slow_boot()
        self.assertEqual(rc, EXIT["budget"])
        failed = p2.wait_event("boot.failed")
        self.assertEqual((failed["failures"], failed["backoffSec"]), (2, 2))
        self.assertGreaterEqual(exit_t - p2.t0, 2.0 + 0.6)

        # A run that stays READY past the reset window clears the counter ...
        p3 = Pard(self, env={"PAR_STATE_DIR": self.state, "PAR_BACKOFF_RESET_SEC": "1"}).start()
        p3.wait_ready()
        p3.wait_event("boot.backoff.reset", 10)
        self.assertEqual(self.counter_files(), [])
        p3.signal(signal.SIGTERM)
        self.assertEqual(p3.wait_exit(), 0)

        # ... so the next failure is a first failure again: no backoff.
        rc, p4, _ = self.run_slow_boot()
        self.assertEqual(p4.wait_event("boot.failed")["backoffSec"], 0)

    def test_boot_failure_count_env_sets_the_backoff(self):
        p = Pard(self, env={"PAR_STATE_DIR": self.state, "BOOT_FAILURE_COUNT": "1",
                            "REST_PORT": "abc"}).start()
        rc = p.wait_exit(10)
        self.assertEqual(rc, EXIT["config"])
        self.assertEqual(p.wait_event("boot.failed")["backoffSec"], 2)
        self.assertGreaterEqual(time.monotonic() - p.t0, 2.0)

    def test_sigterm_cuts_the_backoff_short(self):
        p = Pard(self, env={"PAR_STATE_DIR": self.state, "BOOT_FAILURE_COUNT": "5",
                            "REST_PORT": "abc"}).start()
        self.assertEqual(p.wait_event("boot.failed")["backoffSec"], 32)
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(5), EXIT["config"])
        p.wait_event("boot.backoff.interrupted")

    def test_malformed_counter_file_is_a_warning(self):
        rc, p, _ = self.run_slow_boot()
        (name,) = self.counter_files()
        with open(os.path.join(self.state, name), "w") as f:
            f.write("garbage\n")
        rc, p, _ = self.run_slow_boot()
        self.assertEqual(rc, EXIT["budget"])
        p.wait_event("boot.backoff.state.invalid")
        self.assertEqual(p.wait_event("boot.failed")["backoffSec"], 0)

    def test_soft_budget_only_warns(self):
        p = Pard(self, env={"PAR_STATE_DIR": self.state, "BOOT_BUDGET_MS": "200",
                            "BOOT_HARD_LIMIT_MULTIPLIER": "0", "PAR_ENABLE_FAULTS": "1",
                            "PAR_FAULTS": "boot.delay=700"}).start()
        ready = p.wait_ready()
        self.assertTrue(ready["overBudget"])
        self.assertEqual(p.wait_event("boot.budget.exceeded")["phase"], "load")
        meta = p.get("/meta").json()
        self.assertTrue(meta["boot"]["budgetExceeded"])
        self.assertIsNone(meta["boot"]["hardLimitMs"])
        self.assertIn("par_boot_budget_exceeded 1", p.get("/metrics").body.decode())
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(), 0)


if __name__ == "__main__":
    unittest.main()
