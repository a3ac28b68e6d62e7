"""A webhook receiver run on a sandbox host by the notification tests.

POST /ok records the request and answers 200; /slow records it, then waits
SLOW seconds before answering; /fail answers 500. Each request is one JSON
line in LOG: path, headers, body, and when it arrived (epoch seconds).
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG, SLOW = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(LOG, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers), "at": time.time(),
                                "body": body.decode()}) + "\n")
        if self.path.startswith("/slow"):
            time.sleep(SLOW)
        code = 500 if self.path.startswith("/fail") else 200
        self.send_response(code)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
