#!/usr/bin/python3
"""Canned HTTP(S) responses for the fetch unit tests (tests/unit/test_fetch.c).

Listens on 127.0.0.1 (ephemeral ports), prints one JSON line
{"http": PORT, "https": PORT, "ca": PATH} when ready, and exits when stdin closes (the test
runner died or finished). Routes (GET):
  /ok?n=N               200, Content-Length, N bytes of (i % 251)
  /longreason           200 with a 300-byte reason phrase and a 100-byte body
  /nocl?n=N             200, no Content-Length (close-delimited), N bytes in 16 KiB chunks
  /bigcl                200, Content-Length: 10 GiB, then 5 s of silence before any byte
  /flaky?key=K&fail=F&code=C&n=N   C for the first F requests of K, then like /ok
  /status?code=C        C with an S3-style XML error body
  /redir?hops=H&n=N     302 chains H times, then /ok?n=N
  /tohttp               302 to http://127.0.0.1:HTTPPORT/ok?n=10 (https→http)
  /slow                 headers, then one byte every 100 ms for 10 s
  /creds?exp=S&bad=1    ECS credentials JSON expiring in S seconds; Token echoes the
                        Authorization header it got; bad=1 answers non-JSON
"""
import datetime
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

COUNTS = {}
COUNTS_LOCK = threading.Lock()
HTTP_PORT = [0]


def body_bytes(n):
    pattern = bytes(i % 251 for i in range(251))
    reps, rest = divmod(n, 251)
    return pattern * reps + pattern[:rest]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the test output clean
        pass

    def _q(self):
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _send(self, code, body=b"", ctype="application/octet-stream", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code):
        names = {403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError",
                 503: "SlowDown", 429: "SlowDown"}
        xml = ("<?xml version=\"1.0\"?><Error><Code>%s</Code><Message>m</Message></Error>"
               % names.get(code, "Other")).encode()
        self._send(code, xml, "application/xml")

    def do_GET(self):
        route = urlsplit(self.path).path
        q = self._q()
        try:
            getattr(self, "r_" + route.strip("/"), self.r_missing)(q)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def r_missing(self, q):
        self._error(404)

    def r_ok(self, q):
        self._send(200, body_bytes(int(q.get("n", "1000"))))

    def r_longreason(self, q):
        body = body_bytes(100)
        self.send_response(200, "O" * 300)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def r_nocl(self, q):
        n = int(q.get("n", "1000"))
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        data = body_bytes(n)
        for i in range(0, n, 16384):
            self.wfile.write(data[i:i + 16384])
        self.close_connection = True

    def r_bigcl(self, q):
        self.send_response(200)
        self.send_header("Content-Length", str(10 * 1024 ** 3))
        self.end_headers()
        self.wfile.flush()
        time.sleep(5)
        self.wfile.write(b"x" * 65536)
        self.close_connection = True

    def r_flaky(self, q):
        key = q.get("key", "")
        with COUNTS_LOCK:
            COUNTS[key] = COUNTS.get(key, 0) + 1
            seen = COUNTS[key]
        if seen <= int(q.get("fail", "0")):
            self._error(int(q.get("code", "503")))
        else:
            self.r_ok(q)

    def r_status(self, q):
        self._error(int(q.get("code", "500")))

    def r_redir(self, q):
        hops = int(q.get("hops", "0"))
        n = q.get("n", "1000")
        loc = "/ok?n=%s" % n if hops <= 0 else "/redir?hops=%d&n=%s" % (hops - 1, n)
        self._send(302, b"", headers=[("Location", loc)])

    def r_tohttp(self, q):
        self._send(302, b"", headers=[("Location", "http://127.0.0.1:%d/ok?n=10" % HTTP_PORT[0])])

    def r_slow(self, q):
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.1)

    def r_creds(self, q):
        if q.get("bad"):
            self._send(200, b"<html>not json</html>", "text/html")
            return
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=int(q.get("exp", "3600")))
        doc = {
            "AccessKeyId": "AKIDCONTAINER",
            "SecretAccessKey": "SECRETCONTAINER",
            "Token": "tok:" + (self.headers.get("Authorization") or ""),
            "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self._send(200, json.dumps(doc).encode(), "application/json")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients hang up on purpose
        pass


def make_ca(d):
    """A throwaway CA and a 127.0.0.1/localhost server certificate it signed."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=par-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return os.path.join(d, "ca.pem"), os.path.join(d, "srv.pem"), os.path.join(d, "srv.key")


def serve(srv):
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()


def main():
    tmp = tempfile.TemporaryDirectory(prefix="par-fetch-srv-")
    http = Server(("127.0.0.1", 0), Handler)
    HTTP_PORT[0] = http.server_address[1]
    ca, cert, key = make_ca(tmp.name)
    https = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    https.socket = ctx.wrap_socket(https.socket, server_side=True)
    serve(http)
    serve(https)
    print(json.dumps({"http": HTTP_PORT[0], "https": https.server_address[1], "ca": ca}),
          flush=True)
    sys.stdin.read()  # until the test closes our stdin
    tmp.cleanup()
    os._exit(0)


if __name__ == "__main__":
    main()
