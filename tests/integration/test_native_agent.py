"""The native backend (SPEC §4.1) through the real pard: every load rule is a boot failure
(exit 12) naming the file and the rule, an entrypoint cannot escape its package, and the
example echo-agent and slow-agent serve /api, /invocations and drain cleanly."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

from pardtest import EXIT, SLOW, PardTestCase, Pard, run_pard

BUILD_DIR = os.environ.get("PAR_BUILD_DIR", "")
SOURCE_DIR = os.environ.get("PAR_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
INCLUDE = os.path.join(SOURCE_DIR, "libparcommon", "include")
ECHO_DIR = os.path.join(BUILD_DIR, "examples", "echo-agent")
ECHO_APKG = os.path.join(BUILD_DIR, "examples", "echo-agent.apkg")
SLOW_DIR = os.path.join(BUILD_DIR, "examples", "slow-agent")

# A tiny agent, compiled at test time; each test bends one part of it.
TINY_AGENT = r"""
#include <stdlib.h>
#include <string.h>
#include "par/agent.h"

static const char *const tiny_actions[] = {%(actions)s NULL};

static int tiny_init(const char *root, const char *config, void **state, char **error)
{
	(void)root, (void)config, (void)error;
	*state = NULL;
	%(init)s
	return 0;
}

static int tiny_invoke(void *state, const char *action, const char *params, const char *rid,
		       int64_t deadline, char **result, char **error)
{
	(void)state, (void)action, (void)params, (void)rid, (void)deadline, (void)error;
	%(invoke)s
	return PAR_AGENT_OK;
}

__attribute__((visibility("default"))) const struct par_agent_v1 %(symbol)s = {
	.abi_version = %(abi)s,
	.name = "tiny",
	.actions = tiny_actions,
	.init = %(init_fn)s,
	.invoke = tiny_invoke,
};
"""

TINY_DEFAULTS = {
    "actions": '"run",',
    "init": "",
    "invoke": '*result = strdup("{\\"ran\\":true}");',
    "symbol": "par_agent_v1",
    "abi": "PAR_AGENT_ABI_VERSION",
    "init_fn": "tiny_init",
}


def compile_agent(test, out, **over):
    """Builds TINY_AGENT (with over's substitutions) into the shared object out."""
    params = dict(TINY_DEFAULTS, **over)
    src = out + ".c"
    with open(src, "w") as f:
        f.write(TINY_AGENT % params)
    # An undeclared strdup would silently truncate pointers: make it an error.
    r = subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-Werror=implicit-function-declaration",
                        "-shared", "-fPIC", "-fvisibility=hidden", "-I", INCLUDE, "-o", out, src],
                       capture_output=True, text=True)
    test.assertEqual(r.returncode, 0, r.stderr)
    os.unlink(src)


def make_package(test, entrypoint="lib/agent.so", name="tiny-agent"):
    """A package directory with agent.yaml naming entrypoint; returns its path."""
    d = tempfile.mkdtemp(prefix="native-pkg-")
    test.addCleanup(shutil.rmtree, d, True)
    os.makedirs(os.path.join(d, "lib"))
    with open(os.path.join(d, "agent.yaml"), "w") as f:
        f.write("name: %s\nversion: 1.0.0\nruntime: native\nentrypoint: %s\nrest: {}\n" % (name, entrypoint))
    return d


class LoadErrors(PardTestCase):
    """Each broken agent stops the boot in phase load with exit 12 and a reason naming the
    file and the rule it broke."""

    def assert_load_failure(self, pkg, *fragments, phase="load"):
        rc, p = run_pard(self, package=pkg)
        self.assertEqual(rc, EXIT["load"], "\n".join(p.lines[-5:]))
        failed = p.wait_event("boot.failed")
        self.assertEqual(failed["phase"], phase)
        self.assertEqual(failed["exitCode"], EXIT["load"])
        for frag in fragments:
            self.assertIn(frag, failed["reason"])
        self.assertEqual(p.events("lifecycle.ready"), [])
        return failed, p

    def test_entrypoint_file_missing(self):
        pkg = make_package(self, "lib/missing.so")
        self.assert_load_failure(pkg, "lib/missing.so", "no such file")

    def test_entrypoint_not_a_shared_object(self):
        pkg = make_package(self)
        with open(os.path.join(pkg, "lib", "agent.so"), "w") as f:
            f.write("this is not an ELF file\n")
        self.assert_load_failure(pkg, "lib/agent.so", "cannot be loaded as a shared object")

    def test_symbol_missing(self):
        pkg = make_package(self)
        compile_agent(self, os.path.join(pkg, "lib", "agent.so"), symbol="not_the_agent")
        self.assert_load_failure(pkg, "lib/agent.so", "does not export the symbol par_agent_v1")

    def test_abi_version_mismatch(self):
        pkg = make_package(self)
        compile_agent(self, os.path.join(pkg, "lib", "agent.so"), abi="99")
        self.assert_load_failure(pkg, "lib/agent.so", "abi_version 99", "this pard speaks 1")

    def test_init_missing(self):
        pkg = make_package(self)
        compile_agent(self, os.path.join(pkg, "lib", "agent.so"), init_fn="NULL")
        self.assert_load_failure(pkg, "lib/agent.so", "no init function")

    def test_no_actions(self):
        pkg = make_package(self)
        compile_agent(self, os.path.join(pkg, "lib", "agent.so"), actions="")
        self.assert_load_failure(pkg, "lib/agent.so", "must list 1..", "lists 0")

    def test_init_failing(self):
        pkg = make_package(self)
        compile_agent(self, os.path.join(pkg, "lib", "agent.so"),
                      init='*error = strdup("cannot reach the model endpoint"); return 1;')
        self.assert_load_failure(pkg, "lib/agent.so", "init failed",
                                 "cannot reach the model endpoint")

    def test_dotdot_entrypoint_refused(self):
        # The manifest already refuses a '..' component, before any file is touched.
        outside = tempfile.mkdtemp(prefix="native-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        compile_agent(self, os.path.join(outside, "agent.so"))
        pkg = make_package(self, "../%s/agent.so" % os.path.basename(outside))
        rc, p = run_pard(self, package=pkg)
        self.assertEqual(rc, EXIT["load"])
        self.assertEqual(p.wait_event("boot.failed")["phase"], "manifest")
        bad = p.wait_event("package.manifest.invalid")
        self.assertTrue(bad["key"].startswith("entrypoint"), bad["key"])
        self.assertIn("..", bad["rule"])
        self.assertEqual(p.events("agent.native.loaded"), [])

    def test_symlink_escaping_the_package_refused(self):
        # A working agent outside the package: only the escape can be the reason to refuse.
        outside = tempfile.mkdtemp(prefix="native-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        compile_agent(self, os.path.join(outside, "agent.so"))
        with self.subTest("file symlink"):
            pkg = make_package(self)
            os.symlink(os.path.join(outside, "agent.so"), os.path.join(pkg, "lib", "agent.so"))
            self.assert_load_failure(pkg, "lib/agent.so", "outside the package root")
        with self.subTest("directory symlink"):
            pkg = make_package(self)
            os.rmdir(os.path.join(pkg, "lib"))
            os.symlink(outside, os.path.join(pkg, "lib"))
            self.assert_load_failure(pkg, "lib/agent.so", "outside the package root")
        with self.subTest("the same agent inside the package loads"):
            pkg = make_package(self)
            shutil.copy(os.path.join(outside, "agent.so"), os.path.join(pkg, "lib", "agent.so"))
            p = Pard(self, package=pkg).start()
            p.wait_ready()
            p.signal()
            self.assertEqual(p.wait_exit(), 0)

    def test_symlink_inside_the_package_allowed(self):
        pkg = make_package(self)
        compile_agent(self, os.path.join(pkg, "lib", "real.so"))
        os.symlink("real.so", os.path.join(pkg, "lib", "agent.so"))
        p = Pard(self, package=pkg).start()
        p.wait_ready()
        p.signal()
        self.assertEqual(p.wait_exit(), 0)


class TinyAgents(PardTestCase):
    """Agents that break the contract at run time: pard answers, it does not crash."""

    def start(self, **over):
        pkg = make_package(self)
        compile_agent(self, os.path.join(pkg, "lib", "agent.so"), **over)
        p = Pard(self, package=pkg).start()
        p.wait_ready()
        return p

    def test_result_that_is_not_json_is_an_internal_error(self):
        p = self.start(invoke='*result = strdup("{not json"); return PAR_AGENT_OK;')
        r = p.get("/invocations", method="POST", extra=["--data", "{}"])
        self.assertEqual(r.status, 500, r.body)
        self.assertIn("not JSON", r.json()["error"]["message"])
        p.wait_event("agent.native.fault")
        p.signal()
        self.assertEqual(p.wait_exit(), 0)

    def test_agent_without_http_handler_has_no_api_routes(self):
        p = self.start()
        r = p.get("/api/anything")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"]["code"], "no_agent_route")
        p.signal()
        self.assertEqual(p.wait_exit(), 0)


class EchoAgent(PardTestCase):
    """The example echo-agent: its /api routes and its default action over REST."""

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(os.path.join(ECHO_DIR, "lib", "echo_agent.so")),
                        "build the examples first (PAR_BUILD_DIR=%r)" % BUILD_DIR)
        self.p = Pard(self, package=ECHO_DIR).start()
        self.p.wait_ready()

    def tearDown(self):
        self.p.signal()
        self.assertEqual(self.p.wait_exit(), 0)
        self.p.wait_event("agent.native.stopped")

    def test_api_hello(self):
        r = self.p.get("/api/hello", headers={"X-Request-ID": "hello-1"})
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["hello"], "world")
        self.assertEqual(body["requestId"], "hello-1")
        self.assertEqual(body["agentAppId"], "it-agent")   # init saw the configuration
        self.assertEqual(r.header("x-request-id"), "hello-1")
        self.assertTrue(r.header("content-type").startswith("application/json"))

    def test_api_echo_returns_the_body_with_its_content_type(self):
        payload = "héllo\x00 binary\nlines".encode()
        path = os.path.join(self.p.tmp, "body.bin")
        with open(path, "wb") as f:
            f.write(payload)
        r = self.p.get("/api/echo", method="POST",
                       headers={"Content-Type": "text/x-echo; charset=utf-8"},
                       extra=["--data-binary", "@" + path])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.body, payload)
        self.assertEqual(r.header("content-type"), "text/x-echo; charset=utf-8")

    def test_api_echo_large_body(self):
        body = os.urandom(3 * 1024 * 1024)
        path = os.path.join(self.p.tmp, "body.bin")
        with open(path, "wb") as f:
            f.write(body)
        r = self.p.get("/api/echo", method="POST", timeout=30,
                       headers={"Content-Type": "application/octet-stream"},
                       extra=["--data-binary", "@" + path])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)

    def test_api_body_over_16_mib_is_413(self):
        path = os.path.join(self.p.tmp, "big.bin")
        with open(path, "wb") as f:
            f.truncate(16 * 1024 * 1024 + 1)
        for how, hdrs in (("content-length", {}), ("chunked", {"Transfer-Encoding": "chunked"})):
            with self.subTest(how):
                hdrs = dict(hdrs, **{"Content-Type": "application/octet-stream"})
                r = self.p.get("/api/echo", method="POST", timeout=60, headers=hdrs,
                               extra=["--data-binary", "@" + path])
                self.assertEqual(r.status, 413, r.body[:200])
                self.assertEqual(r.json()["error"]["code"], "body_too_large")

    def test_api_unknown_route_is_the_agents_404(self):
        r = self.p.get("/api/nope")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"]["code"], "not_found")

    def test_invocations_run_the_default_action(self):
        r = self.p.get("/invocations", method="POST", headers={"Content-Type": "application/json"},
                       extra=["--data", json.dumps({"text": "abc", "n": 2})])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"echo": {"text": "abc", "n": 2}})


class EchoAgentArchive(PardTestCase):
    def test_apkg_boots_and_serves(self):
        self.assertTrue(os.path.exists(ECHO_APKG), "build the examples first")
        p = Pard(self, package=ECHO_APKG).start()
        p.wait_ready()
        self.assertEqual(p.get("/api/hello").json()["hello"], "world")
        p.signal()
        self.assertEqual(p.wait_exit(), 0)


class SlowAgent(PardTestCase):
    def test_query_reaches_the_agent(self):
        p = Pard(self, package=SLOW_DIR).start()
        p.wait_ready()
        r = p.get("/api/slow?x=a%20b&ms=25")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"slept": 25})
        self.assertEqual(p.get("/api/slow?ms=soon").status, 400)
        p.signal()
        self.assertEqual(p.wait_exit(), 0)

    def test_drain_waits_for_a_native_call_then_unloads(self):
        p = Pard(self, package=SLOW_DIR).start()
        p.wait_ready()
        got = {}

        def call():
            got["r"] = p.get("/api/slow?ms=%d" % int(1200 * SLOW), timeout=30)

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.3 * SLOW)
        p.signal()
        t.join(30)
        self.assertEqual(p.wait_exit(), 0)
        r = got["r"]
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["slept"], int(1200 * SLOW))
        # The object is unloaded only after the call inside it returned.
        names = [rec.get("event") for rec in p.events()]
        self.assertIn("agent.native.stopped", names)
        done = max(i for i, n in enumerate(names) if n == "rest.request")
        self.assertGreater(names.index("agent.native.stopped"), done)


if __name__ == "__main__":
    import unittest
    unittest.main()
