"""Load: 48 trials at ``-n 8`` through the real command, with the oracle agent and with the
terminus agent against a scripted model server (``tests/fault_server.py``, its own process).

Prints, per agent: trials finished and their outcomes, wall time, the trials' own time (sum of
each trial's ``total``; divided by -n it is the wall time a perfect scheduler would take),
per-trial overhead (``total`` minus the agent's and the verifier's time: image lookup,
container start and removal, result writing), and what leaked: containers carrying the run's
label, and processes the run left behind. The machine's load average is printed with every
figure (a shared machine makes them noisy: rerun on a quiet one to compare).

    .venv/bin/python benchmarks/bench_load.py [--trials 48] [--parallel 8] [--agents oracle,terminus]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx

from ablbench.paths import BUNDLED_TASKS, REPO_ROOT
from runners.servers import free_port

FAULT_SERVER = REPO_ROOT / "tests" / "fault_server.py"


def loadavg() -> str:
    """The 1, 5, 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def children() -> set[int]:
    """Pids whose parent is this process."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                out.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def scripted_server() -> tuple[subprocess.Popen, str]:
    """The scripted model server (it solves hello-world in two replies)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(FAULT_SERVER), str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/v1/models", timeout=2)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the scripted server did not start")


def one(agent: str, trials: int, parallel: int, out: Path) -> None:
    """Run ``trials`` trials of ``agent`` and print the figures."""
    server = None
    if agent == "terminus":
        server, url = scripted_server()
        tasks = ["--include", "hello-world", "-k", str(trials)]
        extra = ["--model-url", url, "--model", "fault-model"]
    else:
        tasks = ["--include", "hello-world", "--include", "make-output-dir", "-k", str(max(1, trials // 2))]
        extra = []
    before = children()
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "run", "--tasks", str(BUNDLED_TASKS),
           *tasks, "--agent", agent, *extra, "-n", str(parallel), "--out", str(out), "--quiet"]
    load_before = loadavg()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    wall = time.monotonic() - t0
    if server is not None:
        server.kill()
        server.wait()
    results = [json.loads(p.read_text()) for p in out.glob("*/*/result.json")]
    results = [r for r in results if r.get("finished")]
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    totals = [r["timings"]["total"] for r in results]
    overhead = [r["timings"]["total"] - r["timings"]["agent"] - r["timings"]["verifier"] for r in results]
    client = docker.from_env(timeout=60)
    leaked = client.api.containers(all=True, filters={"label": f"ablbench.results={out.resolve()}"})
    left_procs = children() - before
    print(f"\n== {agent}: {len(results)}/{trials} trials finished, exit {proc.returncode}, outcomes {outcomes}")
    if proc.returncode:
        print(proc.stderr[-2000:])
    if totals:
        own = sum(totals)
        print(f"wall {wall:.1f} s; trials' own time {own:.1f} s (sum), {own / parallel:.1f} s at -n {parallel} "
              f"if perfectly packed: wall / ideal = {wall / (own / parallel):.2f}")
        print(f"per trial: total median {statistics.median(totals):.2f} s; overhead (total - agent - verifier) "
              f"median {statistics.median(overhead):.2f} s, max {max(overhead):.2f} s, "
              f"mean {statistics.mean(overhead):.2f} s")
    print(f"leaked: {len(leaked)} container(s), {len(left_procs)} process(es)")
    print(f"load average before {load_before}, after {loadavg()}")


def main() -> None:
    """Parse the flags and run each agent once."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--agents", default="oracle,terminus")
    args = ap.parse_args()
    print(f"bench_load: {args.trials} trials at -n {args.parallel}, {os.cpu_count()} CPUs, load {loadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        for agent in args.agents.split(","):
            one(agent, args.trials, args.parallel, Path(tmp) / agent)


if __name__ == "__main__":
    main()
