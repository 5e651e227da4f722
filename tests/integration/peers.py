"""Real peers for the package tests: s3rver (npm), a scriptable HTTP(S) origin with a test
CA made by the openssl CLI, and a fake ECS credentials endpoint. All on loopback, all on
ports the kernel hands out, all stopped by the test's cleanup."""
import http.server
import io
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import zipfile

from pardtest import SOURCE_DIR, free_port, poll

PEERS_DIR = os.path.join(SOURCE_DIR, "tests", "peers")
S3_KEY, S3_SECRET = "S3RVER", "S3RVER"


def zip_dir(src, dest, extra=None):
    """Packs a package directory into an .apkg (zip) with agent.yaml at its root."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for root, _, files in os.walk(src):
            for f in sorted(files):
                full = os.path.join(root, f)
                z.write(full, os.path.relpath(full, src))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return dest


def make_apkg(test, name="pkg-agent", version="1.0.0", filler=0, extra=None):
    """A valid package archive; filler adds that many incompressible bytes (cache sizes)."""
    d = tempfile.mkdtemp(prefix="apkg-")
    test.addCleanup(shutil.rmtree, d, True)
    files = {"agent.yaml": "name: %s\nversion: %s\nruntime: native\nrest: {}\n" % (name, version)}
    if filler:
        files["data/filler.bin"] = os.urandom(filler)
    files.update(extra or {})
    path = os.path.join(d, "%s-%s.apkg" % (name, version))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in files.items():
            z.writestr(n, data)
    return path


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


class S3rver:
    """npm s3rver on a free port with one bucket. vhost access works for
    <bucket>.s3.localhost:<port> (curl resolves *.localhost to loopback itself)."""

    def __init__(self, test, bucket="mybucket"):
        self.bucket = bucket
        self.dir = tempfile.mkdtemp(prefix="s3rver-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.port = free_port()
        node = shutil.which("node") or "/usr/bin/node"
        script = os.path.join(PEERS_DIR, "node_modules", "s3rver", "bin", "s3rver.js")
        test.assertTrue(os.path.exists(script), "s3rver missing: run scripts/install-deps.sh")
        self.log = open(os.path.join(self.dir, "s3rver.log"), "w+")
        self.proc = subprocess.Popen([node, script, "-d", os.path.join(self.dir, "data"), "-a", "127.0.0.1",
                                      "-p", str(self.port), "--service-endpoint", "localhost",
                                      "--configure-bucket", bucket],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        test.addCleanup(self.stop)
        poll(self._up, 15, what="s3rver listening")

    def _up(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def client(self):
        import botocore.session
        s = botocore.session.get_session()
        return s.create_client("s3", region_name="us-east-1", endpoint_url=self.endpoint,
                               aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)

    def put(self, key, path):
        self.client().put_object(Bucket=self.bucket, Key=key, Body=read_bytes(path))

    def request_count(self):
        """Requests s3rver has answered so far: it logs one "info:" line per request."""
        with open(self.log.name, errors="replace") as f:
            return sum(1 for l in f if "info" in l)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


class TestCA:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, by the openssl CLI."""

    def __init__(self, test, name="par-test-ca"):
        self.dir = tempfile.mkdtemp(prefix="ca-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        j = lambda f: os.path.join(self.dir, f)
        self.ca, self.cert, self.key = j("ca.pem"), j("server.pem"), j("server.key")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=%s" % name, "-keyout", j("ca.key"), "-out", self.ca)
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", self.key, "-out", j("server.csr"))
        with open(j("ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("openssl", "x509", "-req", "-in", j("server.csr"), "-CA", self.ca, "-CAkey", j("ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", j("ext.cnf"), "-out", self.cert)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.server.origin._serve(self)

    do_HEAD = do_GET


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Origin:
    """A scriptable HTTP(S) origin. routes: path -> list of responses, consumed in order (the
    last one repeats). A response is a dict: status, body (bytes), headers, length ("auto",
    None for no Content-Length, or a number to lie), chunk_delay, redirect."""

    def __init__(self, test, ca=None):
        self.routes = {}
        self.hits = {}
        self.requests = []
        self.lock = threading.Lock()
        self.server = _ThreadingServer(("127.0.0.1", 0), _Handler)
        self.server.origin = self
        self.port = self.server.server_address[1]
        self.scheme = "http"
        if ca:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(ca.cert, ca.key)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        test.addCleanup(self.stop)

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def route(self, path, *responses):
        with self.lock:
            self.routes[path] = list(responses)
            self.hits[path] = 0

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)

    def _serve(self, h):
        path = h.path.split("?", 1)[0]
        with self.lock:
            self.requests.append({"method": h.command, "path": h.path, "headers": dict(h.headers.items())})
            seq = self.routes.get(path)
            n = self.hits.get(path, 0)
            self.hits[path] = n + 1
        if not seq:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        r = seq[min(n, len(seq) - 1)]
        body = r.get("body", b"")
        if callable(body):
            body = body()
        h.send_response(r.get("status", 200))
        for k, v in r.get("headers", {}).items():
            h.send_header(k, v)
        length = r.get("length", "auto")
        gen = r.get("stream")
        if length == "auto" and gen is None:
            h.send_header("Content-Length", str(len(body)))
        elif length not in ("auto", None):
            h.send_header("Content-Length", str(length))
        if gen is not None or length is None:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if h.command == "HEAD":
            return
        try:
            if gen is not None:
                for chunk in gen():
                    h.wfile.write(chunk)
            else:
                h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def credentials_endpoint(test, key="ASIAFAKEKEY", secret="fakesecret", token="FAKESESSIONTOKEN", auth="Bearer-xyz"):
    """A fake ECS container credentials endpoint (the FULL_URI form, with a token)."""
    o = Origin(test)
    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    o.route("/creds", {"status": 200, "headers": {"Content-Type": "application/json"},
                       "body": json.dumps({"AccessKeyId": key, "SecretAccessKey": secret, "Token": token,
                                           "Expiration": exp}).encode()})
    o.auth = auth
    return o
