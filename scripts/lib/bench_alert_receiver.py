"""`scripts/bench alert`'s receiver: one local HTTP server for both sides of the run.

geoctl's webhook channel posts to /geoctl, Alertmanager's webhook to /alertmanager. Each
request is answered 200 at once and logged as one JSON line {"ms": arrival (Unix ms), "path",
"body"}, so the bench can load the log into PostgreSQL and join it with the incidents and
results. Threads, so one slow write never holds up the other side's requests.
Usage: bench_alert_receiver.py PORT LOG_FILE
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG_FILE = int(sys.argv[1]), sys.argv[2]
LOG = open(LOG_FILE, "a", buffering=1)
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        # The arrival, before anything else: the figure is time to the receiver, not through it.
        ms = time.time_ns() // 1_000_000
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {"unparsed": body.decode("utf-8", "replace")}
        line = json.dumps({"ms": ms, "path": self.path, "body": parsed}, separators=(",", ":"))
        with LOCK:
            LOG.write(line + "\n")

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
