#!/usr/bin/python3
"""Independent SigV4 check: a capturing HTTP server plus a botocore-based verifier.

s3rver does not verify V4 signatures (guides/dependencies.md §3.3), so tests that need to know
pard signed a request correctly capture it here and recompute the signature with botocore's
S3SigV4Auth (Debian's python3-botocore; run with /usr/bin/python3).

As a module:
    srv = CapturingServer(body=b"...", status=200); port = srv.start()
    ...  # point pard's AWS_ENDPOINT_URL_S3 at http://127.0.0.1:port
    assert all(verify(r, "AKID", "SECRET", "us-east-1") for r in srv.requests)
    srv.stop()

From the command line:
    sigv4_check.py serve --body TEXT [--status N] [--log FILE]
        prints {"port": N} on stdout, appends one JSON line per request to FILE, and runs
        until stdin closes or SIGTERM
    sigv4_check.py verify --log FILE --access-key K --secret S --region R [--service s3]
        exit 0 when the log holds at least one request and every one verifies, else 1
    sigv4_check.py selftest
        exit 0 when a correct signature verifies and a wrong secret, a tampered path and a
        tampered signed header do not
"""
import argparse
import hmac
import json
import re
import signal
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<sig>[0-9a-f]{64})$")


class CapturingServer:
    """Records each request as {"method", "path" (raw, with query), "headers": [[k, v]…]}
    and answers status with body."""

    def __init__(self, body=b"", status=200, host="127.0.0.1", log_path=None):
        self.body = body if isinstance(body, bytes) else body.encode()
        self.status = status
        self.host = host
        self.log_path = log_path
        self.requests = []
        self._lock = threading.Lock()
        self._srv = None

    def _record(self, req):
        with self._lock:
            self.requests.append(req)
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(req) + "\n")

    def start(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _handle(self):
                outer._record({"method": self.command, "path": self.path,
                               "headers": [[k, v] for k, v in self.headers.items()]})
                body = outer.body if self.command != "HEAD" else b""
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        self._srv = ThreadingHTTPServer((self.host, 0), Handler)
        self._srv.daemon_threads = True
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self._srv.server_address[1]

    def stop(self):
        if self._srv:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None


def _headers_map(request):
    """Lower-cased header names; repeated headers joined with ',' as SigV4 does. The headers
    may be a list of [name, value] pairs (CapturingServer) or a dict (other capturers)."""
    headers = request["headers"]
    out = {}
    for k, v in (headers.items() if isinstance(headers, dict) else headers):
        k = k.lower()
        out[k] = out[k] + "," + v if k in out else v
    return out


def verify(request, access_key, secret, region, service="s3"):
    """True when request's Authorization header is the SigV4 signature botocore computes for
    its method, path, query and signed headers at its X-Amz-Date with these credentials."""
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = _headers_map(request)
    m = AUTH_RE.match(headers.get("authorization", ""))
    amz_date = headers.get("x-amz-date", "")
    if not m or m["akid"] != access_key or m["region"] != region or m["service"] != service:
        return False
    if amz_date[:8] != m["date"]:
        return False
    signed = m["signed"].split(";")
    if "host" not in signed or any(n not in headers for n in signed):
        return False
    aws_req = AWSRequest(method=request["method"], url="http://" + headers["host"] +
                         request["path"], headers={n: headers[n] for n in signed})
    aws_req.context["timestamp"] = amz_date
    cls = S3SigV4Auth if service == "s3" else SigV4Auth
    signer = cls(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(aws_req)
    expected = signer.signature(signer.string_to_sign(aws_req, canonical), aws_req)
    return hmac.compare_digest(expected, m["sig"])


def _load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _selftest():
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    srv = CapturingServer(body=b"hello")
    port = srv.start()
    url = "http://127.0.0.1:%d/my-bucket/dir/a%%20b%%2Bc~%%281%%29.apkg" % port
    req = AWSRequest(method="GET", url=url,
                     headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD",
                              "x-amz-security-token": "TOKEN"})
    S3SigV4Auth(Credentials("AKIDSELF", "SECRETSELF", "TOKEN"), "s3", "eu-west-1").add_auth(req)
    prepared = req.prepare()
    with urllib.request.urlopen(urllib.request.Request(
            prepared.url, headers=dict(prepared.headers))) as resp:
        assert resp.read() == b"hello"
    srv.stop()
    got = srv.requests[0]
    checks = [
        ("correct signature", verify(got, "AKIDSELF", "SECRETSELF", "eu-west-1"), True),
        ("wrong secret", verify(got, "AKIDSELF", "WRONG", "eu-west-1"), False),
        ("wrong region", verify(got, "AKIDSELF", "SECRETSELF", "us-east-1"), False),
        ("tampered path", verify(dict(got, path=got["path"] + "x"), "AKIDSELF",
                                 "SECRETSELF", "eu-west-1"), False),
        ("headers as dict", verify(dict(got, headers=dict(got["headers"])), "AKIDSELF",
                                   "SECRETSELF", "eu-west-1"), True),
        ("tampered token", verify(dict(got, headers=[
            [k, "OTHER" if k.lower() == "x-amz-security-token" else v]
            for k, v in got["headers"]]), "AKIDSELF", "SECRETSELF", "eu-west-1"), False),
    ]
    ok = True
    for name, result, want in checks:
        print("%-18s %s" % (name, "ok" if result == want else "FAILED"))
        ok = ok and result == want
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--body", default="")
    s.add_argument("--status", type=int, default=200)
    s.add_argument("--log")
    v = sub.add_parser("verify")
    v.add_argument("--log", required=True)
    v.add_argument("--access-key", required=True)
    v.add_argument("--secret", required=True)
    v.add_argument("--region", required=True)
    v.add_argument("--service", default="s3")
    sub.add_parser("selftest")
    a = ap.parse_args()

    if a.cmd == "selftest":
        return _selftest()
    if a.cmd == "verify":
        reqs = _load(a.log)
        ok = bool(reqs) and all(verify(r, a.access_key, a.secret, a.region, a.service)
                                for r in reqs)
        print("%d request(s): %s" % (len(reqs), "signatures match" if ok else "MISMATCH"))
        return 0 if ok else 1
    srv = CapturingServer(body=a.body, status=a.status, log_path=a.log)
    print(json.dumps({"port": srv.start()}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdin.read()
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
