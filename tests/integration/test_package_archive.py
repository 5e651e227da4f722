"""Hostile archives through the real pard (issue 3 acceptance 6) and the offline check
`parctl validate` (acceptance 8): each archive is refused with its own rule, nothing is
written outside the private directory, and nothing stays in the cache."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import zipfile

from pardtest import EXIT, PARCTL, SOURCE_DIR, Pard, PardTestCase, run_pard
from peers import make_apkg, sha256_file

GENERATOR = os.path.join(SOURCE_DIR, "tests", "data", "make_hostile_zips.py")


def corpus(test):
    d = tempfile.mkdtemp(prefix="hostile-")
    test.addCleanup(shutil.rmtree, d, True)
    subprocess.run(["/usr/bin/python3", GENERATOR, d], check=True, capture_output=True)
    rows = {}
    with open(os.path.join(d, "expected.tsv")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, code, cap = line.split("\t")[:3]
                rows[name] = (code, cap)
    return d, rows


def tree(path):
    out = set()
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(root, n), path))
    return out


class Hostile(PardTestCase):
    def test_every_hostile_archive_is_refused_with_its_own_rule(self):
        d, rows = corpus(self)
        bad = {n: c for n, c in rows.items() if c[0] != "ok"}
        self.assertGreaterEqual(len(bad), 15)
        self.assertGreaterEqual(len({c for c, _ in bad.values()}), 12, "rules should differ")
        work = tempfile.mkdtemp(prefix="hostile-run-")
        self.addCleanup(shutil.rmtree, work, True)
        canary = os.path.join(work, "canary")
        with open(canary, "w") as f:
            f.write("untouched")
        for name, (code, cap) in sorted(bad.items()):
            with self.subTest(name):
                cache = os.path.join(work, "cache-" + name)
                before = tree(work)
                rc, p = run_pard(self, env={"AGENT_PACKAGE_PATH": os.path.join(d, name), "PAR_CACHE_DIR": cache,
                                            "PAR_MAX_EXTRACT_MB": cap})
                self.assertEqual(rc, EXIT["load"], "\n".join(p.lines[-5:]))
                rej = p.wait_event("package.archive.invalid")
                self.assertEqual(rej["rule"], code)
                self.assertEqual(p.wait_event("boot.failed")["phase"], "extract")
                after = tree(work)
                new = {x for x in after - before if not x.startswith("cache-" + name)}
                self.assertEqual(new, set(), "written outside the cache")
                for sub in ("extracted", "tmp", "packages"):
                    sd = os.path.join(cache, sub)
                    self.assertEqual(os.listdir(sd) if os.path.isdir(sd) else [], [], sub)
                with open(canary) as f:
                    self.assertEqual(f.read(), "untouched")
        self.assertFalse(os.path.exists("/tmp/evil"))


class Validate(PardTestCase):
    def run_validate(self, *args):
        r = subprocess.run([PARCTL] + list(args), capture_output=True, timeout=60)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_good_package(self):
        apkg = make_apkg(self, name="good-one", version="2.0.0")
        rc, out, _ = self.run_validate("validate", apkg, "--sha256", sha256_file(apkg).upper())
        self.assertEqual(rc, 0, out)
        self.assertIn("valid package good-one 2.0.0", out)

    def test_good_directory(self):
        rc, out, _ = self.run_validate("validate", os.path.join(SOURCE_DIR, "examples", "demo-agent"))
        self.assertEqual(rc, 0, out)

    def test_every_problem_is_reported(self):
        d = tempfile.mkdtemp(prefix="bad-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "bad.apkg")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("agent.yaml", "name: ../x\nversion: 1.0\nui:\n  path: ../../etc\n")
            z.writestr("../escape.txt", "x")
            z.writestr("/abs.txt", "x")
        rc, out, _ = self.run_validate("-j", "validate", path, "--sha256", "0" * 64)
        self.assertEqual(rc, 1)
        rep = json.loads(out)
        self.assertFalse(rep["ok"])
        wheres = [(pr["where"], pr["code"]) for pr in rep["problems"]]
        self.assertIn(("sha256", "mismatch"), wheres)
        self.assertIn(("archive", "dotdot"), wheres)
        self.assertIn(("archive", "absolute"), wheres)
        items = {pr["item"].split(" ")[0] for pr in rep["problems"] if pr["where"] == "agent.yaml"}
        self.assertTrue({"name", "ui.path"} <= items, items)
        rc, text, _ = self.run_validate("validate", path)
        self.assertEqual(rc, 1)
        self.assertIn("problems", text.splitlines()[-1])

    def test_hostile_corpus_is_flagged(self):
        d, rows = corpus(self)
        for name, (code, cap) in rows.items():
            with self.subTest(name):
                rc, out, _ = self.run_validate("-j", "validate", os.path.join(d, name), "--max-extract-mb", cap)
                if code == "ok":
                    self.assertEqual(rc, 0, out)
                else:
                    self.assertEqual(rc, 1, out)
                    codes = [p["code"] for p in json.loads(out)["problems"]]
                    self.assertIn(code, codes)

    def test_usage(self):
        rc, _, err = self.run_validate("validate")
        self.assertEqual(rc, 2)
        self.assertIn("usage", err)


if __name__ == "__main__":
    unittest.main()
