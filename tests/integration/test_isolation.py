"""verify-isolation (issue 8): signed control-plane probes against fake AWS endpoints, the
egress ledger judged inside a network namespace whose only reachable host is the fake S3,
static keys and --strict, and the process check as root and as nobody."""
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import adminproto
from fake_aws import ACTIONS, FakeAws
from pardtest import PARCTL, SLOW, Pard, PardTestCase, free_port, poll
from peers import PEERS_DIR, S3_KEY, S3_SECRET, credentials_endpoint, make_apkg, read_bytes

IAM_CHECKS = {
    "iam.ecs": "ecs:ListClusters",
    "iam.elb": "elasticloadbalancing:DescribeLoadBalancers",
    "iam.servicediscovery": "servicediscovery:ListNamespaces",
    "iam.dynamodb": "dynamodb:ListTables",
    "iam.iam": "iam:ListRoles",
}
CHECK_ORDER = ["egress"] + list(IAM_CHECKS) + ["s3", "environment", "process"]

# The task role's credentials as the fake container endpoint hands them out.
ROLE_KEY, ROLE_SECRET, ROLE_TOKEN = "ASIAROLEKEYID0001", "role/secret+KEY", "ROLE-SESSION-TOKEN=="


def verify(test, pard, strict=False):
    """(exit code, report) of `verify-isolation`: through parctl -j when PARCTL names it, else
    the admin protocol with parctl's rule (0 when the report is ok, else 1). The report's shape
    and its log lines are checked on the way."""
    sock = pard.env["PAR_ADMIN_SOCKET"]
    logged_before = len(pard.events("isolation.summary"))
    if PARCTL and os.path.exists(PARCTL):
        args = [PARCTL, "-s", sock, "-t", str(int(30 * SLOW)), "-j", "verify-isolation"]
        p = subprocess.run(args + (["--strict"] if strict else []), capture_output=True,
                           timeout=60 * SLOW)
        test.assertIn(p.returncode, (0, 1), p.stderr.decode(errors="replace"))
        rc, report = p.returncode, json.loads(p.stdout)
    else:
        r = adminproto.call(sock, "verify-isolation", {"strict": strict}, timeout=30)
        test.assertTrue(r["ok"], r)
        report = r["result"]
        rc = 0 if report["ok"] else 1
    check_report_shape(test, report, strict)
    test.assertEqual(rc, 0 if report["ok"] else 1, "parctl's exit code must follow the report's ok")
    # The same report is in the log: one isolation.check line per check, then the summary.
    poll(lambda: len(pard.events("isolation.summary")) > logged_before, 5, what="isolation.summary")
    summary = pard.events("isolation.summary")[-1]
    test.assertEqual((summary["pass"], summary["warn"], summary["fail"], summary["ok"]),
                     (report["summary"]["pass"], report["summary"]["warn"],
                      report["summary"]["fail"], report["ok"]))
    logged = pard.events("isolation.check")[-len(report["checks"]):]
    test.assertEqual([(c["check"], c["verdict"], c["evidence"]) for c in logged],
                     [(c["name"], c["verdict"], c["evidence"]) for c in report["checks"]])
    return rc, report


def check_report_shape(test, report, strict):
    test.assertEqual(report["strict"], strict)
    test.assertEqual([c["name"] for c in report["checks"]], CHECK_ORDER)
    counts = {"PASS": 0, "WARN": 0, "FAIL": 0}
    for c in report["checks"]:
        test.assertIn(c["verdict"], counts)
        test.assertTrue(c["evidence"] and "\n" not in c["evidence"], c)
        counts[c["verdict"]] += 1
    test.assertEqual(report["summary"], {"pass": counts["PASS"], "warn": counts["WARN"],
                                         "fail": counts["FAIL"]})
    test.assertEqual(report["ok"], counts["FAIL"] == 0)
    if strict:
        test.assertEqual(counts["WARN"], 0, "--strict turns every WARN into a FAIL")


def stop_cleanly(test, pard):
    """SIGTERM and a clean exit, so a sanitizer build reports any leak the checks left."""
    pard.signal(signal.SIGTERM)
    test.assertEqual(pard.wait_exit(30), 0)


def by_name(report):
    return {c["name"]: c for c in report["checks"]}


def assert_no_secrets(test, pard, report, *secrets):
    text = "\n".join(pard.lines) + json.dumps(report)
    for s in secrets:
        test.assertNotIn(s, text)


class ControlPlane(PardTestCase):
    """Acceptance 1: the task role's read-only control-plane calls must be denied."""

    def setUp(self):
        super().setUp()
        self.creds = credentials_endpoint(self, key=ROLE_KEY, secret=ROLE_SECRET, token=ROLE_TOKEN)
        self.deny = FakeAws(self, ROLE_KEY, ROLE_SECRET, token=ROLE_TOKEN, region="eu-west-3")

    def boot(self, **env):
        base = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.creds.url("/creds"),
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.creds.auth,
                "AWS_REGION": "eu-west-3",
                # Every AWS call of this test goes to a fake of ours, never to AWS.
                "AWS_ENDPOINT_URL": self.deny.endpoint}
        base.update(env)
        p = Pard(self, env=base).start()
        p.wait_ready(20)
        return p

    def test_denied_everywhere_passes_and_exits_0(self):
        p = self.boot()
        t0 = time.monotonic()
        rc, rep = verify(self, p)
        checks = by_name(rep)
        for name, action in IAM_CHECKS.items():
            self.assertEqual(checks[name]["verdict"], "PASS", checks[name])
            self.assertIn(action, checks[name]["evidence"])
            self.assertIn("denied", checks[name]["evidence"])
            self.assertIn(self.deny.endpoint, checks[name]["evidence"])
            (call,) = self.deny.calls_for(action)
            # The fake recomputed the signature: right key, region and service name in the scope.
            self.assertEqual(call["problem"], "", call)
            self.assertEqual(call["service"], ACTIONS[action]["service"])
            self.assertEqual(call["answer"], "denied")
        self.assertEqual(len(self.deny.calls), len(IAM_CHECKS))
        self.assertEqual(rc, 0)
        self.assertTrue(rep["ok"])
        self.assertEqual(checks["environment"]["verdict"], "PASS")
        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        # The ledger is judged before the command's own connections; the next run sees the
        # credentials fetch (allowed: the credentials endpoint) and the probes (its own).
        self.assertEqual(checks["egress"]["verdict"], "PASS", checks["egress"])
        rc, rep2 = verify(self, p)
        egress = by_name(rep2)["egress"]
        self.assertEqual(egress["verdict"], "PASS", egress)
        self.assertIn("credentials endpoint (127.0.0.1:%d)" % self.creds.port, egress["evidence"])
        assert_no_secrets(self, p, rep, ROLE_KEY, ROLE_SECRET, ROLE_TOKEN, self.creds.auth)

    def test_allowed_ecs_fails_naming_action_and_endpoint(self):
        allow = FakeAws(self, ROLE_KEY, ROLE_SECRET, token=ROLE_TOKEN, region="eu-west-3",
                        allow={"ecs:ListClusters"})
        p = self.boot(AWS_ENDPOINT_URL_ECS=allow.endpoint)
        rc, rep = verify(self, p)
        checks = by_name(rep)
        ecs = checks["iam.ecs"]
        self.assertEqual(ecs["verdict"], "FAIL", ecs)
        self.assertIn("ecs:ListClusters", ecs["evidence"])
        self.assertIn(allow.endpoint, ecs["evidence"])
        self.assertIn("over-privileged", ecs["evidence"])
        for name in set(IAM_CHECKS) - {"iam.ecs"}:
            self.assertEqual(checks[name]["verdict"], "PASS", checks[name])
        # AWS_ENDPOINT_URL_ECS wins over AWS_ENDPOINT_URL for ECS only.
        self.assertEqual([c["answer"] for c in allow.calls], ["allowed"])
        self.assertEqual(allow.calls[0]["problem"], "")
        self.assertEqual(self.deny.calls_for("ecs:ListClusters"), [])
        self.assertEqual(rc, 1)
        self.assertFalse(rep["ok"])
        stop_cleanly(self, p)

    def test_a_call_the_fake_cannot_verify_is_not_a_pass(self):
        # The fake expects another secret: every signature mismatches, and a rejection of the
        # credentials says nothing about the role's rights.
        wrong = FakeAws(self, ROLE_KEY, "another-secret", token=ROLE_TOKEN, region="eu-west-3")
        p = self.boot(AWS_ENDPOINT_URL=wrong.endpoint)
        rc, rep = verify(self, p)
        checks = by_name(rep)
        for name in IAM_CHECKS:
            self.assertEqual(checks[name]["verdict"], "WARN", checks[name])
            self.assertIn("rejected the credentials", checks[name]["evidence"])
        self.assertTrue(all(c["problem"] == "signature mismatch" for c in wrong.calls), wrong.calls)
        self.assertEqual(rc, 0)

    def test_unreachable_endpoints_warn_quickly(self):
        nobody = "http://127.0.0.1:%d" % free_port()
        p = self.boot(AWS_ENDPOINT_URL=nobody)
        t0 = time.monotonic()
        rc, rep = verify(self, p)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        for name in IAM_CHECKS:
            c = by_name(rep)[name]
            self.assertEqual(c["verdict"], "WARN", c)
            self.assertIn("network blocked?", c["evidence"])
            self.assertIn(nobody, c["evidence"])
        self.assertEqual(rc, 0)

    def test_no_credentials_warns_and_calls_nothing(self):
        p = self.boot(AWS_CONTAINER_CREDENTIALS_FULL_URI=None, AWS_CONTAINER_AUTHORIZATION_TOKEN=None)
        rc, rep = verify(self, p)
        for name in IAM_CHECKS:
            c = by_name(rep)[name]
            self.assertEqual(c["verdict"], "WARN", c)
            self.assertIn("no credentials to test with", c["evidence"])
        self.assertEqual(self.deny.calls, [])
        self.assertEqual(rc, 0)
        rc, rep = verify(self, p, strict=True)
        self.assertEqual(by_name(rep)["iam.ecs"]["verdict"], "FAIL")
        self.assertEqual(rc, 1)


class Environment(PardTestCase):
    """Acceptance 3: static keys and the process identity."""

    def boot(self, env=None, **kw):
        base = {"AWS_ENDPOINT_URL": self.fake.endpoint}
        base.update(env or {})
        p = Pard(self, env=base, **kw).start()
        p.wait_ready(20)
        return p

    def setUp(self):
        super().setUp()
        self.fake = FakeAws(self, "AKIASTATICKEY0001", "static/secret")

    def test_static_keys_warn_and_strict_turns_them_into_a_failure(self):
        p = self.boot({"AWS_ACCESS_KEY_ID": "AKIASTATICKEY0001", "AWS_SECRET_ACCESS_KEY": "static/secret"})
        rc, rep = verify(self, p)
        env = by_name(rep)["environment"]
        self.assertEqual(env["verdict"], "WARN", env)
        self.assertIn("long-lived static keys", env["evidence"])
        self.assertEqual(rc, 0, rep)
        self.assertEqual(by_name(rep)["iam.ecs"]["verdict"], "PASS")
        rc, rep = verify(self, p, strict=True)
        env = by_name(rep)["environment"]
        self.assertEqual(env["verdict"], "FAIL", env)
        self.assertTrue(env["evidence"].startswith("strict: "), env)
        self.assertEqual(rc, 1)
        self.assertFalse(rep["ok"])
        assert_no_secrets(self, p, rep, "AKIASTATICKEY0001", "static/secret")

    def test_keys_with_a_session_token_are_not_long_lived(self):
        fake = FakeAws(self, "ASIATEMPKEY0001", "temp-secret", token="TEMPTOKEN")
        p = self.boot({"AWS_ACCESS_KEY_ID": "ASIATEMPKEY0001", "AWS_SECRET_ACCESS_KEY": "temp-secret",
                       "AWS_SESSION_TOKEN": "TEMPTOKEN", "AWS_ENDPOINT_URL": fake.endpoint})
        rc, rep = verify(self, p)
        self.assertEqual(by_name(rep)["environment"]["verdict"], "PASS")
        self.assertTrue(all(c["problem"] == "" for c in fake.calls), fake.calls)

    def test_root_is_a_warning(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: pard runs as its caller")
        p = self.boot()
        rc, rep = verify(self, p)
        proc = by_name(rep)["process"]
        self.assertEqual(proc["verdict"], "WARN", proc)
        self.assertIn("runs as root", proc["evidence"])
        self.assertEqual(rc, 0)
        rc, rep = verify(self, p, strict=True)
        self.assertEqual(by_name(rep)["process"]["verdict"], "FAIL")
        self.assertEqual(rc, 1)

    def test_nobody_without_capabilities_and_with_no_new_privs_passes(self):
        setpriv = shutil.which("setpriv")
        if os.geteuid() != 0 or not setpriv:
            self.skipTest("needs root and setpriv to drop to nobody")
        wrapper = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", "--no-new-privs"]
        p = Pard(self, env={"AWS_ENDPOINT_URL": self.fake.endpoint}, wrapper=wrapper)
        os.chown(p.tmp, 65534, 65534)   # its cache and admin socket live there
        p.start()
        p.wait_ready(20)
        rc, rep = verify(self, p)
        proc = by_name(rep)["process"]
        self.assertEqual(proc["verdict"], "PASS", proc)
        self.assertIn("uid 65534", proc["evidence"])
        rc, rep = verify(self, p, strict=True)
        self.assertEqual(by_name(rep)["process"]["verdict"], "PASS")


# ---- acceptance 2: a network namespace whose only reachable host is the fake S3 -----------

def sh(*cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p


class Listener:
    """An HTTP host of ours on a given address: serves a package, redirects, and records every
    request (so a test can tell whether anything reached it)."""

    def __init__(self, test, host, body=b"", redirect=None):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append((self.command, self.path))
                if self.path == "/pkg.apkg":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/moved" and redirect:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            do_POST = do_HEAD = do_GET

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        test.addCleanup(self.stop)

    def url(self, path):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def s3rver_on(test, host, bucket="isobucket"):
    """s3rver bound to host (peers.S3rver binds loopback only); returns its port."""
    d = tempfile.mkdtemp(prefix="s3rver-iso-")
    test.addCleanup(shutil.rmtree, d, True)
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    script = os.path.join(PEERS_DIR, "node_modules", "s3rver", "bin", "s3rver.js")
    test.assertTrue(os.path.exists(script), "s3rver missing: run scripts/install-deps.sh")
    log = open(os.path.join(d, "s3rver.log"), "w")
    test.addCleanup(log.close)
    proc = subprocess.Popen([shutil.which("node") or "/usr/bin/node", script, "-d", os.path.join(d, "data"),
                             "-a", host, "-p", str(port), "--configure-bucket", bucket],
                            stdout=log, stderr=subprocess.STDOUT)

    def stop():
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    test.addCleanup(stop)

    def up():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False
    poll(up, 15, what="s3rver listening on %s" % host)
    return port


def connect_from(ns, host, port):
    """(connected, seconds, error) of one TCP connect from inside netns ns."""
    code = ("import json,socket,time\nt=time.monotonic()\n"
            "try:\n socket.create_connection((%r,%d),timeout=3).close();ok,e=True,''\n"
            "except OSError as x:\n ok,e=False,str(x)\n"
            "print(json.dumps([ok,time.monotonic()-t,e]))\n") % (host, port)
    out = sh("ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code).stdout
    return json.loads(out)


class Netns(PardTestCase):
    """Acceptance 2. Each test makes its own namespace, veth pair and rules, with a random
    name and 10.2xx subnet so parallel runs do not collide, and removes them whatever happens."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0 or not shutil.which("ip"):
            self.skipTest("ip netns needs root and iproute2")
        tag = "%06x" % random.getrandbits(24)
        self.ns, self.vh, self.vn = "pariso-" + tag, "pi%sh" % tag, "pi%sn" % tag
        r = sh("ip", "netns", "add", self.ns, check=False)
        if r.returncode != 0:
            self.skipTest("ip netns add is impossible here: %s" % r.stderr.strip())
        self.addCleanup(sh, "ip", "netns", "del", self.ns, check=False)
        self.assertTrue(shutil.which("iptables"), "iptables is needed to isolate the namespace "
                        "(apt-get install iptables)")
        self.host_ip, self.ns_ip = self.pick_subnet()
        sh("ip", "link", "add", self.vh, "type", "veth", "peer", "name", self.vn)
        self.addCleanup(sh, "ip", "link", "del", self.vh, check=False)
        sh("ip", "link", "set", self.vn, "netns", self.ns)
        sh("ip", "addr", "add", self.host_ip + "/30", "dev", self.vh)
        sh("ip", "link", "set", self.vh, "up")
        sh("ip", "-n", self.ns, "addr", "add", self.ns_ip + "/30", "dev", self.vn)
        sh("ip", "-n", self.ns, "link", "set", self.vn, "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        # No default route inside: only the /30 exists there. The fake S3 comes next, then
        # the rules that admit its port alone.
        self.s3_port = s3rver_on(self, self.host_ip)
        self.rule("INPUT", "-i", self.vh, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
        self.rule("FORWARD", "-i", self.vh, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
        self.rule("INPUT", "-i", self.vh, "-p", "tcp", "-d", self.host_ip, "--dport",
                  str(self.s3_port), "-j", "ACCEPT")
        self.rule("INPUT", "-i", self.vh, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
                  "-j", "ACCEPT")
        self.apkg = make_apkg(self, name="iso-agent")
        self.put_package()

    def pick_subnet(self):
        used = sh("ip", "-o", "-4", "addr", "show").stdout + sh("ip", "-4", "route", "show", "table", "all").stdout
        for _ in range(50):
            net = ipaddress.ip_network("10.%d.%d.%d/30" % (random.randint(200, 249), random.randint(0, 255),
                                                           random.randrange(0, 256, 4)))
            if not any(str(a) in used for a in net):
                hosts = list(net.hosts())
                return str(hosts[0]), str(hosts[1])
        self.fail("no free 10.2xx.x.x/30 found")

    def rule(self, chain, *spec):
        """Inserts a rule at the top of chain (tagged with the namespace's name), removed on cleanup."""
        full = list(spec) + ["-m", "comment", "--comment", self.ns]
        sh("iptables", "-I", chain, *full)
        self.addCleanup(sh, "iptables", "-D", chain, *full, check=False)

    def put_package(self):
        import botocore.session
        c = botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url="http://%s:%d" % (self.host_ip, self.s3_port),
            aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
        c.put_object(Bucket="isobucket", Key="agents/iso.apkg", Body=read_bytes(self.apkg))
        c.close()

    def test_only_the_fake_s3_is_reachable_and_egress_passes(self):
        forbidden = Listener(self, self.host_ip, body=read_bytes(self.apkg))
        # The forbidden host is up (reachable from the host itself) ...
        with socket.create_connection((self.host_ip, forbidden.port), timeout=2):
            pass
        # ... but from inside the namespace it fails fast, while the fake S3 answers.
        ok, secs, err = connect_from(self.ns, self.host_ip, forbidden.port)
        self.assertFalse(ok, "the forbidden host was reachable from the namespace")
        self.assertLess(secs, 1.0, "the forbidden host must fail fast, not hang: %s" % err)
        ok, secs, err = connect_from(self.ns, self.host_ip, self.s3_port)
        self.assertTrue(ok, "the fake S3 must be reachable from the namespace: %s" % err)

        p = Pard(self, wrapper=[shutil.which("ip"), "netns", "exec", self.ns], env={
            "AGENT_PACKAGE_PATH": None,
            "PACKAGE_URL": "s3://isobucket/agents/iso.apkg",
            "AWS_ENDPOINT_URL_S3": "http://%s:%d" % (self.host_ip, self.s3_port),
            "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            # The control-plane probes aim at the forbidden host: the rules must stop them.
            "AWS_ENDPOINT_URL": forbidden.url(""),
        }).start()
        p.wait_ready(30)
        t0 = time.monotonic()
        rc, rep = verify(self, p)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        checks = by_name(rep)
        self.assertEqual(checks["egress"]["verdict"], "PASS", checks["egress"])
        self.assertIn("%s:%d" % (self.host_ip, self.s3_port), checks["egress"]["evidence"])
        self.assertEqual(checks["s3"]["verdict"], "PASS", checks["s3"])
        self.assertIn("no write attempted", checks["s3"]["evidence"])
        for name in IAM_CHECKS:
            self.assertEqual(checks[name]["verdict"], "WARN", checks[name])
            self.assertIn("network blocked?", checks[name]["evidence"])
        self.assertEqual(forbidden.requests, [])
        self.assertEqual(rc, 0)
        # verify-isolation's own probes (logged in the ledger) do not count against egress.
        rc, rep = verify(self, p)
        self.assertEqual(by_name(rep)["egress"]["verdict"], "PASS", by_name(rep)["egress"])
        stop_cleanly(self, p)

    def test_a_connection_to_the_forbidden_host_fails_egress(self):
        # Outside the namespace the forbidden host is reachable: an allowed origin redirects
        # pard there, and the ledger must give it away.
        forbidden = Listener(self, self.host_ip, body=read_bytes(self.apkg))
        origin = Listener(self, self.host_ip, redirect=forbidden.url("/pkg.apkg"))
        fake = FakeAws(self, "AKIDUNUSED", "unused")
        p = Pard(self, env={"AGENT_PACKAGE_PATH": None, "PACKAGE_URL": origin.url("/moved"),
                            "PAR_ALLOW_HTTP": "1", "AWS_ENDPOINT_URL": fake.endpoint}).start()
        p.wait_ready(20)
        self.assertEqual(forbidden.requests, [("GET", "/pkg.apkg")])
        rc, rep = verify(self, p)
        egress = by_name(rep)["egress"]
        self.assertEqual(egress["verdict"], "FAIL", egress)
        self.assertIn("%s:%d" % (self.host_ip, forbidden.port), egress["evidence"])
        self.assertIn("package source (%s:%d)" % (self.host_ip, origin.port), egress["evidence"])
        self.assertEqual(rc, 1)
        self.assertFalse(rep["ok"])


if __name__ == "__main__":
    unittest.main()
