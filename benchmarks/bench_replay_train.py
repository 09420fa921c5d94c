"""Replay every bundled training task: wall time, passes and the training examples it yields.

Runs ``ablbench run --agent replay --tasks tasks/train -n N`` (real containers; images are
built on the first run and cached after) into a temporary folder, then reads every
trial's trace.jsonl. Printed: the wall time (with the load average before and after), the
trials passed, the turns of the passed trials (one assistant reply each = one SFT example)
and their spread per task.

    .venv/bin/python benchmarks/bench_replay_train.py [-n 2] [--include GLOB ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ablbench.paths import TRAIN_TASKS


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2, help="trials at once")
    ap.add_argument("--include", action="append", default=[], help="only tasks matching this glob")
    ap.add_argument("--keep", type=Path, help="write the run here (default: a temporary folder, removed)")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    out = a.keep or root / "run"
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "run", "--agent", "replay", "--tasks", str(TRAIN_TASKS),
           "-n", str(a.n), "--out", str(out), "--quiet", *[x for g in a.include for x in ("--include", g)]]
    print(f"load average before: {_load()}")
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    print(f"load average after:  {_load()}")
    if res.returncode != 0:
        print(res.stdout[-3000:], res.stderr[-3000:], sep="\n")
        return 1
    rows = list(csv.DictReader((out / "master_summary.csv").open()))
    passed = [r for r in rows if r["outcome"] == "passed"]
    # one assistant reply per turn: each is one SFT example (with the conversation before it as prompt)
    n_turns = [sum(1 for line in (out / r["task"] / r["attempt"] / "trace.jsonl").read_text().splitlines()
                   if '"turn"' in line and "turn" in json.loads(line)) for r in passed]
    print(f"replay of {len(rows)} training tasks, -n {a.n}: {wall:.1f} s wall ({wall / max(1, len(rows)):.1f} s/task)")
    print(f"passed: {len(passed)}/{len(rows)}; not passed: {[(r['task'], r['outcome']) for r in rows if r not in passed]}")
    if n_turns:
        print(f"training examples (assistant turns of passed replays): {sum(n_turns)}; per task "
              f"min {min(n_turns)} / median {statistics.median(n_turns)} / max {max(n_turns)}")
    if a.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
