"""Serving speed of the bundled SmolLM2 on this CPU: llama.cpp (GGUF) vs ``transformers serve`` (HF folder).

For each server (one at a time) and each condition -- idle, and with one bounded busy-loop
process keeping another core busy -- it measures, as the median of ``--reps`` requests:

* prefill tokens/s: a prompt of about ``--prompt-tokens`` tokens, ``max_tokens`` 1, divided
  by the request's wall time;
* decode tokens/s: (completion tokens - 1) / (time of the full request - time of the
  prefill-only request) for a reply of up to ``--decode-tokens`` tokens;
* the agent-sized turn: wall seconds for that prompt plus the reply.

Every prompt starts with a fresh nonce so no server can reuse a cached prefix. Greedy
decoding. llama.cpp runs with all CPUs as threads and with ``ablbench serve``'s default (half
of them, at least one); ``transformers serve`` with torch's defaults.

    .venv/bin/python benchmarks/bench_serving.py [--reps 3] [--prompt-tokens 350] [--decode-tokens 128]
        [--threads both|default|all] [--skip-transformers]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from harness.embedded_model import gguf_path, materialize
from harness.prompt import AGENT_SYSTEM_PROMPT
from runners.servers import ModelServer, make_server
from runners.servers.llamacpp import cpu_threads, default_threads

BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"
FILLER = ("The task environment is a Debian container with bash, coreutils, git and python3 installed. "
          "Files live under /app and the verifier reads /app/output when the agent is done. ")


@contextmanager
def busy_core(seconds: float):
    """One process spinning on a core for at most ``seconds`` (killed on exit)."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(seconds)])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def prompt_messages(approx_tokens: int) -> list[dict]:
    """The agent's system prompt plus filler up to about ``approx_tokens`` tokens (4 chars/token)."""
    body = FILLER * max(1, (approx_tokens * 4 - len(AGENT_SYSTEM_PROMPT)) // len(FILLER))
    return [{"role": "system", "content": f"[session {uuid.uuid4().hex}] {AGENT_SYSTEM_PROMPT}"},
            {"role": "user", "content": body + "\nList the files in /app, then count from 1 to 100."}]


def timed(server: ModelServer, messages: list[dict], max_tokens: int) -> tuple[float, dict[str, Any]]:
    """(wall seconds, usage) of one greedy chat completion."""
    body = {"model": server.model_name, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "seed": 0}
    start = time.perf_counter()
    resp = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=900)
    took = time.perf_counter() - start
    resp.raise_for_status()
    return took, resp.json().get("usage") or {}


def measure(server: ModelServer, reps: int, prompt_tokens: int, decode_tokens: int) -> dict[str, float]:
    """Median prefill and decode tokens/s and the turn time over ``reps`` rounds."""
    prefill, decode, turn, n_prompt, n_out = [], [], [], [], []
    timed(server, prompt_messages(prompt_tokens), 4)  # warm-up (allocations, first-call costs)
    for _ in range(reps):
        t_pre, usage = timed(server, prompt_messages(prompt_tokens), 1)
        t_full, usage_full = timed(server, prompt_messages(prompt_tokens), decode_tokens)
        out = int(usage_full.get("completion_tokens") or 0)
        prefill.append(int(usage.get("prompt_tokens") or 0) / t_pre)
        if out > 1 and t_full > t_pre:
            decode.append((out - 1) / (t_full - t_pre))
        turn.append(t_full)
        n_prompt.append(int(usage.get("prompt_tokens") or 0))
        n_out.append(out)
    return {"prefill": statistics.median(prefill), "decode": statistics.median(decode) if decode else float("nan"),
            "turn_s": statistics.median(turn), "prompt_tokens": statistics.median(n_prompt),
            "out_tokens": statistics.median(n_out)}


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (a `timeout`, a kill) stops the servers like Ctrl-C does


def main() -> None:
    """Measure every server in both conditions and print the table."""
    signal.signal(signal.SIGTERM, _interrupt)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=350)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--threads", choices=("both", "default", "all"), default="both",
                    help="llama.cpp thread counts to measure: ablbench's default, all CPUs, or both (all CPUs "
                    "beside a busy core can take many minutes: its threads spin at barriers)")
    args = ap.parse_args()
    console = Console(width=160)
    gguf, folder = gguf_path(), materialize()
    servers: list[tuple[str, dict[str, Any]]] = [
        (f"llama.cpp, {n} thread(s){' (default)' if n == default_threads() else ''}",
         {"backend": "llamacpp", "model": gguf, "threads": n})
        for n in sorted({*({cpu_threads()} if args.threads != "default" else set()),
                         *({default_threads()} if args.threads != "all" else set())}, reverse=True)
    ]
    if not args.skip_transformers:
        servers.append(("transformers serve", {"backend": "transformers", "model": folder}))
    rows = []
    for label, spec in servers:
        opts = {k: v for k, v in spec.items() if k not in {"backend", "model"}}
        with make_server(spec["backend"], spec["model"], **opts) as server:
            for condition in ("idle", "other core busy"):
                load = os.getloadavg()[0]
                console.print(f"[dim]{label}, {condition} (load {load:.1f})...[/]")
                if condition == "idle":
                    res = measure(server, args.reps, args.prompt_tokens, args.decode_tokens)
                else:
                    with busy_core(1800):
                        res = measure(server, args.reps, args.prompt_tokens, args.decode_tokens)
                rows.append((label, condition, load, res))
                console.print(f"  prefill {res['prefill']:.0f} tok/s, decode {res['decode']:.1f} tok/s, "
                              f"turn {res['turn_s']:.2f} s")  # shown now: a long run stopped early keeps these
    table = Table(title=f"bundled SmolLM2-135M: {cpu_threads()} CPUs, median of {args.reps}, greedy")
    for col in ("server", "condition", "load before", "prompt tok", "prefill tok/s", "decode tok/s",
                "reply tok", "turn s"):
        table.add_column(col, justify="left" if col in {"server", "condition"} else "right")
    for label, condition, load, r in rows:
        table.add_row(label, condition, f"{load:.1f}", f"{r['prompt_tokens']:.0f}", f"{r['prefill']:.0f}",
                      f"{r['decode']:.1f}", f"{r['out_tokens']:.0f}", f"{r['turn_s']:.2f}")
    console.print(table)
    console.print(f"models: {gguf} (GGUF, llama.cpp); {Path(folder)} (bf16 HF folder, transformers serve)")


if __name__ == "__main__":
    main()
