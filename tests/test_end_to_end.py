"""The user's workflow, reduced for CI: abliterate the bundled model, serve base and abliterated
with `transformers serve`, run two bundled tasks with the agent in real containers for each,
and compare the runs -- all through scripts/full_bench_parallel.sh. Rerunning resumes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from ablbench.paths import BUNDLED_TASKS, REPO_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.model, pytest.mark.slow]
TASKS = ["hello-world", "make-output-dir"]


def bench(out: Path, base: Path, edited: Path) -> subprocess.CompletedProcess:
    cmd = ["bash", str(REPO_ROOT / "scripts" / "full_bench_parallel.sh"),
           "--model", f"base={base}", "--model", f"abl={edited}", "--tasks", str(BUNDLED_TASKS),
           "--include", TASKS[0], "--include", TASKS[1], "--backend", "transformers", "-n", "2",
           "--max-turns", "2", "--max-tokens", "64", "--out", str(out)]
    # the mark is inherited by the servers the script starts: other runs on a shared machine lack it
    env = {**os.environ, "ABLBENCH": str(REPO_ROOT / ".venv" / "bin" / "ablbench"), "ABLBENCH_TEST_MARK": str(out)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)


def rows(run: Path) -> list[dict]:
    with open(run / "master_summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def leftovers(docker_client, out: Path) -> list[str]:
    """Task containers of this test's runs (other runs on the machine are not ours to judge)."""
    running = docker_client.api.containers(all=True, filters={"label": "ablbench.run"})
    mine = [c for c in running if c["Labels"].get("ablbench.results", "").startswith(str(out.resolve()))]
    return [c["Names"][0] for c in mine]


def serve_processes(out: Path) -> list[str]:
    """`transformers serve` processes started for this test (they carry its ABLBENCH_TEST_MARK)."""
    found = subprocess.run(["pgrep", "-af", "transformers serve"], capture_output=True, text=True).stdout
    mine = []
    for line in found.splitlines():
        pid = line.split(" ", 1)[0]
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"ABLBENCH_TEST_MARK={out}".encode() in environ:
            mine.append(line)
    return mine


def test_full_bench_both_models_then_resume(tmp_path, docker_client, base_image, smollm2_dir, abliterated_run):
    edited = abliterated_run / "abliterated_model"
    assert (edited / "abliteration.json").is_file()
    out = tmp_path / "bench"

    first = bench(out, smollm2_dir, edited)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for name in ("base", "abl"):
        run = out / name
        got = rows(run)
        assert sorted(r["task"] for r in got) == TASKS
        for r in got:
            assert r["outcome"] in {"passed", "failed", "parse_fail_exhausted", "agent_timeout", "context_exceeded"}
            assert float(r["reward"]) in (0.0, 1.0) and 1 <= int(r["turns"]) <= 2
            trace = run / r["task"] / r["attempt"] / "trace.jsonl"
            assert trace.is_file() and trace.read_text().strip()
        identity = json.loads((run / "run.json").read_text())
        assert str(smollm2_dir if name == "base" else edited) in json.dumps(identity)

    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["base", "abl"]
    pair = report["pairs"][0]
    assert (pair["a"], pair["b"], pair["n"]) == ("base", "abl", 2)
    assert pair["both"] + pair["a_only"] + pair["b_only"] + pair["neither"] == 2
    assert len(report["overlap"]) == 3
    assert "McNemar" in (out / "report.md").read_text()
    assert any(p.suffix == ".png" for p in (out / "plots").iterdir())
    # the behaviour section: filled, and its refusal and parse_fail sentences count what the traces hold
    from test_behaviour_e2e import pct, trace_counts

    beh = report["behaviour"]
    assert beh["available"] and [r["sources"] for r in beh["runs"]] == [{"trace": 2}, {"trace": 2}]
    said = {m["key"]: m["sentence"] for m in beh["pairs"][0]["metrics"]}
    base_c, abl_c = trace_counts(out / "base", TASKS), trace_counts(out / "abl", TASKS)
    assert said["refusal_rate"].startswith(f"base refused (a refusal marker in the reply) in "
                                           f"{pct(base_c['refusal'], base_c['turns'])} of turns vs "
                                           f"{pct(abl_c['refusal'], abl_c['turns'])} for abl; p = ")
    assert said["parse_fail_rate"].startswith(f"base's replies could not be parsed in "
                                              f"{pct(base_c['parse_fail'], base_c['turns'])} of turns vs "
                                              f"{pct(abl_c['parse_fail'], abl_c['turns'])} for abl; p = ")
    assert "## Behaviour in the trajectories" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert html.count('type="application/gzip+base64"') == 4  # every trial one click away in the HTML report
    assert leftovers(docker_client, out) == [] and serve_processes(out) == []

    before = {name: rows(out / name) for name in ("base", "abl")}
    again = bench(out, smollm2_dir, edited)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert {name: rows(out / name) for name in ("base", "abl")} == before  # resumed: nothing rerun
    assert leftovers(docker_client, out) == [] and serve_processes(out) == []
