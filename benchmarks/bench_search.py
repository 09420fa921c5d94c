"""Search throughput: trials per minute on this machine, and heretic's budget extrapolated to a GPU.

    .venv/bin/python benchmarks/bench_search.py [--model DIR] [--trials 3] [--prompts 16]
        [--gen-tokens 100] [--format-tokens 128] [--batch-size 16]

Default model: the bundled SmolLM2-135M-Instruct. The run folder (contrast of the built-in shell
tasks without / with the agent system prompt, capture, directions) is built once in a temp
folder; then ``--trials`` search trials run with the given budgets (defaults = the search's own
defaults: 100 refusal tokens, 128 format tokens; up to ``--prompts`` eval prompts per bucket)
and the demo budget. Prints seconds per trial, trials per minute and the time for heretic's
default budget (200 trials) here.

GPU extrapolation (no GPU was available when this was written; the assumptions are printed):
a trial is dominated by greedy decoding: ``gen_tokens + format_tokens`` decode steps (each
bucket's prompts in one batch, which fits easily on one GPU), plus the prefill and the KL
pass (about 5 decode steps' worth). For a 4B dense model in bf16, one batched decode step
costs between the weight-read floor (8 GB / 3.35 TB/s = 2.4 ms on an H100) and what eager
Hugging Face ``generate`` achieves (about 25-40 ms per step for a 36-layer model at small
batch: per-layer kernel launches and Python overhead dominate). TPE's own time (< 0.1 s a
trial at 200 trials) is left out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HERETIC_TRIALS = 200
#: seconds per batched decode step of a 4B bf16 model on one GPU: (floor, HF eager typical, HF eager slow)
STEP_S = (0.0024, 0.025, 0.040)


def build_run(model: Path, root: Path, batch_size: int):
    """Contrast + capture + directions for ``model`` in ``root`` (the search's inputs)."""
    from abliterate.capture import capture
    from abliterate.contrast import build_contrast, write_contrast
    from abliterate.directions import write_directions
    from abliterate.model import load_model
    from abliterate.prompts import builtin_prompts
    from harness.abliteration import agent_builders

    lm = load_model(model)
    rb, cb = agent_builders()
    items = builtin_prompts()
    refuse, comply = build_contrast(lm.tokenizer, refuse_items=items, comply_items=items, refuse_messages=rb,
                                    comply_messages=cb, eval_fraction=0.2)
    write_contrast(root, refuse, comply)
    capture(lm, refuse, comply, root / "activations", batch_size=batch_size, save_activations=True,
            show_progress=False)
    write_directions(root / "activations", root / "vectors")
    return lm


def time_trials(model: Path, run: Path, lm, *, trials: int, prompts: int, gen: int, fmt: int, bs: int,
                tag: str) -> float:
    """Seconds per trial (mean over the trials, base measurement excluded)."""
    from abliterate.search.run import SearchOptions, run_search
    from harness.abliteration import agent_format_ok

    times: list[float] = []

    def log(msg: str) -> None:
        if msg.startswith("trial "):
            times.append(float(msg.rsplit("(", 1)[1].split(" s)")[0]))
        print(f"  [{tag}] {msg}", flush=True)

    run_search(model, run, SearchOptions(trials=trials, prompts=prompts, gen_tokens=gen, format_tokens=fmt,
                                         batch_size=bs, fresh=True), format_check=agent_format_ok, lm=lm, log=log)
    return sum(times) / len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--gen-tokens", type=int, default=100)
    ap.add_argument("--format-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--run", type=Path, default=None,
                    help="reuse this run folder's contrast and vectors (e.g. a pipeline run); its search/ is replaced")
    args = ap.parse_args()
    os.environ.setdefault("ABLBENCH_TORCH_THREADS", "1")
    if args.model is None:
        from harness.embedded_model import materialize

        args.model = materialize()
    from abliterate.search.run import DEMO_SEARCH

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        t0 = time.perf_counter()
        if args.run:
            import shutil

            from abliterate.model import load_model

            for part in ("contrast_refuse.jsonl", "contrast_comply.jsonl", "vectors"):
                src = args.run / part
                (shutil.copytree if src.is_dir() else shutil.copyfile)(src, run / part)
            lm = load_model(args.model)
        else:
            lm = build_run(args.model, run, args.batch_size)
        print(f"run folder ready in {time.perf_counter() - t0:.0f} s ({lm.architecture}, {lm.n_layers} layers)")
        full = time_trials(args.model, run, lm, trials=args.trials, prompts=args.prompts, gen=args.gen_tokens,
                           fmt=args.format_tokens, bs=args.batch_size, tag="default budget")
        demo = time_trials(args.model, run, lm, trials=min(args.trials, DEMO_SEARCH.trials),
                           prompts=DEMO_SEARCH.prompts, gen=DEMO_SEARCH.gen_tokens,
                           fmt=DEMO_SEARCH.format_tokens, bs=args.batch_size, tag="demo budget")
    print(f"\n{args.model.name} on this machine ({os.cpu_count()} CPUs, "
          f"{os.environ['ABLBENCH_TORCH_THREADS']} torch thread(s), load {os.getloadavg()[0]:.1f}):")
    print(f"  default budget (up to {args.prompts}+{args.prompts} eval prompts, {args.gen_tokens}+{args.format_tokens} tokens): "
          f"{full:.1f} s/trial = {60 / full:.2f} trials/min; {HERETIC_TRIALS} trials = {HERETIC_TRIALS * full / 3600:.1f} h")
    print(f"  demo budget ({DEMO_SEARCH.prompts}+{DEMO_SEARCH.prompts} prompts, {DEMO_SEARCH.gen_tokens}+"
          f"{DEMO_SEARCH.format_tokens} tokens): {demo:.1f} s/trial = {60 / demo:.2f} trials/min; "
          f"{DEMO_SEARCH.trials} trials = {DEMO_SEARCH.trials * demo / 60:.1f} min")
    steps = args.gen_tokens + args.format_tokens + 5
    print(f"\nExtrapolation: {HERETIC_TRIALS} trials on a 4B dense bf16 model, one GPU, {steps} decode steps a trial "
          f"(each bucket's {args.prompts} prompts in one batch):")
    for label, s in zip(("weight-read floor", "HF generate, typical", "HF generate, slow"), STEP_S, strict=True):
        per = steps * s
        print(f"  {label:22s} {s * 1000:5.1f} ms/step -> {per:5.1f} s/trial, {60 / per:6.1f} trials/min, "
              f"{HERETIC_TRIALS} trials in {HERETIC_TRIALS * per / 60:5.1f} min")


if __name__ == "__main__":
    main()
