"""Building blocks of the benchmark suite: free ports, statistics, /proc readings of a process
tree (RSS, PSS, CPU), a pard process timed from spawn to /health 200, s3rver and nginx."""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
# Free ports the same way the tests ask the kernel for them.
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
from pardtest import free_port, free_ports  # noqa: E402
PY = "/usr/bin/python3"   # Debian's: it has grpcio and botocore (a pyenv python3 may not)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def summary(xs):
    """Median and range: on 2 shared cores the mean is dragged by whatever else ran."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0, "samples": []}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs),
            "samples": xs}


def percentile(xs, p):
    if not xs:
        return None
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def load_average():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---- /proc readings ------------------------------------------------------------------------

def _ppid_map():
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields start after the last ')'.
        rest = s[s.rindex(")") + 2:].split()
        m[int(d)] = int(rest[1])
    return m


def tree_pids(root):
    """root and every descendant (a Python agent's worker, pip, …)."""
    m = _ppid_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in m.items() if pp == p)
    return out


def tree_memory(root):
    """RSS and PSS in KiB of the whole tree, from smaps_rollup (PSS splits shared pages
    among the processes that map them, so the tree's PSS is what it really costs)."""
    rss = pss = anon = 0
    pids = tree_pids(root)
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Anonymous:"):
                        anon += int(line.split()[1])
        except OSError:
            pass
    # Anonymous = heap, stacks, library data written to; the rest of RSS is file pages
    # (library code), shared with every other process that maps the same libraries.
    return {"rssKiB": rss, "pssKiB": pss, "anonKiB": anon, "processes": len(pids)}


def cpu_seconds(pids):
    """User + system CPU of these processes, threads that already exited included."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        total += int(rest[11]) + int(rest[12])   # utime, stime
    return total / CLK_TCK


def thread_count(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return 0


# ---- HTTP without a library: the timing of a boot should not include one ------------------

def http_get(port, path, timeout=5.0, host="127.0.0.1"):
    """(status, body) of one HTTP/1.1 GET on a fresh connection; (0, b"") when refused."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
    except OSError:
        return 0, b""
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, b""
    return status, body


# ---- pard ----------------------------------------------------------------------------------

class PardError(RuntimeError):
    pass


# Every process the suite starts, so a run that fails half-way leaves nothing behind.
_live = []


def _kill_leftovers():
    for obj in list(_live):
        try:
            obj.kill() if isinstance(obj, Pard) else obj.stop()
        except Exception:   # noqa: BLE001 (best effort at exit)
            pass


import atexit  # noqa: E402
atexit.register(_kill_leftovers)


class Pard:
    """One pard with its own ports, cache and admin socket. Spawned with posix_spawn and timed
    from just before the spawn; READY is seen on its stdout (a pipe, as under a container
    runtime) and confirmed by a /health 200, which ends the boot figure."""

    def __init__(self, pard_bin, package=None, url=None, env=None, cache=None, tmp_root=None):
        self.tmp = tempfile.mkdtemp(prefix="pard-bench-", dir=tmp_root)
        self.rest_port, self.a2a_port, self.ui_port = free_ports(3)
        e = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "AGENT_APP_ID": "bench-agent",
            "REST_PORT": str(self.rest_port),
            "A2A_PORT": str(self.a2a_port),
            "UI_PORT": str(self.ui_port),
            "PAR_CACHE_DIR": cache or os.path.join(self.tmp, "cache"),
            "PAR_ADMIN_SOCKET": os.path.join(self.tmp, "admin.sock"),
            "PAR_DRAIN_DELAY_SEC": "0",
            "HOME": self.tmp,
        }
        if package:
            e["AGENT_PACKAGE_PATH"] = package
        if url:
            e["PACKAGE_URL"] = url
        e.update(env or {})
        self.env = e
        self.bin = pard_bin
        self.pid = None
        self.log_path = os.path.join(self.tmp, "pard.log")
        self.rc = None
        self.exited_at = None

    def start(self):
        rfd, wfd = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, wfd, 1),
                   (os.POSIX_SPAWN_OPEN, 2, os.path.join(self.tmp, "stderr"),
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
        self.t0 = time.perf_counter()
        self.pid = os.posix_spawn(self.bin, [self.bin], self.env, file_actions=actions)
        _live.append(self)
        os.close(wfd)
        self._rfd = rfd
        self._log = open(self.log_path, "wb")
        self._buf = b""
        return self

    def wait_ready(self, timeout=30.0):
        """Seconds from spawn to the first /health 200 (read READY off stdout, then ask)."""
        deadline = time.perf_counter() + timeout
        import select
        quiet = self.env.get("LOG_LEVEL", "info").lower() in ("warn", "warning", "error")
        while not quiet:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise PardError("pard not READY within %.0fs: %s" % (timeout, self.tail()))
            r, _, _ = select.select([self._rfd], [], [], left)
            if not r:
                continue
            b = os.read(self._rfd, 65536)
            if not b:
                raise PardError("pard exited during boot: %s" % self.tail())
            self._log.write(b)
            self._buf += b
            if b'"event":"lifecycle.ready"' in self._buf:
                break
            # Keep only the unfinished last line: the marker can't span two complete lines.
            self._buf = self._buf[self._buf.rfind(b"\n") + 1:]
        # (Below info, READY is not logged: then /health is polled from the start.)
        while True:
            status, _ = http_get(self.rest_port, "/health")
            t = time.perf_counter()
            if status == 200:
                break
            if t > deadline:
                raise PardError("/health never 200 after READY (last %d)" % status)
            time.sleep(0.001 if quiet else 0.0002)
        self.ready_s = t - self.t0
        # From here on a thread drains stdout into the log so pard never blocks on a full pipe.
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        return self.ready_s

    def _drain(self):
        while True:
            try:
                b = os.read(self._rfd, 1 << 20)
            except OSError:
                break
            if not b:
                break
            self._log.write(b)
        self._log.flush()

    def tail(self, n=15):
        try:
            self._log.flush()
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            lines = []
        try:
            with open(os.path.join(self.tmp, "stderr"), "rb") as f:
                err = f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            err = ""
        return "\n".join(lines[-n:]) + ("\nstderr: " + err if err else "")

    def meta(self):
        status, body = http_get(self.rest_port, "/meta")
        if status != 200:
            raise PardError("/meta answered %d" % status)
        return json.loads(body)

    def phases(self):
        """{phase name: durationMs} from /meta (pard's own view of its boot)."""
        boot = self.meta().get("boot", {})
        return {p["name"]: p.get("durationMs") for p in boot.get("phases", [])}, boot

    def memory(self):
        return tree_memory(self.pid)

    def cpu(self):
        return cpu_seconds(tree_pids(self.pid))

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        """Sends sig and waits for the exit; returns seconds from the signal to the reaped exit."""
        if self.pid is None or self.rc is not None:
            return None
        t = time.perf_counter()
        os.kill(self.pid, sig)
        end = t + timeout
        while True:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            if pid:
                # CPU of the whole life (boot, a request or two, drain), µs-precise.
                self.cpu_total = ru.ru_utime + ru.ru_stime
                break
            if time.perf_counter() > end:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.rc = -9
                raise PardError("pard did not exit within %.0fs of %s" % (timeout, sig))
            time.sleep(0.0002)
        self.exited_at = time.perf_counter()
        self.rc = os.waitstatus_to_exitcode(status)
        return self.exited_at - t

    def wait_exit(self, timeout=60.0):
        """Reaps a pard that someone else signalled; returns (exit code, perf_counter time)."""
        end = time.perf_counter() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exited_at = time.perf_counter()
                self.rc = os.waitstatus_to_exitcode(status)
                return self.rc, self.exited_at
            if time.perf_counter() > end:
                self.kill()
                raise PardError("pard did not exit within %.0fs" % timeout)
            time.sleep(0.0002)

    def kill(self):
        if self.pid is not None and self.rc is None:
            kids = tree_pids(self.pid)[1:]   # a Python agent's worker would outlive a SIGKILLed pard
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
            self.rc = -9
        if self in _live:
            _live.remove(self)

    def close(self, keep=False):
        self.kill()
        if hasattr(self, "_drainer"):
            self._drainer.join(5)
        try:
            os.close(self._rfd)
        except (OSError, AttributeError):
            pass
        if hasattr(self, "_log"):
            self._log.close()
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def spawn_and_reap(argv, env=None):
    """(seconds from posix_spawn to the reaped exit, exit code, peak RSS in KiB, CPU seconds)
    of a short-lived program."""
    t = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env if env is not None else {"PATH": "/usr/bin:/bin"},
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    _, status, ru = os.wait4(pid, 0)
    return (time.perf_counter() - t, os.waitstatus_to_exitcode(status), ru.ru_maxrss,
            ru.ru_utime + ru.ru_stime)


# ---- peers ---------------------------------------------------------------------------------

S3_KEY = S3_SECRET = "S3RVER"   # s3rver's static keys


class S3rver:
    """npm s3rver (tests/peers) on a free loopback port with one bucket."""

    def __init__(self, tmp_root, bucket="bench"):
        self.bucket = bucket
        self.dir = tempfile.mkdtemp(prefix="s3rver-", dir=tmp_root)
        self.port = free_port()
        node = shutil.which("node") or "/usr/bin/node"
        script = os.path.join(SOURCE_DIR, "tests", "peers", "node_modules", "s3rver", "bin", "s3rver.js")
        if not os.path.exists(script):
            raise RuntimeError("s3rver missing: run bench/install-deps.sh")
        self.log = open(os.path.join(self.dir, "s3rver.log"), "w")
        self.proc = subprocess.Popen([node, script, "-d", os.path.join(self.dir, "data"), "-a", "127.0.0.1",
                                      "-p", str(self.port), "--service-endpoint", "localhost",
                                      "--configure-bucket", bucket, "--silent"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        _live.append(self)
        end = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise RuntimeError("s3rver did not start")
                time.sleep(0.05)

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def url(self, key):
        """Path-style plain URL (for curl)."""
        return "%s/%s/%s" % (self.endpoint, self.bucket, key)

    def put(self, key, path):
        import botocore.session
        s = botocore.session.get_session()
        c = s.create_client("s3", region_name="us-east-1", endpoint_url=self.endpoint,
                            aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
        with open(path, "rb") as f:
            c.put_object(Bucket=self.bucket, Key=key, Body=f.read())

    def pard_env(self):
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": S3_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": "us-east-1"}

    def stop(self):
        if self in _live:
            _live.remove(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    """Debian's nginx, our own instance: config in a temp dir, a free loopback port, no daemon."""

    def __init__(self, tmp_root, workers, body):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=tmp_root)
        os.chmod(self.dir, 0o755)   # workers drop to nobody and still need to reach the dir
        self.port = free_port()
        with open(os.path.join(HERE, "nginx.conf.in")) as f:
            conf = f.read()
        conf = (conf.replace("@WORKERS@", str(workers)).replace("@PORT@", str(self.port))
                .replace("@DIR@", self.dir).replace("@BODY@", body.replace("'", "\\'")))
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.dir, "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "w"))
        _live.append(self)
        end = time.monotonic() + 10
        while http_get(self.port, "/health")[0] != 200:
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("nginx did not start: see %s" % self.dir)
            time.sleep(0.02)

    def cpu(self):
        return cpu_seconds(tree_pids(self.proc.pid))

    def stop(self):
        if self in _live:
            _live.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)   # graceful: finish, then exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
