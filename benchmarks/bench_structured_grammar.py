"""Grammar cost of the ``--structured`` action schema against ``--max-tokens``: llama.cpp and xgrammar.

For each ``--max-tokens`` (default 256, 1024, 4096, 16384, 32768) and each schema -- ``old``
(the bounds before issue 26: analysis 25 %, plan 15 %, keystrokes 40 % of 3 characters per
token, capped at 2000/1000/4000 characters) and ``new`` (``harness.action_schema.bounds_for``)
-- it prints:

* llama.cpp grammar: the size of the GBNF that llama-cpp-python's server derives from the
  schema, and the time llama.cpp takes to compile it (``llama_sampler_init_grammar`` on the
  bundled GGUF's vocabulary, median of ``--reps``); "optionals" counts its nested ``(...)?``,
  one per character of each ``maxLength`` (llama.cpp refuses a string of more than 1000). Each schema is compiled in a child process,
  so a crash is recorded (its signal) instead of ending the script; "parse failed" is llama.cpp's
  ``failed to parse grammar`` (the server then crashes on the NULL sampler).
* llama.cpp server: the time to the first token of the ``--structured`` preflight's streamed
  request with the schema (median of ``--reps``) and without any (the baseline). A schema that
  failed to compile is sent once to a throwaway server, which records how that server ends.
  And the tokens/s of an agent-sized turn (the task prompt, ``--turn-tokens`` of reply) with
  the schema and without: the grammar's cost per generated token.
* xgrammar (the grammar engine of sglang and vLLM), where it is installed: ``compile_json_schema``
  time and the time of the first token mask, on the bundled model's tokenizer.

Load matters on a shared machine: the script prints ``uptime`` before and after.

    .venv/bin/python benchmarks/bench_structured_grammar.py [--max-tokens 256,1024,4096,16384,32768]
        [--reps 3] [--turn-tokens 128] [--skip-server] [--skip-xgrammar] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.action_schema import ActionBounds, action_schema, bounds_for, response_format
from harness.embedded_model import gguf_path

console = Console(width=170)


def old_bounds(max_tokens: int) -> ActionBounds:
    """The rule before issue 26 (bounds in proportion to the reply budget), kept here for comparison."""
    chars = 3 * max(1, max_tokens)
    commands = int(max(1, min(8, chars // 1000)))

    def clamp(v: float, lo: int, hi: int) -> int:
        return int(max(lo, min(hi, v)))

    return ActionBounds(analysis=clamp(chars * 0.25, 64, 2000), plan=clamp(chars * 0.15, 64, 1000),
                        keystrokes=clamp(chars * 0.4 / min(commands, 2), 32, 4000), commands=commands)


SCHEMAS = {"old": old_bounds, "new": bounds_for}


# -- llama.cpp grammar compile, in a child process ------------------------------------------------------
def compile_child(schema_file: str, reps: int) -> None:
    """(child) Compile the schema's GBNF ``reps`` times on the bundled vocabulary; print one JSON line."""
    import llama_cpp
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(Path(schema_file).read_text())
    llm = llama_cpp.Llama(model_path=str(gguf_path()), vocab_only=True, verbose=False)
    vocab = llm._model.vocab  # noqa: SLF001 - the vocabulary handle the server's sampler uses
    times, ok = [], True
    for _ in range(reps):
        started = time.perf_counter()
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        times.append(time.perf_counter() - started)
        if not sampler:
            ok = False
            break
        llama_cpp.llama_sampler_free(sampler)
    print(json.dumps({"ok": ok, "compile_s": statistics.median(times), "gbnf_bytes": len(gbnf),
                      "optionals": gbnf.count(")?")}))


def llamacpp_compile(schema: dict[str, Any], reps: int) -> dict[str, Any]:
    """The child's measurement of ``schema``, or how the child ended."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(schema, fh)
    try:
        res = subprocess.run([sys.executable, __file__, "--compile-child", fh.name, "--reps", str(reps)],
                             capture_output=True, text=True, timeout=900)
    finally:
        Path(fh.name).unlink()
    if res.returncode < 0:
        return {"ok": False, "crash": f"killed by signal {-res.returncode}"}
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode or not lines:
        return {"ok": False, "crash": f"exit {res.returncode}: {res.stderr.strip()[-200:]}"}
    return json.loads(lines[-1])


# -- llama.cpp server: time to the first token ---------------------------------------------------------
def server_ttft(base_url: str, model: str, schema: dict[str, Any] | None, reps: int) -> float:
    """Median seconds to the first token of the preflight's request (``schema`` None: no schema)."""
    from harness.structured_check import probe

    rf = response_format(schema, "json_object") if schema is not None else None
    return statistics.median(probe(base_url, model, rf, 600).ttft_s for _ in range(reps))


def server_decode(base_url: str, model: str, schema: dict[str, Any] | None, reps: int, tokens: int) -> float:
    """Median tokens/s of an agent turn (the task prompt, up to ``tokens``; the prompt is cached after
    the first request, so this is mostly decoding under the grammar)."""
    import httpx

    from harness.prompt import initial_messages

    body: dict[str, Any] = {"model": model, "max_tokens": tokens, "temperature": 0,
                            "messages": initial_messages("Create a directory named /app/output.", "root@box:/app# ")}
    if schema is not None:
        body["response_format"] = response_format(schema, "json_object")
    rates = []
    for _ in range(reps):
        started = time.monotonic()
        resp = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=900)
        resp.raise_for_status()
        rates.append(resp.json()["usage"]["completion_tokens"] / (time.monotonic() - started))
    return statistics.median(rates)


def crashing_server(schema: dict[str, Any], threads: int) -> str:
    """Send ``schema`` to a throwaway llama.cpp server; how that server ends."""
    import httpx

    from harness.structured_check import probe
    from runners.servers import make_server

    with make_server("llamacpp", gguf_path(), name="bench-crash", threads=threads) as server:
        try:
            reply = probe(server.base_url, server.model_name, response_format(schema, "json_object"), 600)
            outcome = f"answered ({reply.content[:30]!r})"
        except httpx.HTTPError as exc:
            outcome = f"request failed ({type(exc).__name__})"
        time.sleep(1)
        status = server.exit_status()
        return f"{outcome}; server {status or 'still alive'}"


# -- xgrammar ------------------------------------------------------------------------------------------
def xgrammar_compiler() -> Any:
    """A GrammarCompiler on the bundled model's tokenizer (read from its GGUF), or None without xgrammar."""
    try:
        import xgrammar as xgr
    except ImportError:
        return None
    from transformers import AutoTokenizer

    path = gguf_path()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    info = xgr.TokenizerInfo.from_huggingface(tok)
    return xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)


def xgrammar_cost(compiler: Any, schema: dict[str, Any], reps: int) -> tuple[float, float]:
    """Median seconds of compile_json_schema and of the first token mask."""
    import xgrammar as xgr

    compiles, masks = [], []
    text = json.dumps(schema)
    for _ in range(reps):
        started = time.perf_counter()
        compiled = compiler.compile_json_schema(text, any_whitespace=False, strict_mode=True)
        compiles.append(time.perf_counter() - started)
        matcher = xgr.GrammarMatcher(compiled)
        bitmask = xgr.allocate_token_bitmask(1, compiled.tokenizer_info.vocab_size)
        started = time.perf_counter()
        matcher.fill_next_token_bitmask(bitmask)
        masks.append(time.perf_counter() - started)
    return statistics.median(compiles), statistics.median(masks)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", default="256,1024,4096,16384,32768")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp server threads")
    ap.add_argument("--turn-tokens", type=int, default=128, help="reply budget of the decode measurement")
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--skip-xgrammar", action="store_true")
    ap.add_argument("--compile-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.compile_child:
        compile_child(args.compile_child, args.reps)
        return
    budgets = [int(x) for x in args.max_tokens.split(",")]
    console.print(f"before: {_uptime()}")
    cases = [(name, mt, rule(mt)) for name in SCHEMAS for mt in budgets for rule in [SCHEMAS[name]]]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for name, mt, bounds in cases:
        rows[(name, mt)] = {"bounds": bounds, **llamacpp_compile(action_schema(bounds), args.reps)}

    crash_note = None
    if not args.skip_server:
        from runners.servers import make_server

        with make_server("llamacpp", gguf_path(), name="bench-grammar", threads=args.threads) as server:
            plain = server_ttft(server.base_url, server.model_name, None, args.reps)
            plain_rate = server_decode(server.base_url, server.model_name, None, args.reps, args.turn_tokens)
            console.print(f"llama.cpp server, no schema: first token after {plain:.3f} s, {plain_rate:.1f} tokens/s")
            for (_name, _mt), row in rows.items():
                if row["ok"]:
                    schema = action_schema(row["bounds"])
                    row["ttft_s"] = server_ttft(server.base_url, server.model_name, schema, args.reps)
                    row["rate"] = server_decode(server.base_url, server.model_name, schema, args.reps,
                                                args.turn_tokens)
        failing = next((key for key, row in rows.items() if not row["ok"]), None)
        if failing:
            crash_note = f"{failing[0]} schema at --max-tokens {failing[1]}: " + crashing_server(
                action_schema(rows[failing]["bounds"]), args.threads)

    compiler = None if args.skip_xgrammar else xgrammar_compiler()
    if compiler is not None:
        for row in rows.values():
            row["xgr_compile_s"], row["xgr_mask_s"] = xgrammar_cost(compiler, action_schema(row["bounds"]), args.reps)

    table = Table(title="--structured action schema: grammar cost against --max-tokens")
    for col in ("schema", "max-tokens", "bounds a/p/k×n", "GBNF KB / optionals", "llama.cpp compile",
                "llama.cpp first token", "llama.cpp tokens/s", "xgrammar compile", "xgrammar 1st mask"):
        table.add_column(col, justify="right")
    for (name, mt), row in rows.items():
        b = row["bounds"]
        compiled = f"{row['compile_s'] * 1000:.1f} ms" if row["ok"] else (row.get("crash") or "parse failed")
        table.add_row(
            name, str(mt), f"{b.analysis}/{b.plan}/{b.keystrokes}×{b.commands}", f"{row.get('gbnf_bytes', 0) / 1000:.0f} / {row.get('optionals', '-')}",
            compiled, f"{row['ttft_s']:.3f} s" if "ttft_s" in row else "-",
            f"{row['rate']:.1f}" if "rate" in row else "-",
            f"{row['xgr_compile_s'] * 1000:.1f} ms" if "xgr_compile_s" in row else "-",
            f"{row['xgr_mask_s'] * 1000:.2f} ms" if "xgr_mask_s" in row else "-",
        )
    console.print(table)
    if not args.skip_server:
        console.print(f"llama.cpp without a schema: first token after {plain:.3f} s, {plain_rate:.1f} tokens/s")
    if crash_note:
        console.print(f"a schema that failed to compile, sent to a server: {crash_note}")
    if compiler is None and not args.skip_xgrammar:
        console.print("xgrammar is not installed: pip install --no-deps xgrammar apache-tvm-ffi")
    console.print(f"after: {_uptime()}")


if __name__ == "__main__":
    main()
