"""The 12 bundled tasks with the oracle agent at -n 2: harbor (0.25, .venv-harbor) vs ablbench's runner.

Prints, per engine: wall time of the whole command (start-up included), the job's own time,
and per trial the mean total, agent and verifier seconds and the overhead (total - agent -
verifier: environment build/start, agent set-up, log sync, teardown), with harbor's phases.

Engines (each a fresh job over the same tasks, oracle agent, -n 2):
- ``ablbench``: ``ablbench run --agent oracle -n 2`` (the built-in runner);
- ``harbor-ablbench-env``: ``harbor run -a oracle -e runners.harbor_environment:AblbenchDocker``
  on the bundled tasks as they are (no network);
- ``harbor-docker``: ``harbor run -a oracle -e docker`` on a copy with ``allow_internet = true``
  (harbor's own docker environment refuses no-network tasks here).

    .venv/bin/python benchmarks/bench_harbor.py [--engines ablbench,harbor-ablbench-env,harbor-docker] [-n 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ablbench.paths import BUNDLED_TASKS, REPO_ROOT

HARBOR_SH = REPO_ROOT / "scripts" / "harbor.sh"
ENGINES = ("ablbench", "harbor-ablbench-env", "harbor-docker")


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _span(phase: dict | None) -> float:
    return _ts(phase["finished_at"]) - _ts(phase["started_at"]) if phase else 0.0


def task_copy(dest: Path, allow_internet: bool) -> Path:
    """The bundled tasks as a plain folder of task folders (optionally with internet allowed)."""
    for task in sorted(p for p in BUNDLED_TASKS.iterdir() if (p / "task.toml").is_file()):
        shutil.copytree(task, dest / task.name)
        if allow_internet:
            toml = dest / task.name / "task.toml"
            toml.write_text(re.sub(r"allow_internet\s*=\s*false", "allow_internet = true", toml.read_text()))
    return dest


def run_ablbench(tasks: Path, out: Path, n: int) -> tuple[float, list[dict]]:
    """Wall seconds and per-trial {total, agent, verifier, reward} of ``ablbench run``."""
    t0 = time.monotonic()
    subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "ablbench"), "run", "--tasks", str(tasks), "--agent", "oracle",
                    "-n", str(n), "--out", str(out), "--quiet"], check=True, capture_output=True, text=True,
                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    wall = time.monotonic() - t0
    trials = []
    for res in out.glob("*/*/result.json"):
        d = json.loads(res.read_text())
        t = d["timings"]
        trials.append({"total": t["total"], "agent": t["agent"], "verifier": t["verifier"], "reward": d["reward"],
                       "phases": {"env_setup": t["env_setup"], "teardown": d["phases"].get("teardown", 0.0)}})
    return wall, trials


def run_harbor(tasks: Path, jobs: Path, name: str, env: str, n: int) -> tuple[float, list[dict], float]:
    """Wall seconds, per-trial timings and the job's own seconds of ``harbor run -a oracle``."""
    t0 = time.monotonic()
    res = subprocess.run([str(HARBOR_SH), "run", "-p", str(tasks), "-a", "oracle", "-e", env, "-n", str(n),
                          "-o", str(jobs), "--job-name", name, "-y", "-q"], capture_output=True, text=True)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"harbor failed: {res.stderr[-2000:]}")
    trials = []
    for path in (jobs / name).glob("*/result.json"):
        d = json.loads(path.read_text())
        total = _ts(d["finished_at"]) - _ts(d["started_at"])
        agent = _span(d.get("agent_execution"))
        verifier = _span(d.get("verifier"))
        reward = ((d.get("verifier_result") or {}).get("rewards") or {}).get("reward", 0.0)
        trials.append({"total": total, "agent": agent, "verifier": verifier, "reward": reward,
                       "phases": {"env_setup": _span(d.get("environment_setup")), "agent_setup": _span(d.get("agent_setup")),
                                  "after_verifier": _ts(d["finished_at"]) - _ts((d.get("verifier") or d)["finished_at"])}})
    job = json.loads((jobs / name / "result.json").read_text())
    job_s = _ts(job["finished_at"]) - _ts(job["started_at"]) if job.get("finished_at") else float("nan")
    return wall, trials, job_s


def main() -> None:
    """Run the engines and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("-n", type=int, default=2)
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        sys.exit(f"unknown engine(s) {', '.join(sorted(unknown))}; choose from {', '.join(ENGINES)}")
    if any(e.startswith("harbor") for e in engines) and not (REPO_ROOT / ".venv-harbor" / "bin" / "harbor").exists():
        sys.exit("bench_harbor: .venv-harbor missing -- run `make setup-harbor` first")
    console = Console(width=200)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ablbench-bench-harbor-") as tmp:
        root = Path(tmp)
        plain = task_copy(root / "tasks", allow_internet=False)
        for engine in engines:
            if engine == "ablbench":
                wall, trials = run_ablbench(plain, root / "abl", args.n)
                job_s = float("nan")
            elif engine == "harbor-ablbench-env":
                wall, trials, job_s = run_harbor(plain, root / "jobs", "ablenv", "runners.harbor_environment:AblbenchDocker",
                                                 args.n)
            else:
                wall, trials, job_s = run_harbor(task_copy(root / "tasks-net", allow_internet=True), root / "jobs",
                                                 "docker", "docker", args.n)
            mean = {k: statistics.mean(t[k] for t in trials) for k in ("total", "agent", "verifier")}
            phases = {k: statistics.mean(t["phases"][k] for t in trials) for k in trials[0]["phases"]}
            rows.append((engine, len(trials), sum(t["reward"] >= 1 for t in trials), wall, job_s, mean, phases))
            console.print(f"{engine}: {len(trials)} trials in {wall:.1f}s")
    table = Table(title=f"12 bundled tasks, oracle agent, -n {args.n}")
    for col in ("engine", "passed", "wall s", "job s", "trial s", "agent s", "verifier s", "overhead s/trial",
                "wall s/trial", "phases (mean s)"):
        table.add_column(col)
    for engine, n, passed, wall, job_s, mean, phases in rows:
        overhead = mean["total"] - mean["agent"] - mean["verifier"]
        table.add_row(engine, f"{passed}/{n}", f"{wall:.1f}", "-" if job_s != job_s else f"{job_s:.1f}",
                      f"{mean['total']:.2f}", f"{mean['agent']:.2f}", f"{mean['verifier']:.2f}", f"{overhead:.2f}",
                      f"{wall / n:.2f}", ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    console.print(table)


if __name__ == "__main__":
    main()
