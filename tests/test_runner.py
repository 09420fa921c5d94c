"""Trials and the parallel runner with real containers: oracle/nop on the bundled tasks,
verifier errors, agent timeouts, infra retries, and kill + --resume of the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from ablbench.agent_api import AgentResult, AgentStop, Outcome
from ablbench.paths import BUNDLED_TASKS, REPO_ROOT
from ablbench.results import SUMMARY_COLUMNS
from harness.agents.simple import NopAgent, OracleAgent
from harness.tasks import discover_tasks, load_task
from runners.images import ImageOptions, ImageResolver
from runners.scheduler import RunConfig, RunError, Scheduler
from runners.trial import Trial, TrialConfig, VerifierResult, classify, parse_reward

PASS_TEST = """#!/bin/bash
if [ "$(cat /app/out.txt 2>/dev/null)" = "ok" ]; then echo 1 > /logs/verifier/reward.txt
else echo 0 > /logs/verifier/reward.txt; fi
echo verifier-ran
"""


def make_task(
    root: Path,
    name: str,
    *,
    solve: str = "echo ok > /app/out.txt\n",
    test: str = PASS_TEST,
    agent_timeout: float = 60,
    verifier_timeout: float = 30,
    extra_tests: dict | None = None,
) -> Path:
    """A tiny TB2 task folder built FROM the local base image."""
    folder = root / name
    for sub in ("environment", "tests", "solution"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "environment" / "Dockerfile").write_text("FROM ablbench/base:bookworm\nWORKDIR /app\n")
    (folder / "instruction.md").write_text("Write ok to /app/out.txt.\n")
    (folder / "tests" / "test.sh").write_text(test)
    for rel, text in (extra_tests or {}).items():
        (folder / "tests" / rel).write_text(text)
    (folder / "solution" / "solve.sh").write_text("#!/bin/bash\n" + solve)
    (folder / "task.toml").write_text(
        f'version = "1.0"\n[metadata]\ndifficulty = "easy"\n[agent]\ntimeout_sec = {agent_timeout}\n'
        f'[verifier]\ntimeout_sec = {verifier_timeout}\n[environment]\ncpus = 1\nmemory = "512M"\n'
        "allow_internet = false\n"
    )
    return folder


class SleepAgent:
    """Sleeps in the container; with ``ignore_deadline`` it overruns the deadline on purpose."""

    name = "sleep"

    def __init__(self, seconds: float, ignore_deadline: bool = False) -> None:
        self.seconds = seconds
        self.ignore_deadline = ignore_deadline

    def run(self, env, instruction, logs_dir, deadline, task_dir) -> AgentResult:
        if self.ignore_deadline:
            time.sleep(self.seconds)
            return AgentResult(stop=AgentStop.COMPLETED)
        end = time.monotonic() + self.seconds
        while time.monotonic() < min(end, deadline):
            time.sleep(0.1)
        return AgentResult(stop=AgentStop.TIMEOUT if time.monotonic() >= deadline else AgentStop.COMPLETED)


# -------------------------------------------------------------------- pure logic


def test_parse_reward_variants():
    assert parse_reward({"reward.json": b'{"reward": 1}'})[:2] == (1.0, "reward.json")
    assert parse_reward({"reward.json": b'{"score": 0.5}', "reward.txt": b"1"})[:2] == (0.5, "reward.json")
    # tests that never write reward.json: a reward.json found there is not theirs
    assert parse_reward({"reward.json": b'{"reward": 1}', "reward.txt": b"0"}, json_allowed=False)[:2] == (
        0.0, "reward.txt")
    assert parse_reward({"reward.json": b'{"a": 1, "b": 0}'})[2] is not None
    assert parse_reward({"reward.txt": b" 0\n"})[:2] == (0.0, "reward.txt")
    assert "not a number" in parse_reward({"reward.txt": b"yes"})[2]
    assert "no reward" in parse_reward({})[2]


def test_classify_precedence():
    ok = VerifierResult(exit_code=0, reward=1.0)
    zero = VerifierResult(exit_code=0, reward=0.0)
    broken = VerifierResult(exit_code=1, error="verifier wrote no reward")
    assert classify(AgentResult(AgentStop.TIMEOUT), ok, None)[0] is Outcome.PASSED
    assert classify(AgentResult(AgentStop.TIMEOUT), zero, None)[0] is Outcome.AGENT_TIMEOUT
    assert classify(AgentResult(AgentStop.COMPLETED), zero, None)[0] is Outcome.FAILED
    assert classify(AgentResult(AgentStop.COMPLETED), broken, None)[0] is Outcome.VERIFIER_ERROR
    assert classify(AgentResult(AgentStop.LLM_ERROR, error="503"), zero, None) == (Outcome.LLM_ERROR, "503")
    assert classify(AgentResult(AgentStop.ERROR), zero, None)[0] is Outcome.INFRA_ERROR
    assert classify(AgentResult(AgentStop.CONTEXT_EXCEEDED), zero, None)[0] is Outcome.CONTEXT_EXCEEDED
    assert classify(AgentResult(AgentStop.PARSE_FAIL_EXHAUSTED), zero, None)[0] is Outcome.PARSE_FAIL_EXHAUSTED
    assert classify(None, None, "docker down") == (Outcome.INFRA_ERROR, "docker down")


# -------------------------------------------------------------------- real containers


@pytest.fixture(scope="session")
def bundled_specs(docker_client, base_image):
    """The bundled tasks with their images built once for the session."""
    specs = discover_tasks(BUNDLED_TASKS)
    if not specs:
        pytest.fail("no bundled tasks found")
    resolver = ImageResolver(docker_client, ImageOptions())
    for spec in specs:
        resolver.resolve(spec)
    return specs, resolver


def _scheduler(
    client, specs, agent_factory, out: Path, labels, *, resolver=None, parallel=4, attempts=1, retries=1, grace=30.0
) -> Scheduler:
    tc = TrialConfig(run_id=out.name, out_dir=out, labels=labels, agent_grace_s=grace)
    rc = RunConfig(attempts=attempts, parallel=parallel, infra_retries=retries, show_progress=False)
    return Scheduler(
        client,
        specs,
        agent_factory,
        resolver or ImageResolver(client, ImageOptions()),
        tc,
        rc,
        console=Console(stderr=True, quiet=True),
    )


def _read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == SUMMARY_COLUMNS
        return list(reader)


def _containers(client, out: Path) -> list:
    return client.containers.list(all=True, filters={"label": f"ablbench.results={out.resolve()}"})


@pytest.mark.docker
@pytest.mark.slow
def test_oracle_passes_every_bundled_task(docker_client, bundled_specs, tmp_path, test_labels):
    specs, resolver = bundled_specs
    out = tmp_path / "oracle"
    summary = _scheduler(docker_client, specs, OracleAgent, out, test_labels, resolver=resolver).run()
    outcomes = {r["task"]: (r["outcome"], r.get("error")) for r in summary.results.values()}
    assert outcomes == {s.name: ("passed", None) for s in specs}
    rows = _read_csv(out / "master_summary.csv")
    assert [r["task"] for r in rows] == sorted(s.name for s in specs)
    assert all(float(r["reward"]) == 1.0 for r in rows)
    for spec in specs:
        folder = out / spec.name / "1"
        for name in ("trace.jsonl", "reward.txt", "runner.stdout", "verifier.log", "result.json"):
            assert (folder / name).is_file(), f"{folder / name} missing"
        assert (folder / "reward.txt").read_text().strip() == "1"
    run = json.loads((out / "run.json").read_text())
    assert run["invocations"][-1]["status"] == "complete" and run["invocations"][-1]["parallel"] == 4
    assert not _containers(docker_client, out)


@pytest.mark.docker
@pytest.mark.slow
def test_nop_fails_every_bundled_task_and_leftovers_are_swept(
    docker_client, bundled_specs, base_image, tmp_path, test_labels
):
    specs, resolver = bundled_specs
    out = tmp_path / "nop"
    # a container left behind by a "crashed" earlier run of this results folder
    stale = docker_client.containers.run(
        base_image,
        ["sleep", "infinity"],
        detach=True,
        network_mode="none",
        labels={**test_labels, "ablbench.results": str(out.resolve())},
    )
    summary = _scheduler(docker_client, specs, NopAgent, out, test_labels, resolver=resolver).run()
    assert stale.name in summary.removed_leftovers
    assert {r["task"]: r["outcome"] for r in summary.results.values()} == {s.name: "failed" for s in specs}
    assert all(r["reward"] == 0.0 for r in summary.results.values())
    assert not _containers(docker_client, out)
    # the same folder again without --resume is refused
    with pytest.raises(RunError, match="--resume"):
        _scheduler(docker_client, specs, NopAgent, out, test_labels, resolver=resolver).run()


@pytest.mark.docker
def test_verifier_problems_are_verifier_errors(docker_client, base_image, tmp_path, test_labels):
    root = tmp_path / "tasks"
    make_task(root, "no-reward", test="#!/bin/bash\necho 'I forgot the reward'\n")
    make_task(root, "slow-verifier", test="#!/bin/bash\nsleep 60\n", verifier_timeout=2)
    # tests that produce ctrf.json but whose set-up failed: reward 0, no ctrf.json
    make_task(
        root,
        "no-ctrf",
        test="#!/bin/bash\necho 0 > /logs/verifier/reward.txt\n"
        "exit 1 # pytest --ctrf /logs/verifier/ctrf.json would have run here\n",
    )
    make_task(root, "json-reward", test="#!/bin/bash\necho '{\"reward\": 1.0}' > /logs/verifier/reward.json\n")
    legacy = root / "legacy-ok"
    (legacy / "tests").mkdir(parents=True)
    (legacy / "task.yaml").write_text("instruction: write ok\nmax_agent_timeout_sec: 30\nmax_test_timeout_sec: 30\n")
    (legacy / "Dockerfile").write_text("FROM ablbench/base:bookworm\nWORKDIR /app\n")
    (legacy / "run-tests.sh").write_text('#!/bin/bash\ntest "$TEST_DIR" = /tests && test -f /tests/marker\n')
    (legacy / "tests" / "marker").write_text("x")
    (legacy / "solution.sh").write_text("#!/bin/bash\ntrue\n")
    out = tmp_path / "out"
    summary = _scheduler(docker_client, discover_tasks(root), NopAgent, out, test_labels).run()
    got = {t: (r["outcome"], r["error"]) for (t, _a), r in summary.results.items()}
    assert got["no-reward"][0] == "verifier_error" and "no reward" in got["no-reward"][1]
    assert got["slow-verifier"][0] == "verifier_error" and "timed out" in got["slow-verifier"][1]
    assert got["no-ctrf"][0] == "verifier_error" and "ctrf" in got["no-ctrf"][1]
    assert got["json-reward"] == ("passed", None)
    assert got["legacy-ok"] == ("passed", None)
    assert "I forgot the reward" in (out / "no-reward" / "1" / "verifier.log").read_text()


class PlantAgent:
    """Tries to cheat: plants a reward file and its own /tests/test.sh."""

    name = "plant"

    def run(self, env, instruction, logs_dir, deadline, task_dir) -> AgentResult:
        env.exec(
            [
                "bash",
                "-c",
                "echo 1 > /logs/verifier/reward.txt; mkdir -p /tests; "
                "echo 'echo 1 > /logs/verifier/reward.txt' > /tests/test.sh",
            ],
            None,
        )
        return AgentResult(stop=AgentStop.COMPLETED)


@pytest.mark.docker
def test_planted_reward_and_tests_are_discarded(docker_client, base_image, tmp_path, test_labels):
    spec = load_task(make_task(tmp_path / "tasks", "plant", test="#!/bin/bash\necho 'no reward here'\n"))
    tc = TrialConfig(run_id="plant", out_dir=tmp_path / "out", labels=test_labels)
    res = Trial(spec, 1, PlantAgent(), client=docker_client, images=ImageResolver(docker_client), config=tc).run()
    assert res["outcome"] == "verifier_error" and "no reward" in res["error"]
    assert "no reward here" in (tmp_path / "out" / "plant" / "1" / "verifier.log").read_text()


@pytest.mark.docker
def test_agent_timeout_still_runs_verifier(docker_client, base_image, tmp_path, test_labels):
    root = tmp_path / "tasks"
    make_task(root, "sleepy", agent_timeout=2)
    make_task(root, "overrun", agent_timeout=1)
    specs = {s.name: s for s in discover_tasks(root)}
    resolver = ImageResolver(docker_client, ImageOptions())
    tc = TrialConfig(run_id="to", out_dir=tmp_path / "out", labels=test_labels, agent_grace_s=1.0)
    t0 = time.monotonic()
    res = Trial(specs["sleepy"], 1, SleepAgent(30), client=docker_client, images=resolver, config=tc).run()
    assert res["outcome"] == "agent_timeout" and res["reward"] == 0.0
    assert res["verifier"]["exit_code"] == 0 and res["verifier"]["reward"] == 0.0
    assert "verifier-ran" in (tmp_path / "out" / "sleepy" / "1" / "verifier.log").read_text()
    assert res["timings"]["agent"] < 10 and time.monotonic() - t0 < 60
    # an agent that ignores its deadline is abandoned after the grace period; verifier still runs
    res = Trial(
        specs["overrun"], 1, SleepAgent(20, ignore_deadline=True), client=docker_client, images=resolver, config=tc
    ).run()
    assert res["outcome"] == "agent_timeout" and "abandoned" in res["error"]
    assert res["timings"]["agent"] < 8 and res["verifier"]["exit_code"] == 0
    assert not _containers(docker_client, tmp_path / "out")


@pytest.mark.docker
def test_infra_errors_are_retried_then_reported(docker_client, base_image, tmp_path, test_labels):
    root = tmp_path / "tasks"
    folder = make_task(root, "broken-image")
    (folder / "environment" / "Dockerfile").write_text("FROM ablbench/base:bookworm\nRUN exit 7\n")
    out = tmp_path / "out"
    summary = _scheduler(docker_client, discover_tasks(root), OracleAgent, out, test_labels, retries=1).run()
    result = summary.results[("broken-image", 1)]
    assert result["outcome"] == "infra_error" and "build" in result["error"]
    assert result["infra_retries"] == 1 and len(result["previous_errors"]) == 1
    assert json.loads((out / "broken-image" / "1" / "result.json").read_text())["infra_retries"] == 1
    # fixed task: --resume keeps the error, --resume --rerun-errors reruns it
    (folder / "environment" / "Dockerfile").write_text("FROM ablbench/base:bookworm\nWORKDIR /app\n")
    specs = discover_tasks(root)
    again = _scheduler(docker_client, specs, OracleAgent, out, test_labels)
    again.config.resume = True
    assert again.run().results[("broken-image", 1)]["outcome"] == "infra_error"
    again = _scheduler(docker_client, specs, OracleAgent, out, test_labels)
    again.config.resume = again.config.rerun_errors = True
    assert again.run().results[("broken-image", 1)]["outcome"] == "passed"
    assert len(json.loads((out / "run.json").read_text())["invocations"]) == 3


class InspectAgent:
    """Records the container's own settings as the agent sees them."""

    name = "inspect"

    def run(self, env, instruction, logs_dir, deadline, task_dir) -> AgentResult:
        container = env.container  # this test's agent looks at the docker container itself
        container.reload()
        host = container.attrs["HostConfig"]
        return AgentResult(stop=AgentStop.COMPLETED, extra={"network": host["NetworkMode"], "labels": container.labels})


@pytest.mark.docker
def test_network_follows_allow_internet_and_no_network(docker_client, base_image, tmp_path, test_labels):
    folder = make_task(tmp_path / "tasks", "online")
    toml = folder / "task.toml"
    toml.write_text(toml.read_text().replace("allow_internet = false", "allow_internet = true"))
    spec = load_task(folder)
    resolver = ImageResolver(docker_client)
    got = {}
    for no_network in (False, True):
        tc = TrialConfig(
            run_id="net", out_dir=tmp_path / f"out-{no_network}", labels=test_labels, no_network=no_network
        )
        res = Trial(spec, 1, InspectAgent(), client=docker_client, images=resolver, config=tc).run()
        got[no_network] = res["agent_extra"]["network"]
        labels = res["agent_extra"]["labels"]
        assert labels["ablbench.run"] == "net" and labels["ablbench.task"] == "online"
        assert labels["ablbench.attempt"] == "1" and labels["ablbench.results"] == str(tc.out_dir.resolve())
    assert got == {False: "bridge", True: "none"}


@pytest.mark.docker
def test_cli_offline_maps_missing_images_to_the_base(docker_client, base_image, tmp_path):
    folder = make_task(tmp_path / "tasks", "tb2-shaped")
    (folder / "environment" / "Dockerfile").write_text("FROM python:3.13-slim-bookworm\nWORKDIR /app\n")
    toml = folder / "task.toml"
    toml.write_text(toml.read_text() + 'docker_image = "alexgshaw/tb2-shaped:20251031"\n')
    out = tmp_path / "out"
    proc = subprocess.run(
        _cli("run", "--tasks", str(tmp_path / "tasks"), "--agent", "oracle", "--offline", "--out", str(out), "--quiet"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "python:3.13-slim-bookworm is not present locally" in proc.stderr
    assert proc.stdout.strip() == str(out.resolve())
    rows = _read_csv(out / "master_summary.csv")
    assert [(r["task"], r["outcome"]) for r in rows] == [("tb2-shaped", "passed")]
    result = json.loads((out / "tb2-shaped" / "1" / "result.json").read_text())
    assert result["image"].startswith("ablbench-task/tb2-shaped:")


class DeadServerAgent:
    """Stands for an agent whose model server went away: every trial is an LLM error."""

    name = "dead-server"

    def run(self, env, instruction, logs_dir, deadline, task_dir) -> AgentResult:
        return AgentResult(stop=AgentStop.LLM_ERROR, error="connection refused")


@pytest.mark.docker
def test_run_stops_after_llm_errors_in_a_row(docker_client, base_image, tmp_path, test_labels):
    root = tmp_path / "tasks"
    for i in range(5):
        make_task(root, f"llm-{i}")
    sched = _scheduler(docker_client, discover_tasks(root), DeadServerAgent, tmp_path / "out", test_labels, parallel=1)
    sched.config.max_llm_errors_in_row = 2
    summary = sched.run()
    assert summary.interrupted and "LLM errors in a row" in sched.stop_reason
    assert [r["outcome"] for r in summary.results.values()] == ["llm_error", "llm_error"]
    assert not _containers(docker_client, tmp_path / "out")


# -------------------------------------------------------------------- the CLI: kill and resume


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import main; main()", *args]


def _finished(out: Path) -> dict[tuple[str, str], dict]:
    found = {}
    for p in out.glob("*/*/result.json"):
        data = json.loads(p.read_text())
        if data.get("finished"):
            found[(p.parent.parent.name, p.parent.name)] = data
    return found


def _run_until_and_signal(cmd: list[str], out: Path, n_finished: int, sig: int) -> tuple[int, str]:
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while len(_finished(out)) < n_finished and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "run ended before it could be interrupted"
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    reader.join(10)
    return code, "".join(chunks)


@pytest.mark.docker
@pytest.mark.slow
def test_kill_then_resume_loses_and_duplicates_nothing(docker_client, base_image, tmp_path):
    root = tmp_path / "tasks"
    expected = {}
    for i in range(4):
        good = i % 2 == 0
        make_task(root, f"kr-{i}", solve="sleep 2\n" + ("echo ok" if good else "echo no") + " > /app/out.txt\n")
        expected[f"kr-{i}"] = "passed" if good else "failed"
    out = tmp_path / "results" / "killrun"
    base = _cli("run", "--tasks", str(root), "--agent", "oracle", "-n", "2", "-k", "2", "--out", str(out))

    code, log = _run_until_and_signal(base, out, 1, signal.SIGINT)
    assert code == 130, log
    assert "interrupted by SIGINT" in log and "--resume" in log
    assert not _containers(docker_client, out)
    first = _finished(out)
    assert 1 <= len(first) < 8

    code, log = _run_until_and_signal([*base, "--resume"], out, len(first) + 1, signal.SIGTERM)
    assert code == 143, log
    assert not _containers(docker_client, out)
    second = _finished(out)
    assert all(second[k] == v for k, v in first.items()), "finished trials must be kept as they were"

    done = subprocess.run([*base, "--resume", "--quiet"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = _finished(out)
    assert set(final) == {(f"kr-{i}", str(a)) for i in range(4) for a in (1, 2)}
    assert all(final[k] == v for k, v in second.items())
    assert {k: r["outcome"] for k, r in final.items()} == {k: expected[k[0]] for k in final}
    rows = _read_csv(out / "master_summary.csv")
    assert sorted((r["task"], r["attempt"]) for r in rows) == sorted(final)  # one row per trial, no dupes
    run = json.loads((out / "run.json").read_text())
    assert [s["status"] for s in run["invocations"]] == ["interrupted", "interrupted", "complete"]
    assert run["agent"] == {"name": "oracle"} and all(i["command"] for i in run["invocations"])
    assert len({i["pid"] for i in run["invocations"]}) == 3 and run["fingerprint"]["tasks"].keys() == set(expected)
    assert not _containers(docker_client, out)
