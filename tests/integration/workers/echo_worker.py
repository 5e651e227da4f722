#!/usr/bin/python3
"""A small exec worker for the tests: the SPEC §4.2 contract (HTTP/1.1 on $PAR_WORKER_SOCKET)
with the Python standard library only.

Actions: echo (result = parameters), hello (result = the string "hi"), fail (success=false),
sleep (parameters.seconds). Routes: /api/echo (method, path, query, headers, body length and
sha256), /api/big?mb=N (N MiB of a fixed pattern), /api/chunked?n=N (N chunks, no length),
/api/status?code=N, /api/sleep?s=N (answers after N seconds). Knobs (environment): ECHO_WORKER_DEFAULT (default action),
ECHO_WORKER_EXIT_AT_START=N (exit N before serving), ECHO_WORKER_IGNORE_TERM=1,
ECHO_WORKER_LONG_LINE=N (print an N-character line at start)."""
import hashlib
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time
import urllib.parse

ACTIONS = ["echo", "hello", "fail", "sleep"]
PATTERN = hashlib.sha256(b"par").digest() * 2048   # 64 KiB


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):
        return "unix"

    def log_message(self, fmt, *args):
        sys.stderr.write("access: %s\n" % (fmt % args))
        sys.stderr.flush()

    def body_chunks(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    b = self.rfile.read(min(left, 65536))
                    if not b:
                        return
                    left -= len(b)
                    yield b
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0") or 0)
            while left:
                b = self.rfile.read(min(left, 65536))
                if not b:
                    return
                left -= len(b)
                yield b

    def read_json(self):
        return json.loads(b"".join(self.body_chunks()) or b"{}")

    def send_json(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def invoke(self):
        req = self.read_json()
        action, params = req.get("action"), req.get("parameters")
        if action == "echo":
            return {"success": True, "result": params}
        if action == "hello":
            return {"success": True, "result": "hi"}
        if action == "fail":
            return {"success": False, "error": "failed as asked"}
        if action == "sleep":
            s = float(params.get("seconds", 1))
            time.sleep(s)
            return {"success": True, "result": {"slept": s}}
        return {"success": False, "error": "unknown action %s" % action}

    def api_echo(self, url):
        h = hashlib.sha256()
        n = 0
        for b in self.body_chunks():
            h.update(b)
            n += len(b)
        self.send_json(200, {
            "method": self.command, "path": url.path, "query": url.query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "length": n, "sha256": h.hexdigest()})

    def api_big(self, q):
        mb = int(q.get("mb", ["1"])[0])
        for _ in self.body_chunks():
            pass
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(mb * 1024 * 1024))
        self.end_headers()
        if self.command != "HEAD":
            for _ in range(mb * 16):
                self.wfile.write(PATTERN)

    def api_chunked(self, q):
        n = int(q.get("n", ["3"])[0])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(n):
            data = ("chunk %d\n" % i).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def api_status(self, q):
        code = int(q.get("code", ["200"])[0])
        for _ in self.body_chunks():
            pass
        if code in (204, 304):
            self.send_response(code)
            self.send_header("X-Worker-Header", "status-%d" % code)
            self.end_headers()
            return
        self.send_json(code, {"status": code}, {"X-Worker-Header": "status-%d" % code,
                                                "Set-Cookie": "a=1"})

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/ping" and self.command == "GET":
            return self.send_json(200, {"ok": True})
        if url.path == "/capabilities" and self.command == "GET":
            return self.send_json(200, {"actions": ACTIONS,
                                        "default": os.environ.get("ECHO_WORKER_DEFAULT", "echo")})
        if url.path == "/invoke" and self.command == "POST":
            return self.send_json(200, self.invoke())
        if url.path == "/api/echo":
            return self.api_echo(url)
        if url.path == "/api/big":
            return self.api_big(q)
        if url.path == "/api/chunked":
            return self.api_chunked(q)
        if url.path == "/api/status":
            return self.api_status(q)
        if url.path == "/api/sleep":
            time.sleep(float(q.get("s", ["1"])[0]))
            return self.send_json(200, {"slept": True})
        for _ in self.body_chunks():
            pass
        self.send_json(404, {"error": "no route %s" % url.path})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = route


def watch_parent():
    """Tests may SIGKILL pard; a worker whose parent is gone must not linger."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    print("echo worker starting, pid %d" % os.getpid(), flush=True)
    print("echo worker stderr check", file=sys.stderr, flush=True)
    if os.environ.get("ECHO_WORKER_LONG_LINE"):
        print("x" * int(os.environ["ECHO_WORKER_LONG_LINE"]), flush=True)
    code = os.environ.get("ECHO_WORKER_EXIT_AT_START")
    if code:
        print("fatal: exiting with %s as asked" % code, file=sys.stderr, flush=True)
        sys.exit(int(code))
    if os.environ.get("ECHO_WORKER_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=watch_parent, daemon=True).start()
    server = Server(os.environ["PAR_WORKER_SOCKET"], Handler)
    print("echo worker listening on %s" % os.environ["PAR_WORKER_SOCKET"], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
