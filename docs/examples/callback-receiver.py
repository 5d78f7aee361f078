#!/usr/bin/env python3
"""A merchant's endpoint for lijian's status reports: verifies each report's
signature with the platform public key, answers SUCCESS, and prints each report
once (reports may arrive more than once: de-duplicate on notifyId).

usage: python3 callback-receiver.py --public-key platform-public.pem [--addr 127.0.0.1:8070]

Needs the `cryptography` package (pip install cryptography). The verifying part
is the example of docs/callbacks.md, word for word.
"""
import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# verify-example:start
import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def load_platform_key(path):
    """The key `lijian platform public-key` prints."""
    with open(path, "rb") as f:
        return serialization.load_pem_public_key(f.read())


def verify(platform_key, headers, raw_body: bytes) -> bool:
    """headers: the request headers as your web framework hands them over (its
    own headers object or a plain dict). Header names are case-insensitive and
    arrive in any case (HTTP/2 and many clients send them in lower case), so
    they are looked up in lower case. raw_body: the body bytes exactly as
    received, before any JSON parsing."""
    h = {name.lower(): value for name, value in headers.items()}
    try:
        string = ("businessId=%s&nonce=%s&signType=%s&timestamp=%s" % (
            h["businessid"], h["nonce"], h["signtype"], h["timestamp"])).encode() + raw_body
        platform_key.verify(base64.b64decode(h["sign"]), string, padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:  # a missing header, bad Base64 or a wrong signature
        return False
# verify-example:end


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:8070", help="host:port to listen on (port 0: any free one)")
    parser.add_argument("--public-key", required=True, help="the platform public key (PEM)")
    args = parser.parse_args()
    platform_key = load_platform_key(args.public_key)
    seen, lock = set(), threading.Lock()

    class Reports(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            # A plain dict, names exactly as sent: what many frameworks hand over.
            if not verify(platform_key, dict(self.headers), body):
                self.answer(401, b"bad signature")
                return
            report = json.loads(body)
            with lock:  # one whole line per report, even with reports in parallel
                if report["notifyId"] not in seen:
                    seen.add(report["notifyId"])
                    print("verified report %s: order %s status %s" % (
                        report["notifyId"], report["orderCode"], report["status"]), flush=True)
            self.answer(200, b"SUCCESS")

        def answer(self, status, text):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *_):
            pass  # one line per report is printed above

    host, port = args.addr.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Reports)
    print("listening on http://%s:%d" % server.server_address[:2], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
