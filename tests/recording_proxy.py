"""A real HTTP proxy on 127.0.0.1 that records what a model server receives.

1. Every request is forwarded to ``upstream`` as it came (method, path, body) and its reply is
   returned whole (a streamed reply arrives in one piece: fine for checks, not for timings).
2. Each request's path and JSON body are appended to ``requests`` in arrival order.
3. ``schema_delay_s`` holds back every request carrying a ``response_format`` by that many
   seconds: it stands for a server whose grammar engine is slow to compile the schema.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


class RecordingProxy:
    """``with RecordingProxy(upstream) as proxy:`` serves ``proxy.base_url`` until the block ends."""

    def __init__(self, upstream: str, schema_delay_s: float = 0.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.schema_delay_s = schema_delay_s
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def bodies(self, path_end: str = "/chat/completions") -> list[dict[str, Any]]:
        """The JSON bodies of the requests whose path ends with ``path_end``."""
        return [r["body"] for r in self.requests if r["path"].endswith(path_end) and r["body"] is not None]

    def __enter__(self) -> RecordingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                proxy.requests.append({"method": self.command, "path": self.path, "body": body})
                if isinstance(body, dict) and "response_format" in body:
                    time.sleep(proxy.schema_delay_s)
                try:
                    resp = httpx.request(self.command, proxy.upstream + self.path, content=raw, timeout=900,
                                         headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
                except httpx.HTTPError:
                    self.close_connection = True  # the upstream is gone: so is this connection
                    return
                self.send_response(resp.status_code)
                self.send_header("Content-Type", resp.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
