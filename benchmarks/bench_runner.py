"""Runner throughput and overhead: N trivial tasks with the oracle agent at parallelism 1, 2, 4.

Prints, per parallelism: wall time, trials per minute, speed-up and parallel efficiency
(speed-up / parallelism), and the runner's own overhead per trial split by phase (image
lookup, container start, oracle copy + exec, verifier set-up (empty /logs/verifier, copy
tests), verifier launch + run of a trivial test.sh, result collection, container removal).
The tasks do no work, so every second measured is the runner's.

    .venv/bin/python benchmarks/bench_runner.py [--tasks 8] [--parallel 1,2,4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import docker
from rich.console import Console
from rich.table import Table

from ablbench.paths import BASE_IMAGE
from harness.agents.simple import OracleAgent
from harness.tasks import discover_tasks
from runners.images import ImageOptions, ImageResolver
from runners.scheduler import RunConfig, Scheduler
from runners.trial import TrialConfig

TEST_SH = """#!/bin/bash
if [ "$(cat /app/out.txt 2>/dev/null)" = "ok" ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt
"""


def write_tasks(root: Path, n: int) -> None:
    """``n`` trivial TB2 tasks built FROM the local base image."""
    for i in range(n):
        folder = root / f"bench-{i:02d}"
        for sub in ("environment", "tests", "solution"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "environment" / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nWORKDIR /app\n")
        (folder / "instruction.md").write_text("Write ok to /app/out.txt.\n")
        (folder / "tests" / "test.sh").write_text(TEST_SH)
        (folder / "solution" / "solve.sh").write_text("#!/bin/bash\necho ok > /app/out.txt\n")
        (folder / "task.toml").write_text(
            'version = "1.0"\n[agent]\ntimeout_sec = 120\n[verifier]\ntimeout_sec = 60\n'
            '[environment]\ncpus = 1\nmemory = "512M"\nallow_internet = false\n'
        )


def main() -> None:
    """Run the benchmark and print its tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--parallel", default="1,2,4")
    args = ap.parse_args()
    levels = [int(x) for x in args.parallel.split(",")]
    console = Console()
    client = docker.from_env(timeout=600, max_pool_size=20)
    with tempfile.TemporaryDirectory(prefix="ablbench-bench-") as tmp:
        root = Path(tmp)
        write_tasks(root / "tasks", args.tasks)
        specs = discover_tasks(root / "tasks")
        resolver = ImageResolver(client, ImageOptions())
        t = time.monotonic()
        for spec in specs:
            resolver.resolve(spec)
        console.print(
            f"{len(specs)} task images built/cached in {time.monotonic() - t:.1f}s "
            f"(docker engine: {client.info().get('NCPU')} CPUs)"
        )
        rows = []
        phases: dict[int, dict[str, list[float]]] = {}
        for p in levels:
            out = root / f"out-n{p}"
            tc = TrialConfig(run_id=f"bench-n{p}", out_dir=out)
            sched = Scheduler(
                client,
                specs,
                OracleAgent,
                resolver,
                tc,
                RunConfig(parallel=p, show_progress=False),
                console=Console(quiet=True),
            )
            t = time.monotonic()
            summary = sched.run()
            wall = time.monotonic() - t
            bad = [r for r in summary.results.values() if r["outcome"] != "passed"]
            if bad:
                raise SystemExit(f"unexpected outcomes at -n {p}: {[(r['task'], r['outcome']) for r in bad]}")
            per: dict[str, list[float]] = {}
            for r in summary.results.values():
                for k, v in {
                    **r["phases"],
                    "agent (copy+exec)": r["timings"]["agent"],
                    "trial total": r["timings"]["total"],
                }.items():
                    per.setdefault(k, []).append(v)
            phases[p] = per
            rows.append((p, wall, len(summary.results)))
        wall1 = next((w for p, w, _ in rows if p == 1), None)
        table = Table(title=f"ablbench runner: {args.tasks} trivial tasks, oracle agent")
        for col in ("parallel", "wall s", "trials/min", "speed-up", "efficiency"):
            table.add_column(col, justify="right")
        for p, wall, n in rows:
            speed = wall1 / wall if wall1 else float("nan")
            table.add_row(str(p), f"{wall:.1f}", f"{60 * n / wall:.1f}", f"{speed:.2f}", f"{speed / p:.0%}")
        console.print(table)
        ptable = Table(title="per-trial runner overhead, mean seconds (median in brackets)")
        ptable.add_column("phase")
        for p in levels:
            ptable.add_column(f"-n {p}", justify="right")
        order = [
            "image",
            "container_start",
            "agent (copy+exec)",
            "verifier_setup",
            "verifier_run",
            "verifier_collect",
            "teardown",
            "trial total",
        ]
        for key in order:
            cells = []
            for p in levels:
                vals = phases[p].get(key, [])
                cells.append(f"{statistics.mean(vals):.3f} ({statistics.median(vals):.3f})" if vals else "-")
            ptable.add_row(key, *cells)
        console.print(ptable)


if __name__ == "__main__":
    main()
