#!/usr/bin/python3
"""A verifying front for the local DynamoDB in tests.

Listens on 127.0.0.1:PORT, recomputes the AWS Signature Version 4 of every
request with botocore (an implementation independent of the shop's), and
refuses a request whose signature does not match, as AWS does (400,
InvalidSignatureException); requests that pass are forwarded to the upstream
(dynalite) and its answer relayed. One line per request goes to stdout:
"verified <target>" or "refused <reason>", so a test can count them.

    sigv4_front.py PORT UPSTREAM_PORT ACCESS_KEY_ID:SECRET [ACCESS_KEY_ID:SECRET ...]

Run with Debian's python3 (package python3-botocore).
"""
import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PORT = int(sys.argv[1])
UPSTREAM = int(sys.argv[2])
SECRETS = dict(pair.split(":", 1) for pair in sys.argv[3:])
LOG_LOCK = threading.Lock()


def log(line):
    with LOG_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def parse_authorization(value):
    """'AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex'."""
    algorithm, _, rest = value.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        raise ValueError("algorithm %r" % algorithm)
    fields = {}
    for part in rest.split(","):
        key, _, val = part.strip().partition("=")
        fields[key] = val
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise ValueError("credential scope %r" % fields["Credential"])
    return scope, fields["SignedHeaders"].split(";"), fields["Signature"]


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def refuse(self, kind, message):
        log("refused %s: %s" % (kind, message))
        body = json.dumps({"__type": "com.amazon.coral.service#" + kind, "message": message}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            scope, signed, signature = parse_authorization(self.headers.get("Authorization", ""))
        except (KeyError, ValueError) as e:
            return self.refuse("IncompleteSignatureException", "bad Authorization header: %s" % e)
        key_id, date, region, service = scope[0], scope[1], scope[2], scope[3]
        if key_id not in SECRETS:
            return self.refuse("UnrecognizedClientException", "unknown access key %s" % key_id)
        amz_date = self.headers.get("X-Amz-Date", "")
        if not amz_date.startswith(date):
            return self.refuse("InvalidSignatureException", "X-Amz-Date %r outside the scope %s" % (amz_date, date))
        missing = [h for h in ("host", "x-amz-date") if h not in signed]
        if missing:
            return self.refuse("InvalidSignatureException", "unsigned headers: %s" % ",".join(missing))
        headers = {}
        for name in signed:
            values = self.headers.get_all(name)
            if values is None:
                return self.refuse("InvalidSignatureException", "signed header %s is absent" % name)
            headers[name] = ",".join(v.strip() for v in values)
        request = AWSRequest(method="POST", url="http://%s%s" % (headers["host"], self.path), data=body,
                             headers=headers)
        request.context["timestamp"] = amz_date
        auth = SigV4Auth(Credentials(key_id, SECRETS[key_id], headers.get("x-amz-security-token")), service, region)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        if expected != signature:
            return self.refuse("InvalidSignatureException",
                               "signature mismatch for %s (got %s, expected %s)" % (
                                   self.headers.get("X-Amz-Target", "?"), signature, expected))
        log("verified %s" % self.headers.get("X-Amz-Target", "?"))
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        try:
            forward = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            upstream.request("POST", self.path, body=body, headers=forward)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError as e:
            log("upstream failed: %s" % e)
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        finally:
            upstream.close()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: a client opening eight
    # connections at once had one SYN dropped and its connect time out.
    request_queue_size = 128


if __name__ == "__main__":
    server = Server(("127.0.0.1", PORT), Front)
    log("listening on %d" % PORT)
    server.serve_forever()
