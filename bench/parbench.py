"""The PAR benchmark suite (issue 10, SPEC §11): boot, memory, REST, A2A, drain and the package
pipeline, each next to its reference measured in the same run, written as Markdown + JSON."""
import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (HERE, PY, SOURCE_DIR, Nginx, Pard, PardError, S3rver, free_port,  # noqa: E402
                      http_get, load_average, percentile, spawn_and_reap, summary, tree_memory)

MiB = 1024 * 1024
# libeatmydata makes fsync a no-op when preloaded: running pard with and without it in the same
# pass shows how much of a cold boot or an extraction is pard's durability (fsync per file).
EATMYDATA = "/usr/lib/x86_64-linux-gnu/libeatmydata.so"


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---- inputs --------------------------------------------------------------------------------

def zip_tree(src, dest, extra_files=()):
    """Packs a staged package directory (plus generated files) into an .apkg."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for root, _, files in os.walk(src):
            for f in sorted(files):
                full = os.path.join(root, f)
                z.write(full, os.path.relpath(full, src))
        for name, gen in extra_files:
            z.writestr(name, gen())
    return dest


def build_packages(build, work):
    """The echo-agent padded to ~1 MB (cold boot: the target's size) and to ~50 MB (pipeline).
    Fixed seeds: the same bytes, so the same SHA-256, on every run."""
    stage = os.path.join(build, "examples", "echo-agent")
    rnd = random.Random(10)
    words = ["agent", "runtime", "package", "cache", "boot", "drain", "surface", "health",
             "invoke", "archive", "extract", "verify", "config", "worker", "metric", "route"]

    def rand_bytes(n, seed):
        return random.Random(seed).randbytes(n)

    def text(n, seed):
        r = random.Random(seed)
        out, size = [], 0
        while size < n:
            line = " ".join(r.choice(words) for _ in range(12)) + " %d\n" % r.randrange(10 ** 6)
            out.append(line)
            size += len(line)
        return "".join(out)[:n].encode()

    small = os.path.join(work, "echo-agent-1mb.apkg")
    zip_tree(stage, small, [("data/filler.bin", lambda: rand_bytes(1 * MiB, 1))])
    # A 50 MB archive that looks like a real one: binary assets that don't compress (wheels,
    # models) and source/text that does, so extraction both copies and inflates.
    big = os.path.join(work, "echo-agent-50mb.apkg")
    files = [("assets/blob-%02d.bin" % i, (lambda i=i: rand_bytes(1 * MiB, 100 + i))) for i in range(42)]
    files += [("src/module_%03d.py" % i, (lambda i=i: text(96 * 1024, 1000 + i))) for i in range(300)]
    zip_tree(stage, big, files)
    del rnd
    return small, big


def sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_floor(build, work):
    """floor.c linked against exactly the libraries pard names (DT_NEEDED), --no-as-needed so
    the loader really maps and initialises each of them."""
    pard = os.path.join(build, "pard")
    out = subprocess.run(["readelf", "-d", pard], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
    exe = os.path.join(work, "floor")
    args = ["cc", "-O2", os.path.join(HERE, "floor.c"), "-o", exe, "-L" + build,
            "-Wl,-rpath," + build, "-Wl,--no-as-needed"]
    args += ["-l:" + n for n in needed if not n.startswith(("libc.so", "ld-linux"))]
    subprocess.run(args, check=True)
    return exe, needed


def floor_memory(floor):
    """RSS and PSS of the floor program parked in main(): pard's memory floor."""
    p = subprocess.Popen([floor, "--hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        p.stdout.read(1)
        return tree_memory(p.pid)
    finally:
        p.stdin.close()
        p.wait()


def grpc_body(path):
    """One gRPC-framed ActionRequest{action:"echo", parameters:{text:"hello"}} for h2load
    (request_id left empty: pard makes one, as it does for most callers)."""
    def ld(field, data):
        return bytes([field << 3 | 2, len(data)]) + data
    msg = ld(1, b"echo") + ld(2, ld(1, b"text") + ld(2, b"hello"))
    with open(path, "wb") as f:
        f.write(b"\x00" + len(msg).to_bytes(4, "big") + msg)
    return path


# ---- tool output parsers --------------------------------------------------------------------

def _dur_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v if u == "ms" else v * 1000 if u == "s" else v * 60000


def run_wrk(url, conns, secs, threads=2):
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % secs, "--latency", url],
                         capture_output=True, text=True, timeout=secs + 60).stdout
    r = {"raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    for p in ("50", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % p, out, re.M)
        r["p%sms" % p] = _dur_ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socketErrors"] = sum(int(x) for x in m.groups()) if m else 0
    return r


def run_h2load(port, body, clients, streams, secs, work):
    logf = os.path.join(work, "h2load.log")
    args = ["h2load", "-c%d" % clients, "-m%d" % streams, "-t1", "-D", str(secs), "--warm-up-time=1",
            "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers",
            "--log-file=" + logf, "http://127.0.0.1:%d/pixell.agent.AgentService/Invoke" % port]
    if os.path.exists(logf):
        os.unlink(logf)   # h2load appends to its log file
    started_us = time.time() * 1e6
    out = subprocess.run(args, capture_output=True, text=True, timeout=secs + 60).stdout
    lat = []
    with open(logf) as f:
        for line in f:
            cols = line.split("\t")
            # Requests of the 1 s warm-up are left out, as h2load leaves them out of its counts.
            if len(cols) >= 3 and cols[1] == "200" and int(cols[0]) >= started_us + 1e6:
                lat.append(int(cols[2]))
    m = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    ok, failed = (int(m.group(1)), int(m.group(2)) + int(m.group(3)) + int(m.group(4))) if m else (len(lat), None)
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    return {"client": "h2load", "clients": clients, "streams": streams, "calls": ok, "errors": failed,
            "seconds": float(m.group(1)) if m else secs, "callsPerSec": float(m.group(2)) if m else None,
            "p50us": percentile(lat, 50), "p90us": percentile(lat, 90), "p99us": percentile(lat, 99),
            "raw": out}


def check_grpc_body(port, body, work):
    """h2load only sees HTTP 200: check once with curl that this body is a successful Invoke."""
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
    import a2a_client
    pb2 = a2a_client.stubs()[0]
    resp = os.path.join(work, "invoke.resp")
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", resp, "--data-binary", "@" + body,
                        "-H", "content-type: application/grpc", "-H", "te: trailers",
                        "http://127.0.0.1:%d/pixell.agent.AgentService/Invoke" % port],
                       capture_output=True, text=True, timeout=10)
    with open(resp, "rb") as f:
        data = f.read()
    r = pb2.ActionResult.FromString(data[5:])
    if "grpc-status: 0" not in p.stdout or not r.success or "hello" not in r.result:
        raise RuntimeError("the h2load request body does not make a successful Invoke: %s %s" % (p.stdout, r))


def profile_top(pid, secs, work, name):
    """perf samples of pard (DWARF call graphs: the Release build keeps no frame pointers)
    while a load runs, for at most 4 s."""
    data = os.path.join(work, "perf-%s.data" % name)
    rec = subprocess.Popen(["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(pid),
                            "-o", data, "--", "sleep", str(min(secs, 4))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return rec, data


def profile_report(rec, data, limit=22):
    """Where the CPU goes: the kernel's share of self time (the scheduler's on its own), then
    user-space functions by inclusive time (children), which is what a fix would change."""
    rec.wait()
    self_out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                               "--sort", "sym", "--percent-limit", "0"],
                              capture_output=True, text=True).stdout
    kernel = sched = 0.0
    for l in self_out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[k\]\s+(\S+)", l)
        if m:
            kernel += float(m.group(1))
            if m.group(2).startswith(("finish_task_switch", "__schedule", "schedule")):
                sched += float(m.group(1))
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "-g", "none",
                          "--sort", "dso,sym", "--percent-limit", "2"],
                         capture_output=True, text=True).stdout
    lines = ["self time in the kernel: %.1f%% (context switches alone: %.1f%%)" % (kernel, sched),
             "inclusive time (children, self) of user-space functions:"]
    for l in out.splitlines():
        if not l.strip() or l.startswith("#") or "[k]" in l:
            continue
        if re.search(r"\] (0x[0-9a-f]+|clone3|start_thread|_start|__libc_start_\w+|main)\s*$", l):
            continue   # unresolved frames and the roots every sample shares
        lines.append(l.rstrip())
        if len(lines) >= limit:
            break
    return lines


# ---- the suite -----------------------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.build = os.path.abspath(a.build)
        self.pard = os.path.join(self.build, "pard")
        self.work = tempfile.mkdtemp(prefix="par-bench-")
        self.res = {"meta": {}, "boot": {}, "memory": {}, "rest": {}, "a2a": {}, "drain": {}, "pipeline": {}}
        self.profiles = {}

    def reps(self, full, quick):
        return quick if self.a.quick else full

    def pard_proc(self, **kw):
        return Pard(self.pard, tmp_root=self.work, **kw)

    # -- boot ---------------------------------------------------------------------------
    def boot(self, s3):
        b = self.res["boot"]
        n = self.reps(15, 4)
        floor, needed = self.floor, self.floor_needed
        echo_dir = os.path.join(self.build, "examples", "echo-agent")
        echo_apkg = os.path.join(self.build, "examples", "echo-agent.apkg")
        py_apkg = os.path.join(self.build, "examples", "python-agent.apkg")
        key = "echo-agent-1mb.apkg"
        s3.put(key, self.small)
        url = "s3://%s/%s" % (s3.bucket, key)
        s3env = dict(s3.pard_env(), PACKAGE_SHA256=self.small_sha)
        warm_cache = os.path.join(self.work, "warm-cache")
        apkg_cache = os.path.join(self.work, "apkg-cache")
        py_cache = os.path.join(self.work, "py-cache")
        pyenv = {"PAR_PYTHON": PY, "PAR_PYTHON_SYSTEM_SITE_PACKAGES": "1"}

        scenarios = {
            "native-dir": dict(package=echo_dir),
            "native-apkg-warm": dict(package=echo_apkg, cache=apkg_cache),
            "s3-cold-1mb": dict(url=url, env=s3env),          # a fresh cache every time
            "s3-warm-1mb": dict(url=url, env=s3env, cache=warm_cache),
        }
        if os.path.exists(EATMYDATA):
            scenarios["s3-cold-1mb-nofsync"] = dict(url=url, env=dict(s3env, LD_PRELOAD=EATMYDATA))
        # Fill the warm caches (and the venv) once; those boots are not counted.
        for name, cache, extra in (("s3-warm-1mb", warm_cache, scenarios["s3-warm-1mb"]),
                                   ("native-apkg-warm", apkg_cache, scenarios["native-apkg-warm"])):
            p = self.pard_proc(**extra)
            p.start()
            p.wait_ready()
            p.stop()
            p.close()
        p = self.pard_proc(package=py_apkg, cache=py_cache, env=pyenv)
        p.start()
        b["python-first-boot-venv-build-ms"] = p.wait_ready(120) * 1000
        p.stop()
        p.close()

        samples = {k: [] for k in list(scenarios) + ["python-warm"]}
        phases = {k: [] for k in samples}
        mem = {k: [] for k in samples}
        stop = {k: [] for k in samples}
        cpu = {k: [] for k in samples}
        floor_s, version_s, pyimport_s, floor_cpu, curl_s = [], [], [], [], []
        # What s3rver itself costs: the same object fetched by curl (its own exec included).
        curl_argv = ["/usr/bin/curl", "-sf", "-o", "/dev/null", "--aws-sigv4", "aws:amz:us-east-1:s3",
                     "--user", "S3RVER:S3RVER", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", s3.url(key)]
        for i in range(n):
            for name, kw in scenarios.items():
                self._boot_once(name, kw, samples, phases, mem, stop, cpu)
            if i < self.reps(7, 2):
                self._boot_once("python-warm", dict(package=py_apkg, cache=py_cache, env=pyenv),
                                samples, phases, mem, stop, cpu)
                # The Python agent's floor: its worker cannot serve before FastAPI and uvicorn import.
                pyimport_s.append(spawn_and_reap([PY, "-c", "import fastapi, uvicorn"])[0] * 1000)
            for _ in range(2):
                secs, rc, _, _ = spawn_and_reap(curl_argv)
                curl_s.append(secs * 1000 if rc == 0 else None)
                secs, _, _, fcpu = spawn_and_reap([floor])
                floor_s.append(secs * 1000)
                floor_cpu.append(fcpu * 1000)
                version_s.append(spawn_and_reap([self.pard, "--version"])[0] * 1000)
        for k in samples:
            b[k] = {"readyMs": summary(samples[k]), "phasesMs": self._phase_medians(phases[k]),
                    "stopMs": summary(stop[k]), "cpuWholeRunMs": summary(cpu[k])}
            if phases[k]:
                b[k]["phaseNotes"] = phases[k][-1][1]
        b["floor-exec-ms"] = summary(floor_s)
        b["floor-cpu-ms"] = summary(floor_cpu)
        b["curl-s3-1mb-ms"] = summary(curl_s)
        ldd = subprocess.run(["ldd", floor], capture_output=True, text=True).stdout
        b["floor-loaded-libraries"] = sum(1 for l in ldd.splitlines() if "=>" in l)
        self.res["memory"]["floor"] = floor_memory(floor)
        b["pard-version-exec-ms"] = summary(version_s)
        b["python-import-fastapi-uvicorn-ms"] = summary(pyimport_s)
        b["floor-libraries"] = needed
        self.res["memory"]["ready-by-scenario"] = {k: {"rssKiB": summary([m["rssKiB"] for m in v]),
                                                      "pssKiB": summary([m["pssKiB"] for m in v]),
                                                      "anonKiB": summary([m["anonKiB"] for m in v]),
                                                      "processes": v[-1]["processes"] if v else None}
                                                  for k, v in mem.items()}
        self.res["drain"]["idle"] = {k: stop[k] and summary(stop[k]) for k in stop}

    def _boot_once(self, name, kw, samples, phases, mem, stop, cpu):
        p = self.pard_proc(**kw)
        try:
            p.start()
            samples[name].append(p.wait_ready(60) * 1000)
            mem[name].append(p.memory())
            ph, boot = p.phases()
            notes = {x["name"]: x.get("note") for x in boot.get("phases", [])}
            phases[name].append((ph, notes, boot.get("totalMs")))
            t = p.stop()
            if p.rc != 0:
                raise PardError("%s: pard exited %s after SIGTERM" % (name, p.rc))
            stop[name].append(t * 1000)
            cpu[name].append(p.cpu_total * 1000)
        finally:
            p.close()

    @staticmethod
    def _phase_medians(runs):
        if not runs:
            return {}
        names = list(runs[0][0].keys())
        out = {n: summary([r[0].get(n) for r in runs])["median"] for n in names}
        out["totalMs"] = summary([r[2] for r in runs if r[2] is not None])["median"]
        return out

    # -- REST, A2A, memory after load --------------------------------------------------
    def load(self):
        echo_dir = os.path.join(self.build, "examples", "echo-agent")
        secs = self.reps(10, 3)
        r = self.reps(3, 1)
        p = self.pard_proc(package=echo_dir)
        p.start()
        p.wait_ready()
        time.sleep(0.2)
        self.res["memory"]["native-ready"] = dict(p.memory(), threads=_threads(p.pid))
        body_health = http_get(p.rest_port, "/health")[1].decode()
        rest = self.res["rest"]
        workers_cpu = os.cpu_count() or 2
        runs = {"pard-health": [], "pard-api-hello": [], "nginx-%dw" % workers_cpu: [], "nginx-64w": []}
        for i in range(r):
            for name in runs:
                if name.startswith("nginx"):
                    w = int(name.split("-")[1][:-1])
                    ng = Nginx(self.work, w, body_health)
                    c0 = ng.cpu()
                    res = run_wrk("http://127.0.0.1:%d/health" % ng.port, 64, secs)
                    res["serverCpuPerReqUs"] = (ng.cpu() - c0) / max(res["requests"], 1) * 1e6
                    ng.stop()
                else:
                    path = "/health" if name == "pard-health" else "/api/hello"
                    c0 = p.cpu()
                    res = run_wrk("http://127.0.0.1:%d%s" % (p.rest_port, path), 64, secs)
                    res["serverCpuPerReqUs"] = (p.cpu() - c0) / max(res["requests"], 1) * 1e6
                log("rest %s: %.0f req/s p99 %.2f ms" % (name, res["rps"] or 0, res["p99ms"] or 0))
                runs[name].append(res)
        for name, rs in runs.items():
            rest[name] = {k: summary([x[k] for x in rs]) for k in
                          ("rps", "p50ms", "p90ms", "p99ms", "serverCpuPerReqUs")}
            rest[name]["errors"] = sum(x["non2xx"] + x["socketErrors"] for x in rs)
            rest[name]["raw"] = rs[-1]["raw"]
        ratio = [a["rps"] / b["rps"] for a, b in zip(runs["pard-health"], runs["nginx-%dw" % workers_cpu])]
        rest["health-vs-nginx"] = summary(ratio)
        rest["health-vs-nginx-64w"] = summary([a["rps"] / b["rps"] for a, b in zip(runs["pard-health"], runs["nginx-64w"])])
        rest["nginxWorkersPrimary"] = workers_cpu
        rest["bodyBytes"] = len(body_health)
        rest["pardThreadsAfter"] = _threads(p.pid)

        # A2A: h2load (gRPC frames over HTTP/2) and python3-grpcio, each sequential and 16-way.
        body = grpc_body(os.path.join(self.work, "invoke.grpc"))
        check_grpc_body(p.a2a_port, body, self.work)
        a2a = self.res["a2a"]
        shapes = {
            "h2load-seq": lambda: run_h2load(p.a2a_port, body, 1, 1, secs, self.work),
            "h2load-16x1conn": lambda: run_h2load(p.a2a_port, body, 1, 16, secs, self.work),
            "h2load-16conns": lambda: run_h2load(p.a2a_port, body, 16, 1, secs, self.work),
            "python-seq": lambda: self._py_grpc(p, 1, calls=self.reps(5000, 1000)),
            "python-16callers": lambda: self._py_grpc(p, 16, duration=secs),
        }
        arun = {k: [] for k in shapes}
        for i in range(r):
            for name, fn in shapes.items():
                c0 = p.cpu()
                res = fn()
                if "serverCpuPerCallUs" not in res:
                    res["serverCpuPerCallUs"] = (p.cpu() - c0) / max(res["calls"], 1) * 1e6
                log("a2a %s: %.0f calls/s p50 %.0f us p99 %.0f us cpu/call %.1f us errors %s" % (
                    name, res["callsPerSec"] or 0, res["p50us"] or 0, res["p99us"] or 0,
                    res["serverCpuPerCallUs"], res["errors"]))
                arun[name].append(res)
        for name, rs in arun.items():
            a2a[name] = {k: summary([x[k] for x in rs]) for k in
                         ("callsPerSec", "p50us", "p90us", "p99us", "serverCpuPerCallUs")}
            a2a[name]["errors"] = sum((x["errors"] or 0) for x in rs)
        self.res["memory"]["native-after-load"] = dict(p.memory(), threads=_threads(p.pid))
        if self.a.profile:
            # Extra, uncounted runs with perf attached (sampling perturbs what it measures).
            for name, fn in (("rest-health", lambda: run_wrk("http://127.0.0.1:%d/health" % p.rest_port, 64, secs)),
                             ("rest-api-hello", lambda: run_wrk("http://127.0.0.1:%d/api/hello" % p.rest_port, 64, secs)),
                             ("a2a-h2load-16x1conn", shapes["h2load-16x1conn"]),
                             ("a2a-h2load-seq", shapes["h2load-seq"])):
                prof = profile_top(p.pid, secs, self.work, name)
                fn()
                self.profiles[name] = profile_report(*prof)
        t = p.stop()
        self.res["drain"]["after-load-idle-stopMs"] = t * 1000
        p.close()

    def _profile_cmd(self, argv, env, name):
        data = os.path.join(self.work, "perf-%s.data" % name)
        subprocess.run(["perf", "record", "-q", "-F", "2999", "--call-graph", "dwarf,16384", "-o", data, "--"] + argv,
                       env=dict({"PATH": "/usr/sbin:/usr/bin:/bin"}, **env),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        return profile_report(subprocess.Popen(["true"]), data)

    def _profile_check(self, url, env):
        """`pard --check` fetches, verifies and extracts into a fresh cache, then exits: the
        pipeline alone, under perf from the first instruction."""
        tmp = tempfile.mkdtemp(prefix="check-", dir=self.work)
        e = dict(env, AGENT_APP_ID="bench-check", PACKAGE_URL=url, PAR_CACHE_DIR=os.path.join(tmp, "cache"),
                 PAR_ADMIN_SOCKET=os.path.join(tmp, "admin.sock"), REST_PORT=str(free_port()),
                 A2A_PORT=str(free_port()), UI_PORT="0")
        return self._profile_cmd([self.pard, "--check"], e, "check")

    def _py_grpc(self, p, callers, calls=0, duration=10):
        args = [PY, os.path.join(HERE, "grpc_load.py"), "--port", str(p.a2a_port),
                "--server-pid", str(p.pid), "--callers", str(callers)]
        args += ["--calls", str(calls)] if calls else ["--duration", str(duration)]
        out = subprocess.run(args, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError("grpc_load failed: %s" % out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])

    # -- drain under load ----------------------------------------------------------------
    def drain_under_load(self):
        slow = os.path.join(self.build, "examples", "slow-agent")
        runs = []
        for _ in range(self.reps(3, 1)):
            p = self.pard_proc(package=slow, env={"GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "30"})
            p.start()
            p.wait_ready()
            cli = subprocess.Popen([PY, os.path.join(HERE, "drain_load.py"), "--rest-port", str(p.rest_port),
                                    "--a2a-port", str(p.a2a_port), "--pid", str(p.pid)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            rc, exited = p.wait_exit(90)
            out, err = cli.communicate(timeout=90)
            if cli.returncode != 0:
                raise RuntimeError("drain_load failed: %s" % err[-2000:])
            r = json.loads(out.strip().splitlines()[-1])
            r["exitCode"] = rc
            r["sigtermToExitMs"] = (exited - r["signalAt"]) * 1000
            r["afterLastInFlightMs"] = (exited - r["lastInFlightDone"]) * 1000
            log("drain under load: %d in flight, %d failed of %d sent before SIGTERM, exit %d after %.0f ms "
                "(%.1f ms after the last in-flight answer)" % (r["inFlightAtSignal"], r["failedBefore"],
                                                              r["sentBefore"], rc, r["sigtermToExitMs"],
                                                              r["afterLastInFlightMs"]))
            runs.append(r)
            p.close()
        self.res["drain"]["under-load"] = {
            "runs": runs,
            "inFlightAtSignal": summary([r["inFlightAtSignal"] for r in runs]),
            "failedBefore": sum(r["failedBefore"] for r in runs),
            "sentBefore": sum(r["sentBefore"] for r in runs),
            "sigtermToExitMs": summary([r["sigtermToExitMs"] for r in runs]),
            "afterLastInFlightMs": summary([r["afterLastInFlightMs"] for r in runs]),
            "exitCodes": [r["exitCode"] for r in runs],
        }

    # -- pipeline -----------------------------------------------------------------------
    def pipeline(self, s3):
        key = "echo-agent-50mb.apkg"
        s3.put(key, self.big)
        url = "s3://%s/%s" % (s3.bucket, key)
        env = dict(s3.pard_env(), PACKAGE_SHA256=self.big_sha)
        pard_ms, pard_boot, base_ms, curl_ms, tar_ms, nofsync_ms = [], [], [], [], [], []
        local = os.path.join(self.work, "big-local.apkg")
        shutil.copy(self.big, local)
        # The same bytes from the same server: curl signs like pard does (s3rver accepts both).
        curl_cmd = ("curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user %s:%s "
                "-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' %s | sha256sum") % (
            "S3RVER", "S3RVER", s3.url(key))
        for i in range(self.reps(5, 2)):
            p = self.pard_proc(url=url, env=env)
            p.start()
            pard_boot.append(p.wait_ready(120) * 1000)
            ph, boot = p.phases()
            pard_ms.append(sum(ph.get(k) or 0 for k in ("fetch", "verify", "extract")))
            p.stop()
            p.close()
            if os.path.exists(EATMYDATA):
                p = self.pard_proc(url=url, env=dict(env, LD_PRELOAD=EATMYDATA))
                p.start()
                p.wait_ready(120)
                nph = p.phases()[0]
                nofsync_ms.append(sum(nph.get(k) or 0 for k in ("fetch", "verify", "extract")))
                p.stop()
                p.close()

            t = time.perf_counter()
            out = subprocess.run(["bash", "-o", "pipefail", "-c", curl_cmd], capture_output=True, text=True)
            t1 = time.perf_counter()
            if out.returncode != 0 or not out.stdout.startswith(self.big_sha):
                raise RuntimeError("curl | sha256sum baseline failed: %r %r" % (out.stdout, out.stderr))
            dest = tempfile.mkdtemp(prefix="bsdtar-", dir=self.work)
            subprocess.run(["bsdtar", "-xf", local, "-C", dest], check=True)
            t2 = time.perf_counter()
            shutil.rmtree(dest)
            curl_ms.append((t1 - t) * 1000)
            tar_ms.append((t2 - t1) * 1000)
            base_ms.append((t2 - t) * 1000)
            log("pipeline: pard fetch+verify+extract %d ms (READY %.0f ms; fsync off %s ms); curl|sha256sum %.0f "
                "+ bsdtar %.0f ms" % (pard_ms[-1], pard_boot[-1], nofsync_ms[-1] if nofsync_ms else "–",
                                      curl_ms[-1], tar_ms[-1]))
        if self.a.profile:
            self.profiles["pipeline-check-50mb"] = self._profile_check(url, env)
            self.profiles["boot-pard-version"] = self._profile_cmd([self.pard, "--version"], {}, "version")
        self.res["pipeline"] = {
            "packageBytes": os.path.getsize(self.big),
            "pardFetchVerifyExtractMs": summary(pard_ms),
            "pardReadyMs": summary(pard_boot),
            "pardPhasesMs": ph,
            "baselineMs": summary(base_ms),
            "curlSha256sumMs": summary(curl_ms),
            "bsdtarMs": summary(tar_ms),
            "ratio": summary([a / b for a, b in zip(pard_ms, base_ms)]),
            "pardNoFsyncMs": summary(nofsync_ms),
            "ratioNoFsync": summary([a / b for a, b in zip(nofsync_ms, base_ms)]),
        }

    # -- the run ------------------------------------------------------------------------
    def run(self):
        r = self.res["meta"]
        r["started"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        r["loadavgBefore"] = load_average()
        r["cpus"] = os.cpu_count()
        r["kernel"] = platform.release()
        r["quick"] = bool(self.a.quick)
        try:
            r["pardVersion"] = subprocess.run([self.pard, "--version"], capture_output=True, text=True).stdout.strip()
            r["gitDescribe"] = subprocess.run(["git", "-C", SOURCE_DIR, "describe", "--always", "--dirty"],
                                              capture_output=True, text=True).stdout.strip()
        except OSError:
            pass
        log("work dir %s; load average %s" % (self.work, r["loadavgBefore"]))
        self.small, self.big = build_packages(self.build, self.work)
        self.small_sha, self.big_sha = sha256(self.small), sha256(self.big)
        self.res["boot"]["coldPackageBytes"] = os.path.getsize(self.small)
        self.floor, self.floor_needed = build_floor(self.build, self.work)
        only = set(self.a.only.split(",")) if self.a.only else None
        s3 = S3rver(self.work)
        try:
            if not only or "boot" in only:
                log("boot")
                self.boot(s3)
            if not only or "load" in only:
                log("REST and A2A load")
                self.load()
            if not only or "drain" in only:
                log("drain under load")
                self.drain_under_load()
            if not only or "pipeline" in only:
                log("pipeline")
                self.pipeline(s3)
        finally:
            s3.stop()
        r["loadavgAfter"] = load_average()
        r["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.res["profiles"] = self.profiles
        import report
        os.makedirs(self.a.out, exist_ok=True)
        with open(os.path.join(self.a.out, "report.json"), "w") as f:
            json.dump(self.res, f, indent=1, sort_keys=True)
        md = report.markdown(self.res)
        with open(os.path.join(self.a.out, "report.md"), "w") as f:
            f.write(md)
        print(md)
        log("wrote %s/report.md and report.json" % self.a.out)
        if not self.a.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def _threads(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(SOURCE_DIR, "build-bench"))
    ap.add_argument("--out", default=None, help="report directory (default BUILD/bench-report)")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter runs (developing the suite)")
    ap.add_argument("--profile", action="store_true", help="perf-sample pard during the REST and A2A loads")
    ap.add_argument("--only", default="", help="comma list of boot,load,drain,pipeline")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, perf data)")
    a = ap.parse_args()
    a.out = a.out or os.path.join(a.build, "bench-report")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    Bench(a).run()


if __name__ == "__main__":
    main()
