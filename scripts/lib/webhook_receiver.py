"""The quickstart's webhook receiver: what a receiver of geoctl's webhook channel does.

It checks `X-Geoctl-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the
channel's signing key, refuses a signature older than five minutes (a replay), and appends
one line per notification to a log. Usage: webhook_receiver.py PORT KEY_FILE LOG_FILE
"""
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, KEY_FILE, LOG_FILE = int(sys.argv[1]), sys.argv[2], sys.argv[3]
KEY = open(KEY_FILE, "rb").read().rstrip(b"\n")


def verified(header, body):
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or abs(time.time() - int(parts["t"])) > 300:
        return False
    expected = hmac.new(KEY, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verified(self.headers.get("X-Geoctl-Signature", ""), body):
            self.send_response(401)
            self.end_headers()
            return
        notice = json.loads(body)
        with open(LOG_FILE, "a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {notice['event']['kind']}: {notice['title']}\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
