"""A misbehaving OpenAI-compatible model server, run as its own process on 127.0.0.1 (tests/test_faults.py).

It stands for a model server that answers wrongly: the replies follow a per-conversation script
(``--turns``: what the n-th reply of a conversation is, the last entry repeating) and a global
fault pattern (``--fault``: every second request, counted over the whole server, answers with it).
Being a real process, it can be stopped (SIGSTOP: a hung server) and killed like a real one.

    python tests/fault_server.py PORT [--turns solve,done] [--fault nonjson|500|429|500+429] [--stop-at N]

``--stop-at T``: on the first request for reply T of a conversation (counted from 0) the server
stops itself with SIGSTOP, the whole process, before answering: a hung server, until someone
sends SIGCONT.

``--turns`` may also be ``TAG=kinds;TAG2=kinds``: a conversation whose first user message
contains ``[TAG]`` follows that script (several scenarios served at once, one per task).

Reply kinds: ``solve`` (writes /app/hello.txt for the hello-world task), ``solveok`` (writes ok to
/app/out.txt, the tests' tasks), ``done`` (claims
completion), ``ls`` (runs ls), ``prose`` (no JSON: a parse failure), ``e500`` (HTTP 500).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "fault-model"


def action(commands: list[str], done: bool) -> str:
    """A Terminus reply (the agent's JSON action)."""
    return json.dumps({"analysis": "Working on it.", "plan": "Run the commands.",
                       "commands": [{"keystrokes": c, "duration": 0.3} for c in commands], "task_complete": done})


REPLIES = {
    "solve": action(["echo 'Hello, world!' > /app/hello.txt\n"], False),
    "solveok": action(["echo ok > /app/out.txt\n"], False),
    "done": action([], True),
    "ls": action(["ls /app\n"], False),
    "prose": "I would rather describe what to do than write JSON.",
}


def main() -> None:
    """Serve until killed."""
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--turns", default="solve,done")
    ap.add_argument("--fault", default="")
    ap.add_argument("--stop-at", type=int, default=-1)
    args = ap.parse_args()
    scripts = {tag: kinds.split(",") for tag, _, kinds in (p.partition("=") for p in args.turns.split(";")) if kinds}
    default = [] if scripts else args.turns.split(",")
    faults = itertools.cycle(args.fault.split("+")) if args.fault else None
    counter = itertools.count()
    lock = threading.Lock()
    stopped: list[bool] = []
    continued = threading.Event()
    signal.signal(signal.SIGCONT, lambda *_: continued.set())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, json.dumps({"object": "list", "data": [
                    {"id": MODEL, "object": "model", "owned_by": "test", "max_model_len": 32768}]}).encode())
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with lock:
                n = next(counter)
                fault = next(faults) if faults is not None and n % 2 == 0 else None
            if fault == "nonjson":
                return self._send(200, b"<html><body>upstream went away</body></html>")
            if fault in ("500", "429"):
                return self._send(int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode())
            messages = body.get("messages", [])
            turn = sum(m.get("role") == "assistant" for m in messages)
            first = next((str(m.get("content", "")) for m in messages if m.get("role") == "user"), "")
            turns = next((k for tag, k in scripts.items() if f"[{tag}]" in first), default) or ["done"]
            kind = turns[min(turn, len(turns) - 1)]
            with lock:
                stop = turn == args.stop_at and not any(stopped)
                stopped.append(stop)
            if stop:
                os.kill(os.getpid(), signal.SIGSTOP)
                # the stop can take effect a moment after kill() returns (seen here on a cold start):
                # never answer this request before someone sends SIGCONT
                continued.wait()
            if kind == "e500":
                return self._send(500, b'{"error": {"message": "injected 500 (script)"}}')
            content = REPLIES[kind]
            prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4
            completion = max(1, len(content) // 4)
            self._send(200, json.dumps({
                "id": f"c{n}", "object": "chat.completion", "created": int(time.time()), "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}}).encode())
            return None

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
