"""Capture throughput vs a plain forward pass over the same batches.

    .venv/bin/python benchmarks/bench_capture.py [--model DIR] [--prompts 32] [--batch-size 8] [--repeats 2]

Default model: the bundled SmolLM2-135M-Instruct. Prompts: the built-in shell tasks rendered
with and without the agent system prompt (the real contrast set). Three timings per batch set:

- plain: ``model(input_ids, attention_mask)`` (no hooks, all logits: what a user would run)
- plain_last: the same with ``logits_to_keep=1`` (the capture's own LM-head saving, no hooks)
- capture: ``capture_records`` (hooks on every layer, fp32 gather, fp64 sums, memmap writes),
  once with the shared-prefix KV cache (default) and once without it

Prints prompts/s, tokens/s and overhead = capture time / plain time - 1 (goal: <= 10%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch

    from abliterate.capture import batches, capture_records, pad_right, tokenize
    from abliterate.contrast import build_contrast
    from abliterate.model import load_model
    from abliterate.prompts import builtin_prompts
    from harness.prompt import initial_messages

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--prompts", type=int, default=32, help="prompts per bucket")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    if args.model is None:
        from harness.embedded_model import materialize

        args.model = materialize()
    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    items = builtin_prompts()[: args.prompts]
    refuse, comply = build_contrast(
        lm.tokenizer, refuse_items=items, comply_items=items,
        refuse_messages=lambda p: initial_messages(p, with_system=False),
        comply_messages=lambda p: initial_messages(p, with_system=True), eval_fraction=0.0,
    )
    records = refuse + comply
    ids = tokenize(lm, records)
    n_tokens = sum(len(x) for x in ids)
    groups: list[list[int]] = []  # the same length-sorted batches capture uses, per bucket
    for off, recs in ((0, refuse), (len(refuse), comply)):
        groups += [[off + i for i in b] for b in batches(ids[off:off + len(recs)], args.batch_size)]
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)

    def plain(last_only: bool) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for rows in groups:
                input_ids, mask, _ = pad_right(ids, rows, lm.tokenizer.pad_token_id, lm.device)
                kw = {"logits_to_keep": 1} if last_only else {}
                lm.model(input_ids=input_ids, attention_mask=mask, use_cache=False, **kw)
        sync()
        return time.perf_counter() - t0

    def captured(prefix_cache: bool) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            for name, recs in (("refuse", refuse), ("comply", comply)):
                capture_records(lm, recs, Path(tmp) / f"{name}.npy", batch_size=args.batch_size,
                                prefix_cache=prefix_cache)
            sync()
            return time.perf_counter() - t0

    plain(False)  # warm-up
    runs: dict[str, list[float]] = {"plain": [], "plain_last": [], "capture_noprefix": [], "capture": []}
    for _ in range(args.repeats):
        runs["plain"].append(plain(False))
        runs["plain_last"].append(plain(True))
        runs["capture_noprefix"].append(captured(False))
        runs["capture"].append(captured(True))
    n = len(records)
    print(f"model {args.model} ({lm.architecture}, {lm.n_layers} layers, d {lm.d_model}) on {lm.device}, "
          f"{str(lm.dtype).removeprefix('torch.')}; {n} prompts, {n_tokens} tokens, batch {args.batch_size}, "
          f"median of {args.repeats}")
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, t in med.items():
        print(f"  {k:17s} {t:8.2f} s  {n / t:8.1f} prompts/s  {n_tokens / t:9.0f} tokens/s")
    print(f"overhead of hooks (capture without prefix cache vs plain_last): "
          f"{100 * (med['capture_noprefix'] / med['plain_last'] - 1):+.1f}%")
    print(f"capture (default, shared-prefix cache) vs plain forward: {100 * (med['capture'] / med['plain'] - 1):+.1f}%")


if __name__ == "__main__":
    main()
