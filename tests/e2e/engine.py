"""The container end-to-end suite's machinery: a Docker engine of its own (installed from
Debian, started by hand, stopped by its pid), the base image made locally (no registry), an
isolated network that reaches only the endpoints the test allows, and one cleanup stack that
undoes all of it even when a step fails."""
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

# Debian's 20.10 engine and client, by path: another docker may come first on the PATH.
DOCKER, DOCKERD = "/usr/bin/docker", "/usr/sbin/dockerd"
ENGINE_PACKAGES = ("docker.io", "containerd", "runc", "iptables", "mmdebstrap")
DEBIAN_SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# What makes debian:bookworm-slim slim (and dpkg fast in a build), recorded by mmdebstrap in
# /etc/dpkg/dpkg.cfg.d/ so the image's own apt-get honours it too.
SLIM_DPKG_OPTS = (
    "force-unsafe-io",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)


class Unavailable(Exception):
    """No engine can run here: the suite is skipped (with this reason), not failed."""


def log(msg):
    print("e2e: %s" % msg, flush=True)


def poll(pred, timeout, interval=0.05, what="condition"):
    """pred()'s first truthy value; AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class Cleanup:
    """Undo actions, run last-in first-out; each runs even when an earlier one fails."""

    def __init__(self):
        self._stack = []

    def push(self, what, fn, *args, **kw):
        self._stack.append((what, fn, args, kw))

    def run(self):
        while self._stack:
            what, fn, args, kw = self._stack.pop()
            try:
                fn(*args, **kw)
            except Exception as e:  # keep undoing the rest
                log("cleanup: %s failed: %s" % (what, e))


def run(cmd, timeout=120, check=True, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check, **kw)


def _missing_packages():
    missing = []
    for p in ENGINE_PACKAGES:
        r = run(["dpkg-query", "-W", "-f=${Status}", p], check=False)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    return missing


def install_engine_packages():
    missing = _missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise Unavailable("%s not installed and not root to install them" % " ".join(missing))
    log("installing %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq"],
                ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq",
                 "--no-install-recommends"] + missing):
        r = run(cmd, timeout=900, check=False, env=env)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise Unavailable("apt-get could not install %s: %s" % (" ".join(missing), tail[0]))


class Engine:
    """dockerd with its own socket, data root, exec root and config: it shares nothing with
    any other engine on the machine. It neither touches iptables nor ip_forward (the test
    writes the only rules it needs) and has no default bridge: the build uses the host's
    network to reach Debian's mirror, the containers only the test's isolated network."""

    def __init__(self, workdir, cleanup):
        self.dir = workdir
        self.cleanup = cleanup
        self.sock = os.path.join(workdir, "docker.sock")
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.sock, DOCKER_BUILDKIT="0",
                        DOCKER_CONFIG=os.path.join(workdir, "cli"))
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            self.env.pop(k, None)
        self.proc = None

    def start(self):
        conf = os.path.join(self.dir, "daemon.json")
        with open(conf, "w") as f:
            f.write("{}\n")
        self.log_path = os.path.join(self.dir, "dockerd.log")
        cmd = [DOCKERD, "--config-file", conf, "--data-root", os.path.join(self.dir, "docker"),
               "--exec-root", os.path.join(self.dir, "exec"),
               "--pidfile", os.path.join(self.dir, "dockerd.pid"), "-H", "unix://" + self.sock,
               "--bridge=none", "--iptables=false", "--ip-forward=false"]
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.cleanup.push("stop dockerd %d" % self.proc.pid, self._stop)
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise Unavailable("dockerd exited with %d: %s" % (self.proc.returncode,
                                                                  self._log_tail()))
            if self.docker("info", check=False, timeout=10).returncode == 0:
                break
            if time.monotonic() - t0 > 60:
                raise Unavailable("dockerd did not answer within 60 s: %s" % self._log_tail())
            time.sleep(0.1)
        log("engine up in %.1f s (dockerd pid %d)" % (time.monotonic() - t0, self.proc.pid))

    def _log_tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
            bad = [l for l in lines if "level=error" in l or "level=fatal" in l]
            return ((bad or lines or ["no output"])[-1])[:300]
        except OSError:
            return "no log"

    def docker(self, *args, check=True, timeout=120, input=None):
        r = subprocess.run([DOCKER] + list(args), capture_output=True, text=True, env=self.env,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError("docker %s failed (%d): %s" % (
                " ".join(args[:3]), r.returncode, (r.stderr or r.stdout).strip()[-800:]))
        return r

    def _containerd_pid(self):
        try:
            with open(os.path.join(self.dir, "exec", "containerd", "containerd.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _stop(self):
        """Removes what the engine holds, then stops dockerd by its pid (and the containerd it
        started, should dockerd die without stopping it) and unmounts what they left."""
        if self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
            imgs = self.docker("images", "-aq", check=False).stdout.split()
            if imgs:
                self.docker("rmi", "-f", *sorted(set(imgs)), check=False, timeout=120)
            self.docker("volume", "prune", "-f", check=False)
        containerd = self._containerd_pid()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if containerd and _comm(containerd) == "containerd":
            try:
                os.kill(containerd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        unmount_under(self.dir)


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def unmount_under(path):
    """Lazily unmounts every mount below path, deepest first (netns files, overlays)."""
    prefix = os.path.realpath(path) + "/"
    with open("/proc/self/mounts") as f:
        points = [l.split()[1].replace("\\040", " ") for l in f]
    for p in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


def from_images(dockerfile):
    """The images the Dockerfile's FROM lines name, stage names left out."""
    stages, images = set(), []
    with open(dockerfile) as f:
        for line in f:
            m = re.match(r"\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
            if not m:
                continue
            if m.group(1) not in stages and m.group(1) not in images:
                images.append(m.group(1))
            if m.group(2):
                stages.add(m.group(2))
    return images


def make_base_images(engine, dockerfile, workdir):
    """No registry: bookworm from Debian's mirror by mmdebstrap, slimmed like the official
    image, imported under each name the Dockerfile's FROM uses. The tarball is made once per
    run and kept in the run's own directory."""
    tar = os.path.join(workdir, "bookworm-minbase.tar")
    if not os.path.exists(tar):
        t0 = time.monotonic()
        cmd = ["mmdebstrap", "--quiet", "--format=tar", "--variant=minbase",
               "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"]
        cmd += ["--dpkgopt=" + o for o in SLIM_DPKG_OPTS]
        cmd += ["bookworm", tar + ".part"] + list(DEBIAN_SOURCES)
        r = run(cmd, timeout=900, check=False)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise Unavailable("mmdebstrap could not make the base image: %s" % tail[0])
        os.rename(tar + ".part", tar)
        log("base tarball by mmdebstrap in %.0f s" % (time.monotonic() - t0))
    for name in from_images(dockerfile):
        engine.docker("import", tar, name, timeout=300)
        log("imported the base as %s" % name)


def snapshot_context(src, dest):
    """A frozen copy of the source tree to build from: both targets then see the same files
    even while people edit the tree. Big directories .dockerignore drops anyway stay out."""
    def ignore(d, names):
        top = os.path.samefile(d, src)
        return [n for n in names if n in (".git", "node_modules", "__pycache__")
                or (top and n.startswith("build"))]
    shutil.copytree(src, dest, ignore=ignore, symlinks=True)
    return dest


def _used_networks():
    r = run(["ip", "-o", "-4", "route", "show"], check=False)
    nets = []
    for line in r.stdout.splitlines():
        tok = line.split()[0]
        if tok != "default":
            try:
                nets.append(ipaddress.ip_network(tok, strict=False))
            except ValueError:
                pass
    return nets


def free_subnet(seed):
    """A /24 in 172.30.0.0/16 that no route on the machine overlaps, starting from seed."""
    used = _used_networks()
    for i in range(256):
        net = ipaddress.ip_network("172.30.%d.0/24" % ((seed + i) % 256))
        if not any(net.overlaps(u) for u in used):
            return net
    raise AssertionError("no free /24 in 172.30.0.0/16")


def iptables(*args, check=True):
    return run(["iptables", "-w", "5"] + list(args), check=check)


class IsolatedNet:
    """An --internal Docker network whose containers reach exactly the host-side endpoints
    allowed (allow()); every other destination is refused at once (ICMP admin-prohibited),
    not left to hang. Rules live in two chains of this run's own, jumped to from INPUT and
    FORWARD for this bridge only. Forwarding is switched on for this bridge alone so that
    packets to other addresses reach the FORWARD chain and get their refusal."""

    def __init__(self, engine, cleanup, label, tag, seed):
        # Names carry the run's tag (its pid) so parallel runs never share one; a bridge
        # name has at most 15 bytes.
        self.engine = engine
        self.name = "par-e2e-%s-%s" % (tag, label)
        self.bridge = "pe2e%s%s" % (label[0], tag[-8:])
        self.subnet = free_subnet(seed)
        self.gateway = str(self.subnet.network_address + 1)
        self.chain_in = "PARE2E-%s%s-IN" % (label[0], tag[-10:])
        self.chain_fwd = "PARE2E-%s%s-FWD" % (label[0], tag[-10:])
        engine.docker("network", "create", "--internal", "--subnet", str(self.subnet),
                      "--gateway", self.gateway, "-o",
                      "com.docker.network.bridge.name=" + self.bridge, self.name)
        cleanup.push("network " + self.name, self._remove)
        # Chains first, then the jumps to them, then forwarding: never a moment without rules.
        iptables("-N", self.chain_in)
        cleanup.push("iptables chain " + self.chain_in, self._drop_chain, self.chain_in)
        iptables("-N", self.chain_fwd)
        cleanup.push("iptables chain " + self.chain_fwd, self._drop_chain, self.chain_fwd)
        iptables("-A", self.chain_in, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
                 "-j", "ACCEPT")
        iptables("-A", self.chain_in, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
        iptables("-A", self.chain_fwd, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
        self._jump("INPUT", ["-i", self.bridge], self.chain_in, cleanup)
        self._jump("FORWARD", ["-i", self.bridge, "!", "-o", self.bridge], self.chain_fwd,
                   cleanup)
        self._forwarding(1)
        cleanup.push("forwarding off on " + self.bridge, self._forwarding, 0)
        # No DNS: a name the test did not put in /etc/hosts fails at once.
        self.resolv = os.path.join(engine.dir, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def _remove(self):
        """The network, after any container still on it; the bridge itself should the
        engine fail to delete it (a stopped engine leaves its bridges behind)."""
        ids = self.engine.docker("ps", "-aq", "--filter", "network=" + self.name,
                                 check=False).stdout.split()
        if ids:
            self.engine.docker("rm", "-f", "-v", *ids, check=False)
        self.engine.docker("network", "rm", self.name, check=False)
        if os.path.exists("/sys/class/net/" + self.bridge):
            run(["ip", "link", "del", self.bridge], check=False)

    def _jump(self, chain, match, target, cleanup):
        rule = [chain] + match + ["-j", target]
        iptables("-I", *rule)
        cleanup.push("iptables jump %s -> %s" % (chain, target), iptables, "-D", *rule)

    def _drop_chain(self, chain):
        iptables("-F", chain, check=False)
        iptables("-X", chain)

    def _forwarding(self, on):
        path = "/proc/sys/net/ipv4/conf/%s/forwarding" % self.bridge
        if os.path.exists(path):
            with open(path, "w") as f:
                f.write("%d\n" % on)

    def allow(self, port):
        """Lets the network's containers reach the host side's gateway address on port."""
        iptables("-I", self.chain_in, "2", "-p", "tcp", "-d", self.gateway, "--dport",
                 str(port), "-j", "ACCEPT")

    def run_args(self):
        """docker run options that put a container on this network with no DNS."""
        return ["--network", self.name, "-v", self.resolv + ":/etc/resolv.conf:ro"]


def free_port(host):
    """A port the kernel just handed out on host (the listener binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def workdir():
    """The run's private directory. Short: dockerd's and containerd's sockets live below it."""
    base = os.environ.get("TMPDIR", "/tmp")
    if len(base) > 40:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="par-e2e-", dir=base)
