"""Time of the behaviour section of ``ablbench analyze`` at the user's scale.

Writes three synthetic results folders of 89 tasks x 1 attempt (the user's sweep), each trial
with a ``trace.jsonl`` of ``--turns`` turns (replies, 2 kB observations, commands, some
refusals and parse failures), then times :func:`harness.analysis.analyze` (which reads every
trace: metrics, refusal table, Wilcoxon and task-level permutation tests for the three pairs)
and the markdown rendering. Printed: trace bytes, seconds for the analysis, for the behaviour
section alone, and for the markdown.

    .venv/bin/python benchmarks/bench_behaviour.py [--tasks 89] [--turns 20]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from ablbench.results import write_json_atomic, write_summary
from harness.analysis import analyze, load_run
from harness.analysis.behaviour import analyze_behaviour
from harness.analysis.report import to_markdown

REFUSAL = "I'm sorry, but as an AI I cannot access your terminal."


def write_run(folder: Path, name: str, tasks: int, turns: int, refuse: float, seed: int) -> int:
    rng = random.Random(seed)
    results, size = [], 0
    for i in range(tasks):
        task = f"task-{i:03d}"
        d = folder / task / "1"
        d.mkdir(parents=True)
        lines = [json.dumps({"t": 0.0, "event": "start"})]
        n = rng.randint(2, turns)
        for k in range(1, n + 1):
            bad = rng.random() < refuse
            cmd = [] if bad else [{"keystrokes": f"ls -la /app/{rng.randint(0, 5)}\n", "duration": 1.0}]
            lines.append(json.dumps({
                "t": float(10 * k), "turn": k, "reply": REFUSAL if bad else json.dumps({"commands": cmd}),
                "finish_reason": "length" if rng.random() < 0.05 else "stop",
                "usage": {"prompt_tokens": 900 * k, "completion_tokens": 120},
                "parse": {"status": "parse_fail" if bad else "ok", "task_complete": k == n},
                "commands": cmd, "observation": "x" * 2000, "timings": {"terminal_s": 1.0, "harness_s": 0.01}}))
        text = "\n".join(lines) + "\n"
        (d / "trace.jsonl").write_text(text)
        size += len(text)
        result = {"task": task, "attempt": 1, "finished": True, "outcome": "failed", "reward": 0.0}
        write_json_atomic(d / "result.json", result)
        results.append(result)
    write_summary(folder, results)
    write_json_atomic(folder / "run.json", {"name": name})
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=89)
    ap.add_argument("--turns", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = sum(write_run(root / n, n, args.tasks, args.turns, r, s)
                   for s, (n, r) in enumerate((("base", 0.08), ("sft", 0.06), ("abl", 0.01))))
        runs = [load_run(root / n) for n in ("base", "sft", "abl")]
        t = time.perf_counter()
        res = analyze(runs)
        t_all = time.perf_counter() - t
        t = time.perf_counter()
        analyze_behaviour(runs)
        t_beh = time.perf_counter() - t
        t = time.perf_counter()
        md = to_markdown(res)
        t_md = time.perf_counter() - t
    print(f"3 runs x {args.tasks} tasks, up to {args.turns} turns: {size / 1e6:.1f} MB of traces")
    print(f"analyze (pass counts + behaviour): {t_all:.2f} s; behaviour alone: {t_beh:.2f} s; "
          f"markdown: {t_md:.3f} s ({len(md.splitlines())} lines, "
          f"{len(res['behaviour']['refusals'])} refusal rows)")


if __name__ == "__main__":
    main()
