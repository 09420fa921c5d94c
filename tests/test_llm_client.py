"""LLMClient against a real HTTP server on 127.0.0.1 that plays an OpenAI-compatible endpoint.

The server answers from a per-test script of (status, JSON body, delay) replies and records
every request body, so retries, classification and the exact request fields are observable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.llm_client import LLMClient, is_context_overflow
from harness.llm_types import ContextOverflowError, LLMError, SamplingParams
from runners.servers import free_port


class ScriptedServer:
    """A real HTTP server whose chat replies follow a script (last entry repeats)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict, float]] = []
        self.models: dict = {"object": "list", "data": []}
        self.chat_bodies: list[dict] = []
        self.model_gets = 0
        self.knocks = 0
        self.models_status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, obj: dict | bytes) -> None:
                # bytes: sent as they are, as a JSON body would be (garbage, truncated bodies)
                data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
                length = len(data)
                if isinstance(obj, bytes) and obj.startswith(b"TRUNC"):
                    data, length = obj[5:], len(obj) + 100  # the connection closes early
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(data)
                if length != len(data):
                    self.close_connection = True

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.chat_bodies.append(body)
                idx = min(len(owner.chat_bodies), len(owner.script)) - 1
                code, reply, delay = owner.script[idx]
                time.sleep(delay)
                # the client may have timed out and hung up
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._send(code, reply)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/health":  # the client's liveness knock (hung or slow?)
                    owner.knocks += 1
                    self._send(200, {})
                    return
                owner.model_gets += 1
                self._send(owner.models_status, owner.models)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


def ok(content: str = "hello", *, message_extra: dict | None = None, usage: dict | None = None,
       finish: str = "stop") -> tuple[int, dict, float]:
    message = {"role": "assistant", "content": content, **(message_extra or {})}
    body = {
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    return (200, body, 0.0)


def err(code: int, message: str, *, style: str = "openai") -> tuple[int, dict, float]:
    if style == "openai":  # vLLM / sglang: {"object": "error", "message": ...} or {"error": {...}}
        return (code, {"error": {"message": message, "type": "BadRequestError", "code": code}}, 0.0)
    if style == "flat":
        return (code, {"object": "error", "message": message, "type": "BadRequestError", "code": code}, 0.0)
    return (code, {"detail": message}, 0.0)  # FastAPI style (transformers serve)


MSGS = [{"role": "user", "content": "hi"}]
PARAMS = SamplingParams(temperature=0.3, top_p=0.9, max_tokens=64, seed=7)


def client(url: str, **kw) -> LLMClient:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 5.0)
    return LLMClient(url, "m", **kw)


def test_retry_then_success_is_logged_and_counted(server, caplog):
    server.script = [err(500, "boom"), err(503, "loading"), ok("fine")]
    c = client(server.url, max_retries=3)
    with caplog.at_level(logging.WARNING, logger="ablbench.llm"):
        result = c.chat(MSGS, PARAMS)
    assert result.content == "fine"
    assert result.retries == 2 and c.total_retries == 2
    assert len(server.chat_bodies) == 3
    retry_lines = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retry_lines) == 2 and "HTTP 500" in retry_lines[0] and "retry 2/3" in retry_lines[1]


def test_retry_budget_exhausted(server):
    server.script = [err(502, "bad gateway")]
    with pytest.raises(LLMError, match=r"after 3 attempt\(s\)") as exc:
        client(server.url, max_retries=2).chat(MSGS, PARAMS)
    assert not isinstance(exc.value, ContextOverflowError)
    assert len(server.chat_bodies) == 3


def test_timeout_is_retried(server):
    server.script = [(200, {}, 1.5), ok("after timeout")]
    result = client(server.url, timeout_s=0.5, max_retries=1).chat(MSGS, PARAMS)
    assert result.content == "after timeout" and result.retries == 1


def test_connection_refused_fails_after_retries():
    seen: list[str] = []
    c = client(f"http://127.0.0.1:{free_port()}", max_retries=2, log=seen.append)
    with pytest.raises(LLMError, match="cannot connect .*Connection refused"):
        c.chat(MSGS, PARAMS)
    assert len(seen) == 2  # the callable log got every retry


def test_client_errors_are_not_retried(server):
    server.script = [err(404, "The model `m` does not exist.")]
    with pytest.raises(LLMError, match="HTTP 404") as exc:
        client(server.url).chat(MSGS, PARAMS)
    assert not isinstance(exc.value, ContextOverflowError)
    assert len(server.chat_bodies) == 1


OVERFLOWS = [
    ("The input (9000 tokens) is longer than the model's context length (8192 tokens).", "flat"),
    ("Requested token count exceeds the model's maximum context length of 8192 tokens. "
     "You requested a total of 9100 tokens: 9000 tokens from the input messages and 100 tokens "
     "for the completion.", "flat"),
    ("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
     "(4000 in the messages, 1000 in the completion).", "openai"),
    ("'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum context "
     "length is 4096 tokens and your request has 39 input tokens.", "openai"),
    ("The decoder prompt (length 9000) is longer than the maximum model length of 8192.", "openai"),
    ("context_length_exceeded", "detail"),
]


@pytest.mark.parametrize(("message", "style"), OVERFLOWS)
def test_context_overflow_is_classified_and_never_retried(server, message, style):
    server.script = [err(400, message, style=style)]
    with pytest.raises(ContextOverflowError):
        client(server.url, max_retries=3).chat(MSGS, PARAMS)
    assert len(server.chat_bodies) == 1


@pytest.mark.parametrize("message", [
    "max_tokens must be at least 1, got 0.",
    "Invalid value for --context-length",
    "Too many requests, please slow down",
    "temperature must be non-negative",
    "Server is pinned to '/models/a'; requested 'b'.",
])
def test_other_400s_are_not_overflow(server, message):
    assert not is_context_overflow(message)
    server.script = [err(400, message)]
    with pytest.raises(LLMError) as exc:
        client(server.url).chat(MSGS, PARAMS)
    assert not isinstance(exc.value, ContextOverflowError)
    assert len(server.chat_bodies) == 1


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_fields(server, field):
    server.script = [ok("answer", message_extra={field: "let me think"})]
    result = client(server.url).chat(MSGS, PARAMS)
    assert result.content == "answer" and result.reasoning == "let me think"


def test_no_reasoning_is_none(server):
    server.script = [ok("plain")]
    assert client(server.url).chat(MSGS, PARAMS).reasoning is None


def test_usage_and_finish_reason(server):
    usage = {"prompt_tokens": 120, "completion_tokens": 64, "total_tokens": 184,
             "completion_tokens_details": {"reasoning_tokens": 40}}
    server.script = [ok("cut", usage=usage, finish="length")]
    result = client(server.url).chat(MSGS, PARAMS)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.reasoning_tokens) == (120, 64, 40)
    assert result.finish_reason == "length" and result.model == "m" and result.latency_s > 0


def test_sglang_style_reasoning_tokens(server):
    usage = {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19, "reasoning_tokens": 6}
    server.script = [ok("x", usage=usage)]
    assert client(server.url).chat(MSGS, PARAMS).usage.reasoning_tokens == 6


def test_explicit_sampling_and_thinking_control(server):
    server.script = [ok()]
    c = client(server.url)
    c.chat(MSGS, PARAMS)
    c.chat(MSGS, SamplingParams(temperature=0.0, top_p=1.0, max_tokens=8, seed=None, enable_thinking=False))
    first, second = server.chat_bodies
    assert {k: first[k] for k in ("model", "temperature", "top_p", "max_tokens", "seed")} == {
        "model": "m", "temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "seed": 7}
    assert "chat_template_kwargs" not in first
    assert second["chat_template_kwargs"] == {"enable_thinking": False}
    assert "seed" not in second and second["max_tokens"] == 8


def test_context_length_from_models_is_cached(server):
    server.models = {"object": "list", "data": [
        {"id": "other", "object": "model", "max_model_len": 1024},
        {"id": "m", "object": "model", "max_model_len": 32768},
    ]}
    c = client(server.url)
    assert c.context_length() == 32768
    assert c.context_length() == 32768
    assert server.model_gets == 1


def test_context_length_unknown(server):
    server.models = {"object": "list", "data": [{"id": "m", "object": "model"}]}
    assert client(server.url).context_length() is None
    dead = client(f"http://127.0.0.1:{free_port()}")
    assert dead.context_length() is None


def test_context_length_when_models_fails(server):
    server.models_status, server.models = 500, {"detail": "Internal Server Error"}  # transformers serve
    c = client(server.url)
    assert c.context_length() is None
    assert c.context_length() is None
    assert server.model_gets == 1  # the server answered: not asked again


# -- issue 27: every transient fault is retried the same way; giving up names the fault ---------
TRANSIENT = {
    "not JSON": (200, b"<html>502 from a proxy</html>", 0.0),
    "no choices": (200, {"id": "x", "object": "chat.completion", "choices": []}, 0.0),
    "429": err(429, "rate limited"),
    "500": err(500, "internal"),
    "truncated": (200, b'TRUNC{"id": "x", "choices": [{"index": 0, "mess', 0.0),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_faults_are_retried_then_succeed(server, fault):
    server.script = [TRANSIENT[fault], ok("after the fault")]
    result = client(server.url, max_retries=2).chat(MSGS, PARAMS)
    assert result.content == "after the fault" and result.retries == 1
    assert len(server.chat_bodies) == 2


@pytest.mark.parametrize(("fault", "named"), [("not JSON", "not a chat completion"), ("no choices", "no choices"),
                                              ("429", "HTTP 429"), ("truncated", "cannot connect")])
def test_giving_up_names_the_fault_in_one_line(server, fault, named):
    server.script = [TRANSIENT[fault]]
    with pytest.raises(LLMError) as exc:
        client(server.url, max_retries=1).chat(MSGS, PARAMS)
    line = str(exc.value)
    assert "\n" not in line and "failed after 2 attempt(s)" in line and named in line


def test_a_slow_server_is_waited_for(server):
    """Unanswered past the stall bound, but the server still answers HTTP: slow, not hung."""
    server.script = [(200, ok("slow but fine")[1], 1.2)]
    started = time.monotonic()
    result = client(server.url, stall_s=0.3, max_retries=0).chat(MSGS, PARAMS)
    assert result.content == "slow but fine" and result.retries == 0
    assert server.knocks >= 2  # it knocked every 0.3 s and got answers
    assert time.monotonic() - started >= 1.2


def test_a_hung_server_is_told_apart_within_the_stall_bound():
    """A listening socket that never answers (a stopped or deadlocked server): hung after ~stall_s, not timeout_s."""
    import socket

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # the kernel completes connections; nobody ever reads or answers
    try:
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(LLMError, match=r"server hung: no reply for \d+ s.*--llm-stall-s"):
            client(url, stall_s=0.5, timeout_s=60.0, max_retries=1).chat(MSGS, PARAMS)
        assert time.monotonic() - started < 10  # two stalls and knocks, not the 60 s request timeout
    finally:
        hung.close()


# -- issue 26/27: a server ablbench started that died is named, with its signal and log ---------
class _HttpProcess:
    """A real local process server (python's http.server) under ablbench's process supervisor:
    it stands in for llama.cpp here (tests/test_faults.py kills a real llama.cpp server)."""

    @staticmethod
    def make(tmp_path):
        import sys

        from runners.servers.process import LocalProcessServer

        class Server(LocalProcessServer):
            backend = "http.server"

            def command(self) -> list[str]:
                return [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"]

            def _check_model_path(self) -> None:
                pass

            def _expected_identity(self, models: dict) -> dict:
                return {}

        return Server(tmp_path, name="stand-in", log_path=tmp_path / "server.log")


@pytest.mark.parametrize("sig", ["SIGSEGV", "SIGKILL"])
def test_a_dead_server_this_machine_started_is_named_at_once(tmp_path, sig):
    import os
    import signal

    import httpx

    from harness.llm_types import ServerDiedError
    from runners.servers import watch

    server = _HttpProcess.make(tmp_path).start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(server.base_url, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the stand-in server did not start"
                time.sleep(0.1)
        assert watch.death_line(server.base_url) is None  # alive: nothing to say
        os.kill(server.pid, getattr(signal, sig))
        started = time.monotonic()
        with pytest.raises(ServerDiedError) as exc:
            client(server.base_url, max_retries=3, backoff_s=1.0).chat(MSGS, PARAMS)
        line = str(exc.value)
        assert f"the http.server server 'stand-in' at {server.base_url} (pid {server.pid}) was killed by {sig}" in line
        assert f"its log: {tmp_path / 'server.log'}" in line and "--resume" in line and "\n" not in line
        assert time.monotonic() - started < 5  # no blind retries (they would wait 1 + 2 + 4 s)
    finally:
        server.stop()
    assert (tmp_path / "server.log").exists()  # a server that died keeps its log


def test_a_server_stopped_on_purpose_leaves_no_record(tmp_path):
    from runners.servers import watch

    server = _HttpProcess.make(tmp_path).start()
    port = server.port
    assert watch.read_record(port)["pid"] == server.pid
    server.stop()
    assert watch.read_record(port) is None and watch.death_line(f"http://127.0.0.1:{port}") is None
