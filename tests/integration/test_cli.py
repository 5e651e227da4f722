"""pard's command line: --version, --help with the exit-code table, usage errors, --check
of a package, and --probe as a container health check."""
import os
import re
import subprocess
import tempfile
import shutil
import unittest

from pardtest import EXIT, PARCTL, PARD, SOURCE_DIR, Pard, PardTestCase, free_port, poll, run_pard


def run(args, env=None):
    return subprocess.run([PARD] + args, capture_output=True, env=env or {"PATH": os.environ["PATH"]}, timeout=30)


class Cli(PardTestCase):
    def test_version(self):
        r = run(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^pard \d+\.\d+\.\d+\n$")

    def test_help_lists_every_exit_code(self):
        r = run(["--help"])
        self.assertEqual(r.returncode, 0)
        out = r.stdout.decode()
        for code, name in ((0, "ok"), (2, "usage"), (10, "config"), (11, "fetch"), (12, "load"), (13, "bind"), (14, "budget"), (15, "internal")):
            self.assertRegex(out, r"\n\s+%d\s+%s\s" % (code, name))

    def test_man_page_and_readme_list_the_same_exit_codes(self):
        out = run(["--help"]).stdout.decode()
        helped = set(re.findall(r"(?m)^\s+(\d+)\s+([a-z]+)\s", out))
        with open(os.path.join(SOURCE_DIR, "docs", "pard.8")) as f:
            man = f.read()
        table = man.split(".TS\n", 1)[1].split(".TE", 1)[0]
        manned = {tuple(line.split("\t")[:2]) for line in table.splitlines()[1:] if line}
        self.assertEqual(manned, helped)
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            readme = f.read()
        for code, name in helped:
            if code != "143":
                self.assertRegex(readme, r"\| %s \| %s \|" % (code, name))

    def test_unknown_option_is_usage(self):
        r = run(["--bogus"])
        self.assertEqual(r.returncode, EXIT["usage"])
        self.assertIn(b"usage:", r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_readme_config_table_matches_pard(self):
        r = run(["--help-config"])
        self.assertEqual(r.returncode, 0)
        table = r.stdout.decode()
        self.assertGreater(table.count("\n| `"), 40)
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            readme = f.read()
        begin, end = "<!-- config-table:begin -->\n", "<!-- config-table:end -->"
        self.assertIn(begin, readme)
        doc = readme.split(begin, 1)[1].split(end, 1)[0]
        self.assertEqual(doc, table, "README's table is stale: regenerate it with pard --help-config")

    def test_parctl_version(self):
        r = subprocess.run([PARCTL, "--version"], capture_output=True)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^parctl \d+\.\d+\.\d+\n$")


class Check(PardTestCase):
    def package(self, text):
        d = tempfile.mkdtemp(prefix="pkg-")
        self.addCleanup(shutil.rmtree, d, True)
        if text is not None:
            with open(os.path.join(d, "agent.yaml"), "w") as f:
                f.write(text)
        return d

    def test_good_package(self):
        rc, p = run_pard(self, args=["--check"])
        self.assertEqual(rc, 0)
        ok = p.wait_event("check.package.ok")
        self.assertEqual((ok["name"], ok["version"]), ("demo-agent", "0.1.0"))
        self.assertFalse(p.events("rest.listening"))

    def test_bad_manifest_reports_every_problem(self):
        d = self.package("name: ../evil\nversion: 'a/b'\nui:\n  path: /etc\n")
        rc, p = run_pard(self, args=["--check"], package=d)
        self.assertEqual(rc, EXIT["load"])
        keys = {e["key"].split(" ")[0] for e in p.events("package.manifest.invalid")}
        self.assertTrue({"name", "version", "ui.path"} <= {k.split(":")[0] for k in keys}, keys)

    def test_missing_manifest_at_boot_is_a_load_failure(self):
        d = self.package(None)
        rc, p = run_pard(self, package=d)
        self.assertEqual(rc, EXIT["load"])
        self.assertEqual(p.wait_event("boot.failed")["phase"], "manifest")

    def test_missing_package_dir_is_a_fetch_failure(self):
        rc, p = run_pard(self, package="/nonexistent/pkg")
        self.assertEqual(rc, EXIT["fetch"])
        self.assertEqual(p.wait_event("boot.failed")["phase"], "fetch")


class Probe(PardTestCase):
    def test_probe_ready_booting_and_closed(self):
        p = Pard(self, env={"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "boot.delay=3000"}).start()
        poll(lambda: p.events("rest.listening"), 5, what="REST listener")
        env = {"PATH": os.environ["PATH"], "REST_PORT": str(p.rest_port)}
        booting = run(["--probe"], env)
        self.assertEqual(booting.returncode, 1)
        self.assertIn(b'"event":"probe.unhealthy"', booting.stdout)
        p.wait_ready()
        self.assertEqual(run(["--probe"], env).returncode, 0)
        self.assertEqual(run(["--probe", p.url("/livez")]).returncode, 0)
        closed = run(["--probe", "http://127.0.0.1:%d/health" % free_port()])
        self.assertEqual(closed.returncode, 1)
        self.assertIn(b'"event":"probe.failed"', closed.stdout)

    def test_probe_never_logs_a_query_string(self):
        r = run(["--probe", "http://127.0.0.1:%d/health?token=SECRET" % free_port()])
        self.assertEqual(r.returncode, 1)
        self.assertNotIn(b"SECRET", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
