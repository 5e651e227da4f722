"""Container end-to-end checks: builds both targets of the Dockerfile in an engine of the
run's own, then drives the running containers on an isolated network whose only way out is a
fake S3 (s3rver) on the bridge's host side. Eight numbered checks, each reported on its own.
Run by tests/e2e/run.sh (and scripts/test.sh); exit 0 all passed, 1 a check failed, 77 no
engine can run here (skipped, with the reason)."""
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))

import engine as eng  # noqa: E402
from engine import log, poll  # noqa: E402

TAG = str(os.getpid())
BUCKET = "par-e2e"
S3_KEY = S3_SECRET = "S3RVER"     # s3rver's built-in account
EXAMPLES = "/usr/local/share/par/examples"
EXIT_CONFIG = 10                  # pard --help / README exit-code table
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Run:
    """What the whole run shares: engine, images, networks, the fake S3 (prepare())."""
    cleanup = eng.Cleanup()
    workdir = None
    engine = None
    net = None        # the isolated network the containers run on
    other = None      # a second one of ours, only to prove the first cannot reach it
    s3 = None
    stopped_by = signal.SIGINT
    images = {}       # target -> tag
    sizes = {}        # target -> bytes
    packages = {}     # example name -> (s3 key, sha256)


# ---- peers on the host side -----------------------------------------------------------------

class S3rver:
    """npm s3rver (tests/peers) on the isolated network's gateway address, one bucket."""

    def __init__(self, net, cleanup):
        self.host = net.gateway
        self.port = eng.free_port(self.host)
        self.dir = os.path.join(Run.workdir, "s3rver")
        os.makedirs(self.dir)
        script = os.path.join(SOURCE_DIR, "tests", "peers", "node_modules", "s3rver", "bin",
                              "s3rver.js")
        if not os.path.exists(script):
            raise AssertionError("s3rver missing: run scripts/install-deps.sh")
        self.logf = open(os.path.join(self.dir, "s3rver.log"), "w")
        self.proc = subprocess.Popen(
            [shutil.which("node") or "/usr/bin/node", script, "-d", os.path.join(self.dir, "data"),
             "-a", self.host, "-p", str(self.port), "--configure-bucket", BUCKET,
             # Path-style only: otherwise s3rver takes the Host s3.test for a bucket name.
             "--no-vhost-buckets"],
            stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        cleanup.push("stop s3rver %d" % self.proc.pid, self.stop)
        poll(self._up, 30, what="s3rver on %s:%d" % (self.host, self.port))
        net.allow(self.port)

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError("s3rver exited with %d" % self.proc.returncode)
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def put(self, key, path):
        import botocore.session
        c = botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url="http://%s:%d" % (self.host, self.port),
            aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
        with open(path, "rb") as f:
            c.put_object(Bucket=BUCKET, Key=key, Body=f.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.logf.close()


class Listener:
    """An HTTP endpoint of the test's own that answers 200 to anything and counts who came:
    the target that proves a forbidden address is unreachable (not merely absent)."""

    def __init__(self, host, cleanup):
        hits = self.hits = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.client_address[0])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        cleanup.push("stop listener", self.stop)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---- clients --------------------------------------------------------------------------------

def request(url, method="GET", body=None, timeout=10, headers=None):
    """(status, body bytes) with no proxy: every address here is the test's own."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with NO_PROXY.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def grpc_client(ip):
    import grpc
    import a2a_client
    agent_pb2, agent_grpc, health_pb2, health_grpc = a2a_client.stubs()
    ch = grpc.insecure_channel("%s:50051" % ip, options=[("grpc.enable_http_proxy", 0)])

    class C:
        channel = ch

        @staticmethod
        def health():
            r = health_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""),
                                                 timeout=5)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

        @staticmethod
        def invoke(action, params=None, timeout=10):
            req = agent_pb2.ActionRequest(action=action, parameters=params or {})
            return agent_grpc.AgentServiceStub(ch).Invoke(req, timeout=timeout)

    return C


def json_lines(text):
    """Every line pard printed, parsed: a line that is not one JSON object fails the check."""
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError("not a JSON log line: %r" % line[:300])
    return out


def events(lines, name):
    return [l for l in lines if l.get("event") == name]


def ts(line):
    return datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


# ---- the run's fixtures ---------------------------------------------------------------------

def build_images():
    ctx = eng.snapshot_context(SOURCE_DIR, os.path.join(Run.workdir, "context"))
    repo = "par-e2e-%s" % TAG
    # The default target first: the slim build then takes every shared layer from the cache.
    for target, tag in (("python", repo + ":python"), ("slim", repo + ":slim")):
        t0 = time.monotonic()
        args = ["build", "--network", "host", "--force-rm", "-t", tag]
        if target == "slim":
            args += ["--target", "slim"]
        r = Run.engine.docker(*args, ctx, check=False, timeout=1800)
        with open(os.path.join(Run.workdir, "build-%s.log" % target), "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            raise AssertionError("docker build %s failed:\n%s" % (
                target, "\n".join((r.stdout + r.stderr).splitlines()[-40:])))
        Run.images[target] = tag
        Run.sizes[target] = int(Run.engine.docker("image", "inspect", "-f", "{{.Size}}",
                                                  tag).stdout)
        log("built %s (target %s) in %.0f s: %.0f MB" % (
            tag, target, time.monotonic() - t0, Run.sizes[target] / 1e6))


def publish_packages():
    """The example packages, taken from the image itself, uploaded to the fake S3."""
    name = "par-e2e-%s-cp" % TAG
    Run.engine.docker("create", "--name", name, Run.images["python"])
    try:
        for pkg in ("echo-agent", "slow-agent", "python-agent"):
            dest = os.path.join(Run.workdir, pkg + ".apkg")
            Run.engine.docker("cp", "%s:%s/%s.apkg" % (name, EXAMPLES, pkg), dest)
            key = "agents/%s.apkg" % pkg
            Run.s3.put(key, dest)
            Run.packages[pkg] = (key, sha256(dest))
    finally:
        Run.engine.docker("rm", "-f", name, check=False)


def prepare():
    """Networks, both images, the fake S3 with the example packages: before the checks."""
    Run.net = eng.IsolatedNet(Run.engine, Run.cleanup, "iso", TAG, int(TAG))
    Run.other = eng.IsolatedNet(Run.engine, Run.cleanup, "other", TAG, int(TAG) + 1)
    build_images()
    Run.s3 = S3rver(Run.net, Run.cleanup)
    publish_packages()


# ---- the checks -----------------------------------------------------------------------------

class ContainerE2E(unittest.TestCase):
    app = None        # the container of check 1, which checks 2 and 6 look at too

    # -- helpers

    def docker(self, *args, **kw):
        return Run.engine.docker(*args, **kw)

    def name(self, what):
        return "par-e2e-%s-%s" % (TAG, what)

    def run_container(self, what, env, image="python", extra=(), detach=True, timeout=60):
        """docker run on the isolated network; removed by the test's cleanup."""
        name = self.name(what)
        self.addCleanup(self.docker, "rm", "-f", "-v", name, check=False)
        args = ["run", "--name", name] + Run.net.run_args()
        args += ["--add-host", "s3.test:" + Run.net.gateway]
        for k, v in env.items():
            args += ["-e", "%s=%s" % (k, v)]
        args += list(extra)
        if detach:
            args.insert(1, "-d")
        t0 = time.monotonic()
        r = self.docker(*args, Run.images[image], check=detach, timeout=timeout)
        return name, r, time.monotonic() - t0

    def s3_env(self, pkg):
        key, digest = Run.packages[pkg]
        return {"PACKAGE_URL": "s3://%s/%s" % (BUCKET, key), "PACKAGE_SHA256": digest,
                "S3_BUCKET": BUCKET, "AWS_ENDPOINT_URL_S3": "http://s3.test:%d" % Run.s3.port,
                "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                "AWS_REGION": "us-east-1"}

    def inspect(self, name, fmt="{{json .}}"):
        return json.loads(self.docker("inspect", "-f", fmt, name).stdout)

    def logs(self, name):
        r = self.docker("logs", name, check=False)
        return r.stdout + r.stderr

    def ip(self, name):
        nets = self.inspect(name, "{{json .NetworkSettings.Networks}}")
        return nets[Run.net.name]["IPAddress"]

    def explain(self, name, msg):
        return "%s\n--- last lines of %s:\n%s" % (msg, name,
                                                 "\n".join(self.logs(name).splitlines()[-15:]))

    def wait_healthy(self, name, timeout=60):
        """Docker's own verdict, from the image's HEALTHCHECK (pard --probe)."""
        def state():
            s = self.inspect(name, "{{json .State}}")
            if s["Status"] != "running":
                raise AssertionError("container %s is %s, exit code %s" % (
                    name, s["Status"], s.get("ExitCode")))
            return s.get("Health", {}).get("Status") == "healthy"
        try:
            poll(state, timeout, interval=0.2, what="%s healthy" % name)
        except AssertionError as e:
            raise AssertionError(self.explain(name, str(e)))

    def wait_ready(self, ip, timeout=30):
        poll(lambda: self._health(ip) == 200, timeout, what="/health 200 at %s" % ip)

    @staticmethod
    def _health(ip):
        try:
            return request("http://%s:8080/health" % ip, timeout=2)[0]
        except OSError:
            return None

    def start_app(self):
        """Check 1's container: the echo agent from the fake S3, static keys in the env."""
        if ContainerE2E.app is None:
            env = dict(AGENT_APP_ID="e2e-echo", **self.s3_env("echo-agent"))
            name = self.name("app")
            # The run's cleanup, not the test's: checks 2 and 6 use it too.
            Run.cleanup.push("rm " + name, self.docker, "rm", "-f", "-v", name, check=False)
            args = ["run", "-d", "--name", name] + Run.net.run_args()
            args += ["--add-host", "s3.test:" + Run.net.gateway]
            for k, v in env.items():
                args += ["-e", "%s=%s" % (k, v)]
            self.docker(*args, Run.images["python"])
            ContainerE2E.app = name
            self.wait_healthy(name)
        return ContainerE2E.app

    # -- 1

    def test_1_boot_from_s3(self):
        """1: boots from an s3:// package (static keys) -> healthy; REST, A2A and UI answer"""
        name = self.start_app()
        ip = self.ip(name)
        status, body = request("http://%s:8080/health" % ip)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["state"], "ready")
        status, body = request("http://%s:8080/invocations" % ip, "POST", b'{"text":"abc"}',
                               headers={"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)), (200, {"echo": {"text": "abc"}}))
        c = grpc_client(ip)
        try:
            self.assertEqual(c.health(), "SERVING")
            r = c.invoke("reverse", {"text": "abc"})
            self.assertTrue(r.success, r.error)
            self.assertEqual(json.loads(r.result), {"text": "cba"})
        finally:
            c.channel.close()
        status, body = request("http://%s:3000/" % ip)
        self.assertEqual(status, 200)
        self.assertIn(b"<html", body.lower())
        # It came from S3: a fetch that was no cache hit, from the s3:// URL.
        lines = json_lines(self.logs(name))
        fetch = [l for l in events(lines, "boot.phase.done") if l.get("phase") == "fetch"]
        self.assertTrue(fetch, self.explain(name, "no fetch phase logged"))
        self.assertNotIn("cache hit", json.dumps(fetch))

    # -- 2

    def test_2_image_metadata(self):
        """2: docker inspect: three exposed ports, health check, stop signal, non-root user"""
        for target, image in sorted(Run.images.items()):
            cfg = self.inspect(image, "{{json .Config}}")
            with self.subTest(target=target):
                self.assertEqual(set(cfg["ExposedPorts"]), {"8080/tcp", "50051/tcp", "3000/tcp"})
                self.assertEqual(cfg["Healthcheck"]["Test"], ["CMD", "pard", "--probe"])
                self.assertEqual(cfg["StopSignal"], "SIGTERM")
                self.assertEqual(cfg["Entrypoint"], ["pard"])
                user = cfg["User"].split(":")
                self.assertTrue(user[0] and user[0] not in ("0", "root"), cfg["User"])
                self.assertEqual(cfg["User"], "10001:10001")   # the deploy kit's uid
        # What ECS Exec finds in the running container: parctl, its man page, completions.
        name = self.start_app()
        for cmd, want in (("id -u", "10001"),
                          ("command -v parctl", "/usr/local/bin/parctl"),
                          ("man -w parctl", "/usr/local/man/man8/parctl.8"),
                          ("man -w pard", "/usr/local/man/man8/pard.8"),
                          ("bash -ic 'complete -p parctl' 2>/dev/null",
                           "complete -F _parctl parctl"),
                          ("ls /usr/local/share/zsh/vendor-completions/_parctl "
                           "/usr/local/share/fish/vendor_completions.d/parctl.fish | wc -l", "2"),
                          ("test -w /var/cache/par && test -w /run/par && echo yes", "yes")):
            r = self.docker("exec", name, "sh", "-c", cmd, check=False)
            self.assertEqual(r.stdout.strip(), want, "%s: %s" % (cmd, r.stderr.strip()))
        # The slim target has no Python; the default one has Debian's with FastAPI.
        r = self.docker("run", "--rm", "--network", "none", "--entrypoint", "sh",
                        Run.images["slim"], "-c", "command -v python3 || echo none")
        self.assertEqual(r.stdout.strip(), "none")
        r = self.docker("run", "--rm", "--network", "none", "--entrypoint", "python3",
                        Run.images["python"], "-c", "import fastapi, uvicorn; print('ok')")
        self.assertEqual(r.stdout.strip(), "ok")

    # -- 3

    def test_3_missing_app_id(self):
        """3: no AGENT_APP_ID -> non-zero exit and a JSON log line naming it"""
        env = self.s3_env("echo-agent")
        name, r, _ = self.run_container("noid", env, detach=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        lines = json_lines(self.logs(name))
        named = [l for l in events(lines, "config.invalid") if l.get("variable") == "AGENT_APP_ID"]
        self.assertTrue(named, self.explain(name, "no config.invalid line for AGENT_APP_ID"))
        self.assertEqual(named[0]["level"], "error")

    # -- 4

    def test_4_invalid_url_backoff(self):
        """4: invalid PACKAGE_URL -> exit 10; the next start sleeps the 2 s backoff first"""
        # The failure counter is persisted per AGENT_APP_ID in PAR_STATE_DIR: on a volume
        # it survives the container, so a new container's first failure is the 2nd (2 s).
        vol = self.name("state")
        self.docker("volume", "create", vol)
        self.addCleanup(self.docker, "volume", "rm", "-f", vol, check=False)
        env = {"AGENT_APP_ID": "e2e-backoff", "PACKAGE_URL": "ftp://s3.test/agent.apkg"}
        extra = ["-v", vol + ":/var/cache/par"]
        runs = []
        for i in (1, 2):
            name, r, wall = self.run_container("backoff%d" % i, env, extra=extra,
                                               detach=False, timeout=90)
            self.assertEqual(r.returncode, EXIT_CONFIG, self.explain(name, r.stderr))
            lines = json_lines(self.logs(name))
            bad = [l for l in events(lines, "config.invalid") if l.get("variable") == "PACKAGE_URL"]
            self.assertTrue(bad, self.explain(name, "PACKAGE_URL not named"))
            failed = events(lines, "boot.failed")[-1]
            exited = events(lines, "process.exit")[-1]
            runs.append((failed, ts(exited) - ts(failed), wall))
        (f1, slept1, wall1), (f2, slept2, wall2) = runs
        log("backoff: 1st run %.2f s (slept %.2f), 2nd run %.2f s (slept %.2f)" % (
            wall1, slept1, wall2, slept2))
        self.assertEqual((f1["failures"], f1["backoffSec"], f1["persisted"]), (1, 0, True))
        self.assertLess(slept1, 1.0)
        self.assertEqual((f2["failures"], f2["backoffSec"], f2["persisted"]), (2, 2, True))
        # pard's own clock says how long it slept; the wall clock that the delay is real.
        self.assertGreaterEqual(slept2, 2.0)
        self.assertLess(slept2, 3.0)
        self.assertGreaterEqual(wall2, 2.0)

    # -- 5

    def test_5_stop_drains_in_flight(self):
        """5: docker stop -t 35, slow calls in flight: they finish, exit 0, well before 35 s"""
        name, _, _ = self.run_container("slow", {
            "AGENT_APP_ID": "e2e-slow",
            "AGENT_PACKAGE_PATH": EXAMPLES + "/slow-agent.apkg"})
        ip = self.ip(name)
        self.wait_ready(ip)
        results = {}

        def rest(i):
            results["rest%d" % i] = request("http://%s:8080/api/slow?ms=4000" % ip, timeout=30)

        def a2a():
            c = grpc_client(ip)
            try:
                r = c.invoke("slow", {"ms": "4000"}, timeout=30)
                results["a2a"] = (r.success, r.error, r.result)
            except Exception as e:
                results["a2a"] = (False, repr(e), None)
            finally:
                c.channel.close()

        threads = [threading.Thread(target=rest, args=(i,), daemon=True) for i in (1, 2)]
        threads.append(threading.Thread(target=a2a, daemon=True))
        for t in threads:
            t.start()

        def in_flight():
            # The /metrics request counts itself: 3 on REST = both slow calls are in.
            _, body = request("http://%s:8080/metrics" % ip)
            text = body.decode()
            rest_n = re.search(r'^par_http_in_flight\{[^}]*surface="rest"[^}]*\} (\d+)', text, re.M)
            grpc_n = re.search(r'^par_grpc_in_flight(?:\{[^}]*\})? (\d+)', text, re.M)
            return (rest_n and int(rest_n.group(1)) >= 3 and grpc_n and
                    int(grpc_n.group(1)) >= 1)
        poll(in_flight, 10, what="3 slow requests in flight")
        t0 = time.monotonic()
        self.docker("stop", "-t", "35", name, timeout=60)
        took = time.monotonic() - t0
        for t in threads:
            t.join(35)
        log("docker stop took %.2f s with 3 four-second requests in flight" % took)
        state = self.inspect(name, "{{json .State}}")
        self.assertEqual(state["ExitCode"], 0, self.explain(name, "exit code"))
        self.assertFalse(state["OOMKilled"])
        self.assertLess(took, 15.0)
        for k in ("rest1", "rest2"):
            status, body = results.get(k, (None, b""))
            self.assertEqual((status, json.loads(body or b"null")), (200, {"slept": 4000}), k)
        ok, err, res = results.get("a2a", (False, "no answer", None))
        self.assertTrue(ok, err)
        lines = json_lines(self.logs(name))
        start, done = events(lines, "drain.start"), events(lines, "drain.done")
        self.assertTrue(start and done, self.explain(name, "drain not logged"))
        self.assertEqual(start[0]["signal"], "SIGTERM")
        self.assertGreaterEqual(start[0]["inFlight"], 3)
        self.assertEqual(done[0]["cancelled"], 0)

    # -- 6

    def test_6_parctl_in_container(self):
        """6: docker exec parctl status, -j verify-isolation: egress PASS on the isolated net"""
        name = self.start_app()
        r = self.docker("exec", name, "parctl", "status", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^state\s+ready$")
        r = self.docker("exec", name, "parctl", "-j", "verify-isolation", check=False, timeout=60)
        self.assertNotIn("not built yet", r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        report = json.loads(r.stdout)
        verdicts = {c["name"]: (c["verdict"], c["evidence"]) for c in report["checks"]}
        log("verify-isolation: " + ", ".join("%s %s" % (k, v[0]) for k, v in verdicts.items()))
        # WARNs are expected here: no route to AWS for the IAM probes, static keys in the
        # env, no no-new-privileges (check 7 runs hardened and wants the process PASS).
        self.assertEqual(verdicts["egress"][0], "PASS", verdicts["egress"][1])
        self.assertEqual(verdicts["s3"][0], "PASS", verdicts["s3"][1])
        self.assertEqual(report["summary"]["fail"], 0)
        # The network really is isolated: an endpoint of ours that the rules forbid (another
        # port on the host end) and an address on another network of ours (the forwarding
        # path) are refused at once; the allowed fake S3 was reachable (the package came).
        # Timed inside the container, so a slow `docker exec` on a busy machine does not
        # count: refused is a few ms, a silent drop is the probe's 2 s connect timeout.
        forbidden = Listener(Run.net.gateway, self._cleanup_now())
        timed = ('a=$(date +%s%N); pard --probe "$1" >&2; rc=$?; b=$(date +%s%N); '
                 'echo "$rc $(( (b - a) / 1000000 ))"')
        for url in ("http://%s:%d/" % (Run.net.gateway, forbidden.port),
                    "http://%s:8080/" % (Run.other.subnet.network_address + 2)):
            r = self.docker("exec", name, "sh", "-c", timed, "sh", url)
            rc, ms = map(int, r.stdout.split())
            why = json_lines(r.stderr)[-1].get("msg") if r.stderr.strip() else ""
            log("from the container, %s: %d ms, %s" % (url, ms, why))
            self.assertEqual(rc, 1, "%s reachable from the container" % url)
            self.assertLess(ms, 1000, "%s: %d ms, not refused at once" % (url, ms))
        self.assertEqual(forbidden.hits, [])

    def _cleanup_now(self):
        c = eng.Cleanup()
        self.addCleanup(c.run)
        return c

    # -- 7

    def test_7_read_only_no_caps(self):
        """7: --read-only, --cap-drop ALL, no-new-privileges, tmpfs dirs: boots and serves"""
        name, _, _ = self.run_container("ro", {
            "AGENT_APP_ID": "e2e-ro",
            "AGENT_PACKAGE_PATH": EXAMPLES + "/echo-agent.apkg"}, image="slim", extra=[
            "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            # exec: a native agent's .so is mapped from the extracted package in the cache
            "--tmpfs", "/var/cache/par:rw,exec,uid=10001,gid=10001,mode=0750",
            "--tmpfs", "/run/par:rw,uid=10001,gid=10001,mode=0755",
            "--tmpfs", "/tmp:rw,mode=1777"])
        self.wait_healthy(name)
        ip = self.ip(name)
        status, body = request("http://%s:8080/invocations" % ip, "POST", b'{"text":"ro"}',
                               headers={"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)), (200, {"echo": {"text": "ro"}}))
        c = grpc_client(ip)
        try:
            self.assertEqual(c.health(), "SERVING")
        finally:
            c.channel.close()
        self.assertEqual(request("http://%s:3000/" % ip)[0], 200)
        r = self.docker("exec", name, "parctl", "status", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.docker("exec", name, "sh", "-c", "touch /usr/local/x", check=False)
        self.assertNotEqual(r.returncode, 0, "the root filesystem is writable")
        status = self.docker("exec", name, "grep", "-E", "^(CapEff|NoNewPrivs)", "/proc/1/status")
        self.assertRegex(status.stdout, r"CapEff:\s+0+\n")
        self.assertRegex(status.stdout, r"NoNewPrivs:\s+1")
        # pard's own view of it (verify-isolation's process check).
        r = self.docker("exec", name, "parctl", "-j", "verify-isolation", check=False, timeout=60)
        process = [c for c in json.loads(r.stdout)["checks"] if c["name"] == "process"]
        self.assertEqual(process[0]["verdict"], "PASS", process[0]["evidence"])

    # -- 8

    def test_8_python_agent(self):
        """8: the default (Python) target boots the example Python agent on all three surfaces"""
        name, _, _ = self.run_container("py", {
            "AGENT_APP_ID": "e2e-python",
            "AGENT_PACKAGE_PATH": EXAMPLES + "/python-agent.apkg"})
        self.wait_healthy(name)
        ip = self.ip(name)
        status, body = request("http://%s:8080/api/status" % ip)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["agent"], "python-agent")
        status, body = request("http://%s:8080/invocations" % ip, "POST", b'{"text":"abc"}',
                               headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["handled_by"], "entrypoint")
        c = grpc_client(ip)
        try:
            self.assertEqual(c.health(), "SERVING")
            r = c.invoke("add", {"a": "2", "b": "3"})
            self.assertTrue(r.success, r.error)
            self.assertEqual(json.loads(r.result)["sum"], 5)
        finally:
            c.channel.close()
        self.assertEqual(request("http://%s:3000/" % ip)[0], 200)


# ---- running --------------------------------------------------------------------------------

class Result(unittest.TextTestResult):
    """Counts the checks that passed (one failed subTest fails its check): the summary's
    failed count is the rest of the eight."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


def _stop_on_signal(signum, frame):
    # KeyboardInterrupt, because unittest records any other exception as one check's error
    # and goes on with the next; this one unwinds through every finally to the cleanup.
    Run.stopped_by = signum
    raise KeyboardInterrupt


def main():
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _stop_on_signal)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        os.environ.pop(k, None)
    t0 = time.monotonic()
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(ContainerE2E)
    total = suite.countTestCases()
    Run.workdir = eng.workdir()
    Run.cleanup.push("rm -rf " + Run.workdir, shutil.rmtree, Run.workdir, True)
    try:
        try:
            eng.install_engine_packages()
            Run.engine = eng.Engine(Run.workdir, Run.cleanup)
            Run.engine.start()
            eng.make_base_images(Run.engine, os.path.join(SOURCE_DIR, "Dockerfile"), Run.workdir)
            prepare()
        except eng.Unavailable as e:
            print("e2e skipped: %s" % e, flush=True)
            return 77
        except Exception as e:
            # A broken Dockerfile or build is a failure of every check, not a skip.
            print("e2e: setup failed: %s: %s" % (type(e).__name__, e), flush=True)
            print("e2e: %d passed, %d failed (%.0f s)" % (0, total, time.monotonic() - t0))
            return 1
        runner = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stdout)
        result = runner.run(suite)
        failed = total - result.passed
        sizes = ", ".join("%s %.0f MB" % (k, v / 1e6) for k, v in sorted(Run.sizes.items()))
        print("e2e: image sizes: %s" % sizes)
        print("e2e: %d passed, %d failed (%.0f s)" % (result.passed, failed,
                                                      time.monotonic() - t0), flush=True)
        return 0 if failed == 0 else 1
    except KeyboardInterrupt:
        print("e2e: stopped by signal %d" % Run.stopped_by, flush=True)
        return 128 + Run.stopped_by
    finally:
        # A second signal must not cut the cleanup short.
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        t1 = time.monotonic()
        Run.cleanup.run()
        log("cleaned up in %.1f s" % (time.monotonic() - t1))


if __name__ == "__main__":
    sys.exit(main())
