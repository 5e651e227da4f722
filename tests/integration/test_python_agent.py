"""Python agent packages (SPEC §4.3, issue 6): our three-surface example packed with a
requirement that only a wheelhouse built here can satisfy, booted by the real pard; REST, A2A,
the entrypoint and the UI answer through pard, the requirement is importable inside the agent
(the venv is used), the venv is reused on the next boot, an impossible requirement fails the
load cleanly, a REST package without FastAPI says so, and a killed worker is restarted."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from pardtest import EXIT, SLOW, SOURCE_DIR, Pard, PardTestCase, curl, poll
from peers import zip_dir
import a2a_client

EXAMPLE = os.path.join(SOURCE_DIR, "examples", "python-agent")
TINY = os.path.join(SOURCE_DIR, "tests", "data", "python", "par-tiny-req")
PY = "/usr/bin/python3"


def build_wheelhouse(dest):
    """pip wheel of the tiny local project, offline, from a copy (pip builds in the tree)."""
    src = tempfile.mkdtemp(prefix="tiny-src-")
    try:
        shutil.copytree(TINY, os.path.join(src, "p"))
        subprocess.run([PY, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
                        "--disable-pip-version-check", "-q", "-w", dest, os.path.join(src, "p")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finally:
        shutil.rmtree(src, True)
    wheels = [f for f in os.listdir(dest) if f.endswith(".whl")]
    assert wheels, "no wheel built in %s" % dest
    return dest


class PythonAgentTest(PardTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="py-agent-")
        cls.wheelhouse = build_wheelhouse(os.path.join(cls.tmp, "wheelhouse"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def package(self, requirements=None, name="python-agent.apkg", manifest=None):
        d = tempfile.mkdtemp(prefix="py-pkg-")
        self.addCleanup(shutil.rmtree, d, True)
        extra = {}
        if requirements is not None:
            extra["requirements.txt"] = requirements
        if manifest is not None:
            extra["agent.yaml"] = manifest
        src = os.path.join(d, "src")
        shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("__pycache__", "agent.yaml")
                        if manifest is not None else shutil.ignore_patterns("__pycache__"))
        return zip_dir(src, os.path.join(d, name), extra)

    def start(self, pkg, cache, **env):
        base = {"PAR_PYTHON": PY, "PAR_CACHE_DIR": cache, "WHEELHOUSE_DIR": self.wheelhouse,
                "PAR_PIP_OFFLINE": "1", "PAR_PYTHON_SYSTEM_SITE_PACKAGES": "1",
                # A venv with pip takes seconds to build; the budget is not what is tested here.
                "BOOT_BUDGET_MS": "120000"}
        base.update(env)
        return Pard(self, package=pkg, env=base).start()

    def install_phase(self, p):
        meta = p.get("/meta").json()
        return next(ph for ph in meta["boot"]["phases"] if ph["name"] == "install")

    def test_three_surfaces_the_venv_and_its_reuse(self):
        cache = os.path.join(self.tmp, "cache-ok")
        pkg = self.package("par-tiny-req==1.2.3\n")
        p = self.start(pkg, cache)
        p.wait_ready(120)
        first = self.install_phase(p)
        self.assertEqual(first["status"], "done")
        self.assertIn("built", first["note"])

        # REST routes of rest_routes.mount, through pard's {BASE}/api proxy.
        r = p.get("/api/status")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["agent"], "python-agent")
        body = json.dumps({"text": "three little words"})
        r = p.get("/api/process", method="POST", headers={"Content-Type": "application/json"},
                  extra=["--data", body])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["word_count"], 3)
        r = p.get("/api/calculate", method="POST", headers={"Content-Type": "application/json"},
                  extra=["--data", json.dumps({"op": "mul", "a": 6, "b": 7})])
        self.assertEqual((r.status, r.json()["result"]), (200, 42))
        for bad in ({"op": "div", "a": 1, "b": 0}, {"op": "pow", "a": 1, "b": 2}, {"a": "x"}):
            r = p.get("/api/calculate", method="POST",
                      headers={"Content-Type": "application/json"}, extra=["--data", json.dumps(bad)])
            self.assertEqual(r.status, 400, (bad, r.body))
            self.assertIn("detail", r.json())

        # The requirement came from the wheelhouse into the venv the worker runs in.
        r = p.get("/api/requirement/par-tiny-req")
        self.assertEqual((r.status, r.json()["version"]), (200, "1.2.3"), r.body)
        rt = p.get("/api/runtime").json()
        venvs = os.path.realpath(os.path.join(cache, "venvs"))
        self.assertTrue(os.path.realpath(rt["prefix"]).startswith(venvs + os.sep), rt)

        # A2A: custom handlers (async) with JSON results; the default action is the entrypoint.
        c = a2a_client.Client(p.a2a_port)
        self.addCleanup(c.close)
        res = c.invoke("echo", {"x": "1", "y": "two"})
        self.assertTrue(res.success, res.error)
        self.assertEqual(json.loads(res.result), {"x": "1", "y": "two"})
        res = c.invoke("add", {"a": "2", "b": "40"})
        self.assertEqual(json.loads(res.result), {"sum": 42})
        res = c.invoke("add", {"a": "two"})
        self.assertFalse(res.success)
        self.assertIn("ValueError", res.error)
        res = c.invoke("", {"q": "hello"})
        self.assertTrue(res.success, res.error)
        self.assertEqual(json.loads(res.result)["handled_by"], "entrypoint")
        res = c.invoke("nope")
        self.assertFalse(res.success)
        self.assertIn("No handler found for action: nope", res.error)
        r = p.get("/invocations", method="POST", headers={"Content-Type": "application/json"},
                  extra=["--data", json.dumps({"q": "rest"})])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["handled_by"], "entrypoint")

        # The UI, on its own port.
        r = curl("http://127.0.0.1:%d/" % p.ui_port)
        self.assertEqual(r.status, 200)
        self.assertIn(b"<html", r.body.lower())

        # /meta shows the manifest's exports, runtime mapping and unknown keys, which loaded.
        meta = p.get("/meta").json()
        self.assertEqual(meta["agentRuntime"], "python")
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(30), 0)

        # Second boot on the same cache: the venv is reused, the install phase near zero.
        q = self.start(pkg, cache)
        q.wait_ready(60)
        again = self.install_phase(q)
        self.assertEqual(again["status"], "done")
        self.assertIn("reused", again["note"])
        self.assertLess(again["durationMs"], 200)
        self.assertEqual(q.get("/api/requirement/par-tiny-req").json()["version"], "1.2.3")
        self.assertEqual(sorted(d for d in os.listdir(os.path.join(cache, "venvs"))
                                if not d.startswith(".")), [os.path.basename(os.path.dirname(
                                    os.path.dirname(rt["executable"])))])
        q.signal(signal.SIGTERM)
        self.assertEqual(q.wait_exit(30), 0)

    def test_unsatisfiable_requirement_fails_the_load_and_leaves_no_venv(self):
        cache = os.path.join(self.tmp, "cache-bad")
        state = os.path.join(self.tmp, "state-bad")
        pkg = self.package("par-no-such-package==9.9\n")
        p = self.start(pkg, cache, PAR_STATE_DIR=state)
        self.assertEqual(p.wait_exit(120), EXIT["load"])
        failed = p.wait_event("boot.failed")
        self.assertEqual(failed["phase"], "install")
        self.assertIn("par-no-such-package==9.9", failed["reason"])
        self.assertEqual(failed["exitCode"], EXIT["load"])
        venvs = os.path.join(cache, "venvs")
        self.assertEqual([d for d in os.listdir(venvs) if os.path.isdir(os.path.join(venvs, d))], [])
        # pip's own words reached the log as JSON lines.
        self.assertTrue(any("par-no-such-package" in r["msg"] for r in p.events("python.install.output")))
        # The failure counts: the second attempt backs off before exiting.
        q = self.start(pkg, cache, PAR_STATE_DIR=state)
        self.assertEqual(q.wait_exit(120), EXIT["load"])
        self.assertEqual((q.wait_event("boot.failed")["failures"], q.wait_event("boot.failed")["backoffSec"]),
                         (2, 2))

    def test_rest_package_without_fastapi_says_so(self):
        cache = os.path.join(self.tmp, "cache-nofastapi")
        # No system site packages: the venv cannot see Debian's FastAPI.
        p = self.start(self.package(), cache, PAR_PYTHON_SYSTEM_SITE_PACKAGES="0")
        self.assertEqual(p.wait_exit(60), EXIT["load"])
        failed = p.wait_event("boot.failed")
        self.assertEqual(failed["phase"], "load")
        self.assertIn("FastAPI", failed["reason"])
        self.assertIn("rest.entry", failed["reason"])

    def test_manifest_with_exports_runtime_mapping_and_unknown_keys_loads(self):
        manifest = ("name: mapped-agent\nversion: '2.0'\nruntime: {python: '>=3.8'}\n"
                    "entrypoint: main:handler\na2a: {service: a2a_service:create_grpc_server}\n"
                    "exports: [echo, add]\nfuture_key: {nested: [1, 2]}\n")
        p = self.start(self.package(manifest=manifest), os.path.join(self.tmp, "cache-map"),
                       PAR_PYTHON_SYSTEM_SITE_PACKAGES="0")
        p.wait_ready(60)
        meta = p.get("/meta").json()
        self.assertEqual((meta["name"], meta["version"]), ("mapped-agent", "2.0"))
        self.assertIn("future_key", json.dumps(meta))
        c = a2a_client.Client(p.a2a_port)
        self.addCleanup(c.close)
        self.assertEqual(json.loads(c.invoke("add", {"a": "1", "b": "2"}).result), {"sum": 3})
        # A constraint the interpreter does not meet is a load failure that names both.
        too_new = manifest.replace(">=3.8", ">=99.0")
        q = self.start(self.package(manifest=too_new), os.path.join(self.tmp, "cache-map"))
        self.assertEqual(q.wait_exit(60), EXIT["load"])
        reason = q.wait_event("boot.failed")["reason"]
        self.assertIn(">=99.0", reason)
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(30), 0)

    def test_bad_interpreter_and_broken_entrypoint_are_load_failures(self):
        # PAR_PYTHON that cannot run: the install phase fails naming it.
        p = self.start(self.package(), os.path.join(self.tmp, "cache-nopy"),
                       PAR_PYTHON="/nonexistent/python3")
        self.assertEqual(p.wait_exit(60), EXIT["load"])
        failed = p.wait_event("boot.failed")
        self.assertEqual(failed["phase"], "install")
        self.assertIn("PAR_PYTHON=/nonexistent/python3", failed["reason"])
        # An entrypoint whose module is not in the package: the worker's own words.
        manifest = "name: broken\nversion: '1'\nentrypoint: nomod:handler\n"
        q = self.start(self.package(manifest=manifest), os.path.join(self.tmp, "cache-broken"),
                       PAR_PYTHON_SYSTEM_SITE_PACKAGES="0")
        self.assertEqual(q.wait_exit(60), EXIT["load"])
        failed = q.wait_event("boot.failed")
        self.assertEqual(failed["phase"], "load")
        self.assertIn("entrypoint nomod:handler", failed["reason"])
        self.assertIn("cannot import module nomod", failed["reason"])

    def test_killed_worker_is_restarted_like_any_exec_worker(self):
        p = self.start(self.package(), os.path.join(self.tmp, "cache-kill"))
        p.wait_ready(60)
        pid = p.wait_event("worker.ready")["pid"]
        os.kill(pid, signal.SIGKILL)
        ex = p.wait_event("worker.exited")
        self.assertEqual((ex["pid"], ex["signal"]), (pid, "SIGKILL"))
        self.assertEqual(p.get("/health").status, 503)
        self.assertEqual(p.get("/api/status").status, 503)
        p.wait_event("worker.ready", pred=lambda r: r["restarts"] == 1, timeout=30)
        poll(lambda: p.get("/health").status == 200, 30, what="health 200 after the restart")
        self.assertEqual(p.get("/api/status").status, 200)
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(30), 0)


if __name__ == "__main__":
    unittest.main()
