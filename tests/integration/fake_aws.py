"""Fake AWS control-plane endpoints for the verify-isolation tests: ECS, Elastic Load Balancing,
Cloud Map, DynamoDB and IAM on one HTTP server of ours. Every call must be SigV4-signed for the
service it belongs to (botocore recomputes the signature, body included); the fake then denies
it as AWS does, or answers success for the actions the test allows."""
import hmac
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sigv4_check import AUTH_RE

# action -> how AWS speaks it. JSON protocols are picked by X-Amz-Target, query protocols by
# Action and Version in the form body; "region" None means the caller's region.
ACTIONS = {
    "ecs:ListClusters": {
        "service": "ecs", "target": "AmazonEC2ContainerServiceV20141113.ListClusters",
        "content_type": "application/x-amz-json-1.1", "ok": {"clusterArns": []},
        "error_type": "AccessDeniedException"},
    "servicediscovery:ListNamespaces": {
        "service": "servicediscovery", "target": "Route53AutoNaming_v20170314.ListNamespaces",
        "content_type": "application/x-amz-json-1.1", "ok": {"Namespaces": []},
        # Some JSON services also (or only) name the error in a header.
        "error_type": "AccessDeniedException", "error_header": True},
    "dynamodb:ListTables": {
        "service": "dynamodb", "target": "DynamoDB_20120810.ListTables",
        "content_type": "application/x-amz-json-1.0", "ok": {"TableNames": []},
        # DynamoDB names its errors with a namespace before '#'.
        "error_type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException"},
    "elasticloadbalancing:DescribeLoadBalancers": {
        "service": "elasticloadbalancing", "query": ("DescribeLoadBalancers", "2015-12-01"),
        "content_type": "application/x-www-form-urlencoded"},
    "iam:ListRoles": {
        "service": "iam", "query": ("ListRoles", "2010-05-08"), "region": "us-east-1",
        "content_type": "application/x-www-form-urlencoded"},
}


def verify_sigv4(method, path, headers, body, access_key, secret, region, service):
    """'' when headers carry a valid SigV4 signature (payload hash included) by access_key for
    region/service, else what is wrong with it. headers: lower-case name -> value."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    m = AUTH_RE.match(headers.get("authorization", ""))
    if not m:
        return "no SigV4 Authorization header"
    if m["service"] != service:
        return "credential scope names service %r, expected %r" % (m["service"], service)
    if m["region"] != region:
        return "credential scope names region %r, expected %r" % (m["region"], region)
    if m["akid"] != access_key:
        return "signed by another access key"
    amz_date = headers.get("x-amz-date", "")
    if amz_date[:8] != m["date"]:
        return "X-Amz-Date does not match the credential scope date"
    signed = m["signed"].split(";")
    if "host" not in signed or any(n not in headers for n in signed):
        return "a signed header is missing"
    req = AWSRequest(method=method, url="http://" + headers["host"] + path, data=body,
                     headers={n: headers[n] for n in signed})
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    return "" if hmac.compare_digest(expected, m["sig"]) else "signature mismatch"


class FakeAws:
    """One loopback (or given host) endpoint for all five services, as AWS_ENDPOINT_URL or any
    AWS_ENDPOINT_URL_<SERVICE>. calls: one dict per request {"action", "service" (of the
    credential scope), "problem" ('' when well signed), "answer" ("allowed", "denied",
    "rejected")}. allow: actions answered with success."""

    def __init__(self, test, access_key, secret, token=None, region="us-east-1", allow=(),
                 host="127.0.0.1"):
        self.access_key, self.secret, self.token, self.region = access_key, secret, token, region
        self.allowed = set(allow)
        self.calls = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, ctype, out, extra = fake._answer(self.command, self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self):
                fake._record({"action": None, "service": None, "problem": "not a POST",
                              "answer": "rejected"})
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_PUT = do_DELETE = do_GET

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        test.addCleanup(self.stop)

    @property
    def endpoint(self):
        return "http://%s:%d" % (self.host, self.port)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _record(self, call):
        with self.lock:
            self.calls.append(call)

    def calls_for(self, action):
        with self.lock:
            return [c for c in self.calls if c["action"] == action]

    @staticmethod
    def _action_of(headers, body):
        target = headers.get("X-Amz-Target")
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        for name, a in ACTIONS.items():
            if target and a.get("target") == target:
                return name
            q = a.get("query")
            if not target and q and form.get("Action") == [q[0]] and form.get("Version") == [q[1]]:
                return name
        return None

    def _answer(self, method, path, raw_headers, body):
        headers = {}
        for k, v in raw_headers.items():
            k = k.lower()
            headers[k] = headers[k] + "," + v if k in headers else v
        action = self._action_of(raw_headers, body)
        m = AUTH_RE.match(headers.get("authorization", ""))
        call = {"action": action, "service": m["service"] if m else None, "problem": "",
                "answer": "rejected"}
        if not action:
            call["problem"] = "unknown operation"
            self._record(call)
            return 400, "application/x-amz-json-1.1", json.dumps(
                {"__type": "UnknownOperationException"}).encode(), {}
        a = ACTIONS[action]
        region = a.get("region") or self.region
        problem = verify_sigv4(method, path, headers, body, self.access_key, self.secret, region,
                               a["service"])
        if not problem and not headers.get("content-type", "").startswith(a["content_type"]):
            problem = "Content-Type %r, expected %r" % (headers.get("content-type"), a["content_type"])
        if not problem and self.token and headers.get("x-amz-security-token") != self.token:
            problem = "x-amz-security-token missing or wrong"
        call["problem"] = problem
        if problem:
            self._record(call)
            return self._error(a, 403 if "query" in a else 400, "InvalidSignatureException"
                               if "query" not in a else "SignatureDoesNotMatch", problem)
        if action in self.allowed:
            call["answer"] = "allowed"
            self._record(call)
            if "query" in a:
                op = a["query"][0]
                return 200, "text/xml", ("<%sResponse><%sResult/></%sResponse>" % (op, op, op)).encode(), {}
            return 200, a["content_type"], json.dumps(a["ok"]).encode(), {}
        call["answer"] = "denied"
        self._record(call)
        msg = "User: arn:aws:sts::123456789012:assumed-role/par-task/test is not authorized to perform: %s" % action
        return self._error(a, 403 if "query" in a else 400, a.get("error_type", "AccessDenied"), msg)

    @staticmethod
    def _error(a, status, code, message):
        if "query" in a:
            xml = ("<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message>"
                   "</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId>"
                   "</ErrorResponse>") % (code, message)
            return status, "text/xml", xml.encode(), {}
        extra = {}
        if a.get("error_header"):
            extra["x-amzn-ErrorType"] = "%s:http://internal.amazon.com/coral/com.amazon.coral.service/" % code
        return status, a["content_type"], json.dumps({"__type": code, "message": message}).encode(), extra
