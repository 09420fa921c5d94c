#!/bin/bash
set -euo pipefail
cat > /app/kv_server.py <<'PY'
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

STORE = {}
LOCK = threading.Lock()
LIMIT = 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body=b"", ctype="application/octet-stream"):
        self.send_response(code)
        if code != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if code != 204:
            self.wfile.write(body)

    def route(self):
        parts = urlsplit(self.path)
        if parts.path == "/kv":
            return None, parse_qs(parts.query)
        if parts.path.startswith("/kv/"):
            return unquote(parts.path[4:]), None
        return False, None

    def do_GET(self):
        if urlsplit(self.path).path == "/health":
            return self.reply(200, b"ok", "text/plain")
        key, query = self.route()
        if key is None:
            prefix = query.get("prefix", [""])[0]
            with LOCK:
                keys = sorted(k for k in STORE if k.startswith(prefix))
            return self.reply(200, json.dumps({"keys": keys}).encode(), "application/json")
        if not key:
            return self.reply(404 if key is False else 400)
        with LOCK:
            value = STORE.get(key)
        self.reply(404) if value is None else self.reply(200, value)

    def do_PUT(self):
        key, _ = self.route()
        length = int(self.headers.get("Content-Length") or 0)
        if key is False or key is None:
            return self.reply(404)
        if length > LIMIT:
            while length > 0:  # drain the body so the client can read our answer
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    break
                length -= len(chunk)
            return self.reply(413)
        body = self.rfile.read(length)
        if not key:
            return self.reply(400)
        with LOCK:
            created = key not in STORE
            STORE[key] = body
        self.reply(201 if created else 200)

    def do_DELETE(self):
        key, _ = self.route()
        if key is False or key is None:
            return self.reply(404)
        if not key:
            return self.reply(400)
        with LOCK:
            found = STORE.pop(key, None) is not None
        self.reply(204 if found else 404)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


Server(("127.0.0.1", 8080), Handler).serve_forever()
PY
nohup setsid python3 /app/kv_server.py > /app/kv_server.log 2>&1 < /dev/null &
for _ in $(seq 50); do curl -sf http://127.0.0.1:8080/health >/dev/null && exit 0; sleep 0.2; done
echo "server did not start" >&2; exit 1
