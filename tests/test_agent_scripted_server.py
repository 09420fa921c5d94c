"""A scripted OpenAI-compatible chat server (real HTTP on 127.0.0.1) for agent tests and benchmarks.

It stands in for a model server: it answers ``/v1/models`` and ``/v1/chat/completions`` the
way sglang/vLLM do, replaying a fixed list of replies and recording every request with its
arrival time. A reply is a string (the content) or a dict with ``content``,
``reasoning_content``, ``finish_reason``, or ``status`` + ``error`` for an HTTP error.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | dict[str, Any] | Callable[[dict], "str | dict[str, Any]"]


class ScriptedServer:
    """Serve ``replies`` in order (the last one repeats when the script runs out)."""

    def __init__(self, replies: list[Reply], *, model: str = "scripted", max_model_len: int | None = 32768,
                 delay_s: float = 0.0) -> None:
        self.replies = list(replies)
        self.model = model
        self.max_model_len = max_model_len
        self.delay_s = delay_s
        self.requests: list[dict] = []  # {"body", "arrived", "answered"}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.rstrip("/") == "/v1/models":
                    entry = {"id": outer.model, "object": "model", "owned_by": "test"}
                    if outer.max_model_len:
                        entry["max_model_len"] = outer.max_model_len
                    self._send(200, {"object": "list", "data": [entry]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                arrived = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer._lock:
                    index = len(outer.requests)
                    record = {"body": body, "arrived": arrived, "answered": None}
                    outer.requests.append(record)
                    reply = outer.replies[min(index, len(outer.replies) - 1)] if outer.replies else ""
                if callable(reply):
                    reply = reply(body)
                if isinstance(reply, str):
                    reply = {"content": reply}
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if "status" in reply:
                    record["answered"] = time.monotonic()
                    self._send(int(reply["status"]), {"error": {"message": reply.get("error", "error")}})
                    return
                message = {"role": "assistant", "content": reply.get("content", "")}
                if reply.get("reasoning_content"):
                    message["reasoning_content"] = reply["reasoning_content"]
                prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
                payload = {
                    "id": f"chatcmpl-{index}", "object": "chat.completion", "created": int(time.time()),
                    "model": outer.model,
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": reply.get("finish_reason", "stop")}],
                    "usage": {"prompt_tokens": prompt_chars // 4,
                              "completion_tokens": max(1, len(message["content"]) // 4),
                              "total_tokens": prompt_chars // 4 + max(1, len(message["content"]) // 4)},
                }
                record["answered"] = time.monotonic()
                self._send(200, payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="scripted-llm")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def test_scripted_server_speaks_the_openai_api():
    from harness.llm_client import LLMClient
    from harness.llm_types import SamplingParams

    with ScriptedServer(["one", {"content": "two", "reasoning_content": "hmm", "finish_reason": "length"}],
                        max_model_len=4096) as srv:
        client = LLMClient(srv.base_url, "scripted", max_retries=0)
        assert client.context_length() == 4096
        first = client.chat([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=5))
        second = client.chat([{"role": "user", "content": "again"}], SamplingParams(max_tokens=5))
        assert (first.content, first.finish_reason) == ("one", "stop")
        assert (second.content, second.reasoning, second.finish_reason) == ("two", "hmm", "length")
        assert [r["body"]["max_tokens"] for r in srv.requests] == [5, 5]
