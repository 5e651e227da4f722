"""A tiny client of pard's admin socket protocol (SPEC §8.1) for the integration tests:
one JSON request per line, one JSON response per line."""
import json
import socket
import time

from pardtest import SLOW

PROTO_VERSION = 1


class AdminError(Exception):
    """The socket closed or answered something that is not a response line."""


def connect(path, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


def read_line(sock, buf=b""):
    """(line, rest) for the next '\\n'-terminated line; line None when the peer closed first."""
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    return line, rest


def request_line(cmd, args=None, rid=1, v=PROTO_VERSION):
    return (json.dumps({"v": v, "id": rid, "cmd": cmd, "args": args or {}}) + "\n").encode()


def call(path, cmd, args=None, timeout=5):
    """Sends one request and returns the response object (a dict with ok, result or error)."""
    with connect(path, timeout) as s:
        s.sendall(request_line(cmd, args))
        line, _ = read_line(s)
    if line is None:
        raise AdminError("%s closed the connection without answering %r" % (path, cmd))
    return json.loads(line)


def result(path, cmd, args=None, timeout=5):
    """call() that insists on ok and returns the result."""
    r = call(path, cmd, args, timeout)
    if not r.get("ok"):
        raise AdminError("%r failed: %r" % (cmd, r.get("error")))
    return r["result"]


def raw(path, data, timeout=5, shut=True):
    """Sends bytes as they are and returns every response line (parsed JSON, or the text when
    it is not JSON) until pard closes the connection or, after shut, nothing more comes."""
    lines = []
    with connect(path, timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        while True:
            try:
                line, buf = read_line(s, buf)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if line is None:
                break
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append(line.decode("utf-8", "replace"))
    return lines


class Monitor:
    """An open `monitor` stream: next_event() returns the log record of the next event."""

    def __init__(self, path, timeout=10):
        self.sock = connect(path, timeout)
        self.buf = b""
        self.sock.sendall(request_line("monitor"))
        first = self._next()
        if not first.get("ok") or not (first.get("result") or {}).get("streaming"):
            raise AdminError("monitor did not start: %r" % first)

    def _next(self):
        line, self.buf = read_line(self.sock, self.buf)
        if line is None:
            raise AdminError("monitor stream closed")
        return json.loads(line)

    def next_event(self):
        return self._next()["event"]

    def wait_event(self, pred, timeout=10):
        """The first event (a log record) for which pred is true."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AdminError("no matching monitor event within %.1fs" % (timeout * SLOW))
            self.sock.settimeout(left)
            ev = self.next_event()
            if pred(ev):
                return ev

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
