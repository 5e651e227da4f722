"""parctl (issue 7): the grammar and its usage errors, text/JSON/OpenMetrics output, exit codes
(failure, usage, unreachable, denied), piped commands, the readline shell driven through
tmux, the read-only socket as nobody, and the completion scripts."""
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from pardtest import PARCTL, SLOW, SOURCE_DIR, Pard, PardTestCase, poll

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
FAULTS = ("health.fail", "rest.latency", "rest.error", "a2a.latency", "a2a.error",
          "worker.kill", "crash", "hang")


def base_env(**extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return env


class Run:
    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout.decode("utf-8", "replace")
        self.err = p.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "rc=%s\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.out, self.err)


def parctl(test, args, env=None, stdin=b"", wrapper=None, timeout=30):
    """Runs parctl to completion; a sanitizer report in its stderr fails the test."""
    p = subprocess.run((wrapper or []) + [PARCTL] + list(args), input=stdin, capture_output=True,
                       env=env or base_env(), timeout=timeout * SLOW)
    r = Run(p)
    for marker in SANITIZER_MARKERS:
        test.assertNotIn(marker, r.err, r.err[-4000:])
    return r


class Grammar(PardTestCase):
    """Everything parctl decides before it talks to pard."""

    def nowhere(self):
        d = tempfile.mkdtemp(prefix="parctl-none-")
        self.addCleanup(shutil.rmtree, d, True)
        return base_env(PAR_ADMIN_SOCKET=os.path.join(d, "admin.sock"), XDG_RUNTIME_DIR=os.path.join(d, "xdg"))

    def test_ambiguous_unknown_missing_exit_2(self):
        env = self.nowhere()
        cases = [
            (["s"], "ambiguous argument: s (", ("status", "show")),
            (["x"], "unknown argument: x; valid: ", ("status", "show", "fault", "verify-isolation")),
            (["show"], "missing argument: show needs one of ", ("boot", "config", "package", "metrics", "budgets")),
            (["fault", "set"], "missing argument: fault set needs one of ", FAULTS),
            (["log", "level"], "missing argument: log level needs one of ", ("debug", "info", "warn", "error")),
            (["status", "extra"], "unknown argument: extra", ()),
            (["fault", "set", "rest.latency", "soon"], 'bad argument: rest.latency: value "soon" is not a whole number of ms', ("ms",)),
            (["fault", "set", "hang", "5"], "takes no value", ()),
            (["fault", "set", "worker.kill", "--probability", "0.5"], "takes no probability", ()),
            (["fault", "set", "rest.latency", "5", "--probability", "2"], "bad argument: --probability 2", ()),
            (["drain", "--timeout"], "missing argument: --timeout", ()),
            (["drain", "--timeout", "soon"], "bad argument: --timeout soon", ()),
            (["quit"], "unknown argument: quit", ()),
        ]
        for args, msg, names in cases:
            with self.subTest(args=args):
                r = parctl(self, args, env)
                self.assertEqual(r.rc, 2, r)
                self.assertIn(msg, r.err)
                for n in names:
                    self.assertIn(n, r.err)
                self.assertEqual(r.out, "")

    def test_bad_option_and_timeout_are_usage(self):
        for args in (["--bogus", "status"], ["-t", "0", "status"], ["-t", "soon", "status"], ["-s"]):
            with self.subTest(args=args):
                r = parctl(self, args, self.nowhere())
                self.assertEqual(r.rc, 2, r)

    def test_usage_error_as_json(self):
        r = parctl(self, ["-j", "bogus"], self.nowhere())
        self.assertEqual(r.rc, 2)
        e = json.loads(r.err)
        self.assertEqual(e["error"]["code"], "usage")
        self.assertIn("unknown argument: bogus", e["error"]["message"])
        self.assertEqual(e["exit"], 2)

    def test_every_verb_parses_and_no_daemon_is_exit_3_naming_every_path(self):
        env = self.nowhere()
        verbs = json.loads(parctl(self, ["-j", "help"], env).out)["verbs"]
        admin = [v["cmd"] for v in verbs if v["access"] != "local"]
        self.assertIn("show budgets", admin)
        self.assertIn("verify-isolation", admin)
        minimal = {"health": ["ok"], "fault set": ["rest.latency", "10"], "log level": ["info"]}
        for cmd in admin:
            with self.subTest(cmd=cmd):
                r = parctl(self, cmd.split() + minimal.get(cmd, []), env)
                self.assertEqual(r.rc, 3, r)
                self.assertIn(env["PAR_ADMIN_SOCKET"], r.err)
                self.assertIn(os.path.join(env["XDG_RUNTIME_DIR"], "par", "admin.sock"), r.err)
                self.assertIn("/tmp/par-%d/admin.sock" % os.geteuid(), r.err)
                self.assertIn("is pard running? set PAR_ADMIN_SOCKET or use -s PATH", r.err)

    def test_prefixes_reach_the_verbs(self):
        r = parctl(self, ["-s", "/nonexistent/admin.sock", "st"], self.nowhere())
        self.assertEqual(r.rc, 3, r)
        self.assertIn("/nonexistent/admin.sock", r.err)
        r = parctl(self, ["-s", "/nonexistent/admin.sock", "sh", "bo"], self.nowhere())
        self.assertEqual(r.rc, 3, r)
        self.assertEqual(parctl(self, ["sh", "b"], self.nowhere()).rc, 2)   # boot or budgets

    def test_help_lists_every_verb_and_fault(self):
        r = parctl(self, ["help"], self.nowhere())
        self.assertEqual(r.rc, 0, r)
        for verb in ("status", "show boot", "show budgets", "drain [--timeout S] [--no-exit]", "undrain",
                     "health fail|ok", "fault set NAME", "fault clear", "log level", "monitor", "ping",
                     "version", "verify-isolation [--strict]", "validate", "completion bash|zsh|fish"):
            self.assertIn(verb, r.out)
        for f in FAULTS:
            self.assertIn(f, r.out)

    def test_man_page_matches_help(self):
        with open(os.path.join(SOURCE_DIR, "docs", "parctl.8")) as f:
            man = f.read()
        table = man.split(".TS\n", 1)[1].split(".TE", 1)[0]
        codes = {line.split("\t")[0] for line in table.splitlines()[1:] if line}
        self.assertEqual(codes, {"0", "1", "2", "3", "4"})
        usage = parctl(self, ["--help"], self.nowhere()).out
        for code, word in (("0", "ok"), ("1", "failure"), ("2", "usage"), ("3", "unreachable"), ("4", "denied")):
            self.assertRegex(usage, r"\b%s %s" % (code, "[a-z ]*" + word))
        verbs = json.loads(parctl(self, ["-j", "help"], self.nowhere()).out)["verbs"]
        plain = man.replace("\\-", "-").replace("\\fB", "").replace("\\fP", "").replace('"', "")
        for v in verbs:
            if v["cmd"] != "quit":
                self.assertIn(v["cmd"], plain)
        self.assertIn(".parctl_history", man)

    def test_completion_scripts_are_the_checked_in_files(self):
        for shell, name in (("bash", "parctl.bash"), ("zsh", "_parctl"), ("fish", "parctl.fish")):
            with self.subTest(shell=shell):
                r = parctl(self, ["completion", shell], self.nowhere())
                self.assertEqual(r.rc, 0, r)
                with open(os.path.join(SOURCE_DIR, "completions", name)) as f:
                    self.assertEqual(r.out, f.read())
        for shell, name in (("bash", "parctl.bash"), ("zsh", "_parctl"), ("fish", "parctl.fish")):
            with self.subTest(syntax=shell):
                self.assertTrue(shutil.which(shell), "%s is needed (scripts/install-deps.sh installs it)" % shell)
                r = subprocess.run([shell, "-n", os.path.join(SOURCE_DIR, "completions", name)], capture_output=True)
                self.assertEqual(r.returncode, 0, r.stderr)

    def bash_complete(self, *words):
        """COMPREPLY of the bash script for the command line `parctl WORDS…` (the last word
        being completed)."""
        script = os.path.join(SOURCE_DIR, "completions", "parctl.bash")
        words_q = " ".join(shlex.quote(w) for w in (PARCTL,) + words)
        prog = 'source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _parctl; printf "%%s\\n" "${COMPREPLY[@]}"' % (
            shlex.quote(script), words_q, len(words))
        r = subprocess.run(["bash", "-c", prog], capture_output=True, env=self.nowhere(), timeout=30 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [w for w in r.stdout.decode().split("\n") if w]

    def test_fish_completion_asks_parctl(self):
        script = os.path.join(SOURCE_DIR, "completions", "parctl.fish")
        env = self.nowhere()
        env["PATH"] = os.path.dirname(os.path.abspath(PARCTL)) + ":" + env["PATH"]
        self.assertEqual(os.path.basename(PARCTL), "parctl")
        prog = "source %s; complete -C 'parctl fault set '; echo ==; complete -C 'parctl -j sh bu'" % shlex.quote(script)
        r = subprocess.run(["fish", "--no-config", "-c", prog], capture_output=True, env=env, timeout=30 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        faults, shows = r.stdout.decode().split("==\n")
        self.assertEqual(sorted(faults.split()), sorted(FAULTS))
        self.assertEqual(shows.split(), ["budgets"])

    def test_bash_completion_asks_parctl(self):
        self.assertEqual(self.bash_complete("st"), ["status"])
        self.assertEqual(sorted(self.bash_complete("fault", "set", "")), sorted(FAULTS))
        self.assertEqual(self.bash_complete("-j", "sh", "bu"), ["budgets"])
        self.assertEqual(sorted(self.bash_complete("log", "level", "")), ["debug", "error", "info", "warn"])
        self.assertEqual(sorted(self.bash_complete("drain", "--")), ["--no-exit", "--timeout"])
        self.assertIn("--json", self.bash_complete("--j"))


class WithPard(PardTestCase):
    """parctl against a real pard, with a read-only socket nobody can reach."""

    def setUp(self):
        super().setUp()
        self.ro_dir = tempfile.mkdtemp(prefix="parctl-ro-")
        self.addCleanup(shutil.rmtree, self.ro_dir, True)
        os.chmod(self.ro_dir, 0o755)
        self.ro_socket = os.path.join(self.ro_dir, "ro.sock")
        self.pard = Pard(self, env={"PAR_ADMIN_RO_SOCKET": self.ro_socket}).start()
        self.pard.wait_ready()
        self.sock = self.pard.admin_socket
        poll(lambda: os.path.exists(self.sock) and os.path.exists(self.ro_socket), 10, what="admin sockets")
        self.env = base_env(PAR_ADMIN_SOCKET=self.sock)

    def test_status_text_and_json(self):
        r = parctl(self, ["st"], self.env)
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"(?m)^state\s+ready$")
        r = parctl(self, ["-j", "status"], self.env)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(r.out.splitlines()), 1)
        self.assertEqual(json.loads(r.out)["state"], "ready")

    def test_show_boot_is_a_phase_table_with_durations(self):
        r = parctl(self, ["sh", "bo"], self.env)
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"(?m)^\s+NAME\s+STATUS\s+DURATION\s+NOTE$")
        self.assertRegex(r.out, r"(?m)^\s+manifest\s+done\s+\d+ ms\s")
        phases = json.loads(parctl(self, ["-j", "show", "boot"], self.env).out)["phases"]
        self.assertIn("fetch", [p["name"] for p in phases])

    def test_show_metrics_is_openmetrics_text_or_json(self):
        r = parctl(self, ["show", "metrics"], self.env)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("# TYPE par_state gauge", r.out)
        self.assertRegex(r.out, r'(?m)^par_state\{state="ready"\} 1')
        j = json.loads(parctl(self, ["-j", "show", "metrics"], self.env).out)
        self.assertIsInstance(j, dict)

    def test_fault_round_trip(self):
        r = parctl(self, ["fa", "se", "rest.lat", "20", "--prob", "0.5"], self.env)
        self.assertEqual(r.rc, 0, r)
        active = json.loads(parctl(self, ["-j", "fault", "list"], self.env).out)["active"]
        self.assertEqual([(a["name"], a["probability"]) for a in active], [("rest.latency", 0.5)])
        self.assertEqual(parctl(self, ["fault", "clear"], self.env).rc, 0)
        self.assertEqual(json.loads(parctl(self, ["-j", "fault", "list"], self.env).out)["active"], [])

    def test_reported_failure_is_exit_1(self):
        r = parctl(self, ["undrain"], self.env)     # not draining: bad_state
        self.assertEqual(r.rc, 1, r)
        self.assertTrue(r.err.startswith("parctl: "), r)
        r = parctl(self, ["-j", "undrain"], self.env)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(json.loads(r.err)["error"]["code"], "bad_state")

    def test_result_that_says_not_ok_is_exit_1(self):
        # No credentials: the IAM probes WARN, which --strict turns into FAIL.
        r = parctl(self, ["verify-isolation", "--strict"], self.env)
        self.assertEqual(r.rc, 1, r)
        self.assertRegex(r.out, r"(?m)^\s+NAME\s+VERDICT\s+EVIDENCE$")
        self.assertRegex(r.err, r"verify-isolation: \d+ checks? failed")

    def test_piped_commands_stop_at_the_failing_line(self):
        r = parctl(self, [], self.env, stdin=b"status\nbogus\nping\n")
        self.assertEqual(r.rc, 1, r)
        self.assertNotIn("par>", r.out)
        self.assertEqual(len(re.findall(r"(?m)^state\s", r.out)), 1, r)
        self.assertNotIn("pong", r.out)
        self.assertIn("line 2: unknown argument: bogus", r.err)
        r = parctl(self, ["-j"], self.env, stdin=b"# a comment\n\nstatus  # trailing\nbogus\n")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(len(r.out.splitlines()), 1, r)
        self.assertEqual(json.loads(r.out)["state"], "ready")
        self.assertEqual(json.loads(r.err)["line"], 4)
        r = parctl(self, [], self.env, stdin=b"ping\nquit\nbogus\n")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("pong", r.out)

    def test_nobody_is_denied_on_the_main_socket(self):
        r = parctl(self, ["-s", self.sock, "status"], self.env, wrapper=NOBODY)
        self.assertEqual(r.rc, 4, r)
        self.assertIn("permission denied", r.err)
        self.assertIn(self.sock, r.err)

    def test_peer_check_refusal_is_exit_4(self):
        # A socket anyone may connect to still checks the uid (SO_PEERCRED).
        os.chmod(os.path.dirname(self.sock), 0o755)
        os.chmod(self.sock, 0o666)
        r = parctl(self, ["-s", self.sock, "-j", "status"], self.env, wrapper=NOBODY)
        self.assertEqual(r.rc, 4, r)
        self.assertEqual(json.loads(r.err)["error"]["code"], "denied")

    def test_read_only_socket_serves_status_and_refuses_drain(self):
        env = base_env(PAR_ADMIN_SOCKET=self.ro_socket)
        r = parctl(self, ["status"], env, wrapper=NOBODY)
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"(?m)^state\s+ready$")
        r = parctl(self, ["-j", "drain"], env, wrapper=NOBODY)
        self.assertEqual(r.rc, 4, r)
        self.assertEqual(json.loads(r.err)["error"]["code"], "denied")
        self.assertEqual(json.loads(parctl(self, ["-j", "status"], self.env).out)["state"], "ready")

    def test_monitor_streams_until_ctrl_c(self):
        p = subprocess.Popen([PARCTL, "-j", "monitor"], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        events = []
        reader = threading.Thread(target=lambda: [events.append(json.loads(l)) for l in p.stdout], daemon=True)
        reader.start()
        try:
            # The stream is up once pard logs this monitor's own subscription or answers a
            # command; repeat the command until its event shows.
            def seen():
                parctl(self, ["log", "level", "debug"], self.env)
                return any(e.get("event") == "log.level" for e in events)
            poll(seen, 10, interval=0.2, what="a log.level event on the monitor")
        finally:
            p.send_signal(signal.SIGINT)
            rc = p.wait(10 * SLOW)
            reader.join(5)
            err = p.stderr.read().decode()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(rc, 0, err)

    def test_piped_session_reconnects_after_pard_restarts(self):
        shared = os.path.join(tempfile.mkdtemp(prefix="parctl-shared-"), "admin.sock")
        self.addCleanup(shutil.rmtree, os.path.dirname(shared), True)
        first = Pard(self, env={"PAR_ADMIN_SOCKET": shared}).start()
        first.wait_ready()
        p = subprocess.Popen([PARCTL, "-j"], env=base_env(PAR_ADMIN_SOCKET=shared), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = []
        reader = threading.Thread(target=lambda: [out.append(json.loads(l)) for l in p.stdout], daemon=True)
        reader.start()
        try:
            p.stdin.write(b"version\n")
            p.stdin.flush()
            poll(lambda: len(out) == 1, 10, what="the first answer")
            first.signal()
            self.assertEqual(first.wait_exit(), 0)
            second = Pard(self, env={"PAR_ADMIN_SOCKET": shared}).start()
            second.wait_ready()
            p.stdin.write(b"ping\n")
            p.stdin.close()
            self.assertEqual(p.wait(10 * SLOW), 0, p.stderr.read())
            reader.join(5)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(len(out), 2, out)
        self.assertTrue(out[1]["pong"])


class FakePard:
    """A socket that accepts and answers with a fixed line, or never answers."""

    def __init__(self, test, reply):
        d = tempfile.mkdtemp(prefix="parctl-fake-")
        test.addCleanup(shutil.rmtree, d, True)
        self.path = os.path.join(d, "admin.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(4)
        self.reply = reply
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()
        test.addCleanup(self.close)

    def serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.reply is not None:
                c.recv(65536)
                c.sendall(self.reply)

    def close(self):
        self.srv.close()
        for c in self.conns:
            c.close()


class Unusual(PardTestCase):
    def test_no_answer_within_the_timeout_is_exit_3(self):
        fake = FakePard(self, None)
        t0 = time.monotonic()
        r = parctl(self, ["-s", fake.path, "-t", "0.3", "ping"])
        self.assertEqual(r.rc, 3, r)
        self.assertIn("no answer from pard on %s within 0.3 s" % fake.path, r.err)
        self.assertLess(time.monotonic() - t0, 10 * SLOW)

    def test_protocol_version_mismatch_names_both(self):
        fake = FakePard(self, b'{"v":2,"id":1,"ok":true,"result":{}}\n')
        r = parctl(self, ["-s", fake.path, "ping"])
        self.assertEqual(r.rc, 1, r)
        self.assertIn("version 2", r.err)
        self.assertIn("speaks 1", r.err)

    def test_garbage_answer_is_a_clear_error(self):
        fake = FakePard(self, b"HTTP/1.1 400 Bad Request\r\n\r\n")
        r = parctl(self, ["-s", fake.path, "ping"])
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not a JSON object", r.err)


class Shell(PardTestCase):
    """The interactive shell, driven through tmux like a person at a terminal."""

    def setUp(self):
        super().setUp()
        if not shutil.which("tmux"):
            self.fail("tmux is needed (scripts/install-deps.sh installs it)")
        self.pard = Pard(self).start()
        self.pard.wait_ready()
        self.home = tempfile.mkdtemp(prefix="parctl-home-")
        self.addCleanup(shutil.rmtree, self.home, True)
        self.tmux_name = "parctl-test-%d-%d" % (os.getpid(), id(self))
        self.addCleanup(self.tmux, "kill-server")

    def shell_cmd(self, socket, args=()):
        env = {"HOME": self.home, "PAR_ADMIN_SOCKET": socket, "TERM": "xterm"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        # bash reports parctl's exit status on the screen: tmux's own pane_dead_status
        # sometimes never arrives (the pane's process stays unreaped). The trap keeps bash
        # alive through a Ctrl-C meant for parctl.
        parctl_cmd = " ".join(shlex.quote(a) for a in [PARCTL] + list(args))
        return "env -i PATH=%s %s bash -c %s" % (
            shlex.quote(os.environ.get("PATH", "/usr/bin:/bin")),
            " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in env.items()),
            shlex.quote("trap : INT; %s; echo \"[parctl exited $?]\"" % parctl_cmd))

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.tmux_name] + list(args), capture_output=True, timeout=30)

    def start_shell(self, session="t", socket=None, args=()):
        """parctl in a new tmux session (the one the other helpers address)."""
        self.session = session
        # remain-on-exit keeps the pane, and what parctl printed, after it exits.
        r = self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", "-s", session,
                      self.shell_cmd(socket or self.pard.admin_socket, args))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.tmux("set-option", "-t", session, "remain-on-exit", "on")
        self.wait_screen(lambda s: s.rstrip().endswith("par>"), "the prompt")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", self.session, "-S", "-200").stdout.decode("utf-8", "replace")

    def wait_screen(self, pred, what):
        return poll(lambda: pred(self.screen()), 10, interval=0.05, what="%s; screen:\n%s" % (what, self.screen()))

    def keys(self, *keys):
        self.assertEqual(self.tmux("send-keys", "-t", self.session, *keys).returncode, 0)

    def wait_exit(self, what):
        """parctl's exit status, once bash has printed it."""
        m = self.wait_screen(lambda s: re.search(r"\[parctl exited (\d+)\]", s), what)
        return int(m.group(1))

    def test_completion_history_help_and_ctrl_d(self):
        self.start_shell()
        self.keys("st", "Tab")
        self.wait_screen(lambda s: "par> status" in s, "st<Tab> completed to status")
        self.keys("Enter")
        self.wait_screen(lambda s: re.search(r"(?m)^state\s+ready\s*$", s), "the status table")
        self.keys("fault set ", "Tab", "Tab")
        self.wait_screen(lambda s: all(f in s for f in FAULTS), "fault names listed")
        self.keys("C-u", "help", "Enter")
        self.wait_screen(lambda s: "verify-isolation [--strict]" in s, "help")
        self.keys("C-d")
        self.assertEqual(self.wait_exit("parctl to exit on Ctrl-D"), 0)
        with open(os.path.join(self.home, ".parctl_history")) as f:
            self.assertEqual(f.read().split("\n")[:2], ["status", "help"])

        # A new parctl recalls the last session's commands. (The new tmux session comes
        # first: killing the last one would take the tmux server down with it.)
        self.start_shell("t2")
        self.tmux("kill-session", "-t", "t")
        self.keys("Up", "Up")
        self.wait_screen(lambda s: s.rstrip().endswith("par> status"), "history recall of status")
        self.keys("Enter")
        self.wait_screen(lambda s: re.search(r"(?m)^state\s+ready\s*$", s), "the recalled status ran")
        self.keys("quit", "Enter")
        self.assertEqual(self.wait_exit("parctl to exit on quit"), 0)

    def test_ctrl_c_drops_the_line_and_errors_do_not_end_the_shell(self):
        self.start_shell()
        self.keys("bogus", "Enter")
        self.wait_screen(lambda s: "unknown argument: bogus" in s, "the usage error")
        self.keys("half a command")
        # The terminal flushes unread input on ^C: let readline show the text first.
        self.wait_screen(lambda s: s.rstrip().endswith("par> half a command"), "the typed text")
        self.keys("C-c")
        self.wait_screen(lambda s: s.rstrip().endswith("par> half a command^C\npar>"), "a fresh prompt")
        self.keys("ping", "Enter")
        self.wait_screen(lambda s: "pong" in s, "ping after Ctrl-C")
        self.assertNotIn("[parctl exited", self.screen())

    def test_ctrl_c_abandons_a_command_pard_does_not_answer(self):
        fake = FakePard(self, None)
        self.start_shell(socket=fake.path, args=["-t", "600"])
        self.keys("ping", "Enter")
        poll(lambda: fake.conns, 10, what="parctl to connect")
        self.keys("C-c")
        self.wait_screen(lambda s: "interrupted" in s and s.rstrip().endswith("par>"), "the prompt back")
        self.keys("quit", "Enter")
        self.assertEqual(self.wait_exit("parctl to exit on quit"), 0)


if __name__ == "__main__":
    unittest.main()
