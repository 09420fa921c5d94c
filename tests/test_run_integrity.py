"""Run integrity with real processes and containers: one writer per results folder, a resume
that never mixes settings, no container after the stop sweep, an agent ended for good before
the verifier, planted rewards ignored, leftover processes recorded, and the user's entry
script under SIGTERM."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import docker
import pytest
from docker.models.containers import ContainerCollection
from test_agent_scripted_server import ScriptedServer
from test_runner import PASS_TEST, _cli, _finished, _scheduler, make_task

from ablbench.agent_api import AgentResult, AgentStop
from ablbench.paths import REPO_ROOT
from harness.agents.simple import NopAgent, OracleAgent
from harness.tasks import discover_tasks, load_task
from runners.environment import ContainerError, CreationGate
from runners.fingerprint import describe, differences, tree_hash
from runners.images import ImageResolver
from runners.run_lock import RunFolderLock, RunFolderLocked
from runners.trial import Trial, TrialConfig

ENV = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO_ROOT)}


class Background:
    """A command running in the background, its output going to files (a full pipe would block it)."""

    def __init__(self, cmd: list[str], env: dict | None = None) -> None:
        self._out = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the process
        self._err = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=self._out, stderr=self._err, text=True, env=env or ENV)
        self.pid = self.proc.pid

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def communicate(self, timeout: float) -> tuple[str, str]:
        """Wait for the end; (stdout, stderr)."""
        self.proc.wait(timeout=timeout)
        texts = []
        for fh in (self._out, self._err):
            fh.seek(0)
            texts.append(fh.read())
            fh.close()
        return texts[0], texts[1]


def _containers(client, out: Path) -> list[str]:
    """Names of the containers of results folder ``out`` (one list call: safe while they are being removed)."""
    found = client.api.containers(all=True, filters={"label": f"ablbench.results={out.resolve()}"})
    return [c["Names"][0].lstrip("/") for c in found]


def _wait_for(cond, timeout_s: float, what: str, proc: Background | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate(timeout=5)
            pytest.fail(f"process ended (rc {proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


# -------------------------------------------------------------------- pure logic


def test_fingerprint_differences_name_the_keys(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.sh").write_text("echo 1\n")
    h1 = tree_hash(tmp_path / "t")
    (tmp_path / "t" / "a.sh").write_text("echo 2\n")
    assert tree_hash(tmp_path / "t") != h1
    old = {"agent": {"name": "terminus", "max_turns": 20, "seed": None}, "tasks": {"x": h1, "y": "h"}}
    new = {"agent": {"name": "terminus", "max_turns": 5, "seed": None}, "tasks": {"x": h1, "z": "h"}}
    assert [k for k, _a, _b in differences(old, new)] == ["agent.max_turns", "tasks.y", "tasks.z"]
    text = describe(differences(old, new))
    assert "agent.max_turns (20 -> 5)" in text and "tasks.y (h -> absent)" in text
    assert differences(old, json.loads(json.dumps(old))) == []


def test_run_folder_lock_names_the_holder(tmp_path):
    with RunFolderLock(tmp_path, ["ablbench", "run", "--out", str(tmp_path)]):
        with pytest.raises(RunFolderLocked) as info, RunFolderLock(tmp_path, ["other"]):
            pass
        msg = str(info.value)
        assert f"pid {os.getpid()}: ablbench run --out {tmp_path}" in msg and "\n" not in msg
    with RunFolderLock(tmp_path, ["again"]):  # released: the next writer gets it
        assert json.loads((tmp_path / ".lock.owner").read_text())["command"] == ["again"]


def test_creation_gate_admits_nothing_after_stop_and_drains_in_flight():
    stop = threading.Event()
    gate = CreationGate(stop)
    inside, release = threading.Event(), threading.Event()

    def create() -> None:
        with gate.admit():
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=create)
    worker.start()
    assert inside.wait(5)
    stop.set()
    with pytest.raises(ContainerError, match="stopping"), gate.admit():
        pass
    assert gate.drain(0.1) == 1  # the creation in flight is waited for, not forgotten
    threading.Timer(0.3, release.set).start()
    assert gate.drain(10) == 0
    worker.join(5)


# -------------------------------------------------------------------- the CLI: lock, fingerprint, kill


@pytest.mark.docker
def test_second_writer_is_refused_while_the_first_finishes_intact(docker_client, base_image, tmp_path):
    root = tmp_path / "tasks"
    for i in range(3):
        make_task(root, f"lk-{i}", solve="sleep 2\necho ok > /app/out.txt\n")
    out = tmp_path / "results" / "locked"
    cmd = _cli("run", "--tasks", str(root), "--agent", "oracle", "-n", "1", "--out", str(out), "--quiet")
    first = Background(cmd)
    _wait_for(lambda: _containers(docker_client, out), 120, "the first run's first container", first)

    t0 = time.monotonic()
    second = subprocess.run([*cmd, "--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=ENV)
    assert second.returncode == 1, second.stderr
    assert time.monotonic() - t0 < 60
    error = [ln for ln in second.stderr.splitlines() if ln.startswith("error:")]
    assert len(error) == 1, second.stderr
    assert f"pid {first.pid}:" in error[0] and "--agent oracle" in error[0] and "being written" in error[0]
    assert _containers(docker_client, out), "the refused run must not sweep the first run's containers"

    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert {k: r["outcome"] for k, r in _finished(out).items()} == {(f"lk-{i}", "1"): "passed" for i in range(3)}
    run = json.loads((out / "run.json").read_text())
    assert len(run["invocations"]) == 1 and run["invocations"][0]["pid"] == first.pid
    assert not _containers(docker_client, out)


COMPLETE = '{"analysis": "done", "plan": "stop", "commands": [], "task_complete": true}'


@pytest.mark.docker
def test_resume_with_other_settings_is_refused_listing_the_keys(docker_client, base_image, tmp_path):
    root = tmp_path / "tasks"
    task = make_task(root, "fp-task")
    out = tmp_path / "results" / "fp"
    with ScriptedServer([COMPLETE], model="scripted") as srv:
        base = _cli(
            "run",
            "--tasks",
            str(root),
            "--model-url",
            srv.base_url,
            "--model",
            "scripted",
            "--out",
            str(out),
            "--quiet",
            "--max-turns",
            "3",
        )

        def run(*extra: str) -> subprocess.CompletedProcess:
            return subprocess.run([*base, *extra], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=ENV)

        first = run()
        assert first.returncode == 0, first.stderr
        before = _finished(out)
        assert before[("fp-task", "1")]["outcome"] == "failed"  # completes without writing out.txt

        refused = run("--resume", "--max-turns", "5")
        assert refused.returncode == 1
        assert "differing settings: agent.max_turns (3 -> 5)" in refused.stderr, refused.stderr

        (task / "tests" / "test.sh").write_text((task / "tests" / "test.sh").read_text() + "# changed\n")
        changed = run("--resume", "--temperature", "0.2")
        assert changed.returncode == 1
        assert "agent.temperature (0.7 -> 0.2)" in changed.stderr and "tasks.fp-task (sha256:" in changed.stderr

        (task / "tests" / "test.sh").write_text((task / "tests" / "test.sh").read_text().replace("# changed\n", ""))
        same = run("--resume")
        assert same.returncode == 0, same.stderr
    assert _finished(out) == before  # nothing rerun, nothing lost
    run_json = json.loads((out / "run.json").read_text())
    assert len(run_json["invocations"]) == 2  # the refused invocations wrote nothing
    assert run_json["fingerprint"]["agent"]["max_turns"] == 3 and run_json["agent"]["max_turns"] == 3


@pytest.mark.docker
def test_kill_during_container_creation_leaves_no_container(docker_client, base_image, tmp_path):
    root = tmp_path / "tasks"
    for i in range(6):
        make_task(root, f"kc-{i}", solve="sleep 60\n")
    for spec in discover_tasks(root):  # build the images first: the kill must land on container creation
        ImageResolver(docker_client).resolve(spec)
    out = tmp_path / "results" / "killcreate"
    # the engine reports the first container's creation at once; the other workers are creating theirs then
    events = docker_client.events(
        decode=True, filters={"label": f"ablbench.results={out.resolve()}", "event": "create"}
    )
    proc = Background(_cli("run", "--tasks", str(root), "--agent", "oracle", "-n", "6", "--out", str(out), "--quiet"))
    try:
        try:
            next(events)
        finally:
            events.close()
        # a second signal quits at once: only the gate keeps the creations in flight from outliving the sweep
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        existing = len(_containers(docker_client, out))
        proc.communicate(timeout=180)
        assert proc.returncode == 143
        assert not _containers(docker_client, out), f"left behind (had {existing} of 6 when killed)"
        time.sleep(5)  # a creation the engine finished late would show up now
        assert not _containers(docker_client, out)
    finally:
        for name in _containers(docker_client, out):  # never leak them, even when the test fails
            docker_client.api.remove_container(name, force=True)


class SlowEngine(docker.DockerClient):
    """Stands for a loaded docker engine that takes seconds to create a container (not reproducible
    on demand with the real one): ``containers.create`` waits ``delay_s``, then creates for real."""

    delay_s = 6.0
    creating = threading.Event()

    @property
    def containers(self) -> ContainerCollection:
        engine = self

        class Slow(ContainerCollection):
            def create(self, image, command=None, **kwargs):  # noqa: ANN001, ANN202 - docker SDK signature
                engine.creating.set()
                time.sleep(engine.delay_s)
                return super().create(image, command, **kwargs)

        return Slow(client=self)


@pytest.mark.docker
def test_no_container_is_created_after_the_stop_sweep(docker_client, base_image, tmp_path, test_labels):
    root = tmp_path / "tasks"
    make_task(root, "slow-create")
    out = tmp_path / "out"
    engine = SlowEngine.from_env(timeout=120)
    sched = _scheduler(engine, discover_tasks(root), NopAgent, out, test_labels)
    sched.STOP_GRACE_S = 0.2  # give up on the stuck worker at once: the sweep must still catch its container
    done: dict = {}
    runner = threading.Thread(target=lambda: done.update(summary=sched.run()))
    runner.start()
    assert engine.creating.wait(60)
    sched.request_stop("test")
    runner.join(60)
    assert not runner.is_alive() and done["summary"].interrupted
    swept_ns = time.time_ns()
    since = swept_ns // 10**9 - 1
    events = docker_client.events(
        decode=True,
        since=since,
        until=since + int(engine.delay_s) + 4,
        filters={"label": f"ablbench.results={out.resolve()}", "event": "create"},
    )
    late = [e for e in events if int(e["timeNano"]) > swept_ns]
    assert late == [], "a container was created after the stop sweep"
    assert not _containers(docker_client, out)


# -------------------------------------------------------------------- the verifier


class PlantLoopAgent:
    """Cheats from the background: a setsid loop rewrites /logs/verifier/reward.json, plus a nohup sleep."""

    name = "plant-loop"

    def run(self, env, instruction, logs_dir, deadline, task_dir) -> AgentResult:
        env.exec(
            [
                "bash",
                "-c",
                "setsid nohup bash -c 'while :; do mkdir -p /logs/verifier; "
                "echo 1 > /logs/verifier/reward.json; sleep 0.05; done' >/dev/null 2>&1 & "
                "nohup sleep 1234 >/dev/null 2>&1 &",
            ],
            None,
        )
        return AgentResult(stop=AgentStop.COMPLETED)


@pytest.mark.docker
def test_planted_reward_json_is_ignored_and_leftover_processes_recorded(
    docker_client, base_image, tmp_path, test_labels
):
    root = tmp_path / "tasks"
    # tests that write only reward.txt (0: the agent never wrote /app/out.txt), after a pause the loop fills
    make_task(root, "planted", test="#!/bin/bash\nsleep 1\necho 0 > /logs/verifier/reward.txt\n")
    out = tmp_path / "out"
    summary = _scheduler(docker_client, discover_tasks(root), PlantLoopAgent, out, test_labels).run()
    res = summary.results[("planted", 1)]
    assert (res["outcome"], res["reward"]) == ("failed", 0.0)
    assert res["verifier"]["reward_source"] == "reward.txt"
    assert any("reward.json ignored" in w for w in res["verifier"]["warnings"])
    assert (out / "planted" / "1" / "verifier" / "reward.json").is_file()  # it was there, and not used
    left = [p for p in res["procs_before_verifier"] if p["kind"] == "agent"]
    cmds = " | ".join(p["cmdline"] for p in left)
    assert "while :" in cmds and "sleep 1234" in cmds and all(p["pid"] > 1 for p in left)
    assert res["leftover_procs"] == len(left) >= 2
    assert {p["kind"] for p in res["procs_before_verifier"]} >= {"container", "agent"}
    with (out / "master_summary.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert int(row["leftover_procs"]) == res["leftover_procs"]
    assert "left running by the agent" in (out / "planted" / "1" / "runner.stdout").read_text()
    assert not _containers(docker_client, out)


class LateTyperAgent:
    """Ignores its deadline: a command in flight plants reward 1 later; once that returns, it tries again
    during the verification."""

    name = "late-typer"

    def run(self, env, instruction, logs_dir, deadline, task_dir) -> AgentResult:
        env.exec(["bash", "-c", "sleep 4; echo 1 > /logs/verifier/reward.txt"], None)
        time.sleep(1.5)  # the verifier is running now
        env.exec(["bash", "-c", "echo 1 > /logs/verifier/reward.txt"], None)
        return AgentResult(stop=AgentStop.COMPLETED)


@pytest.mark.docker
def test_abandoned_agent_cannot_touch_the_container_during_verification(
    docker_client, base_image, tmp_path, test_labels
):
    spec = load_task(
        make_task(
            tmp_path / "tasks",
            "late",
            agent_timeout=1,
            test="#!/bin/bash\necho 0 > /logs/verifier/reward.txt\nsleep 5\n",
        )
    )
    tc = TrialConfig(run_id="late", out_dir=tmp_path / "out", labels=test_labels, agent_grace_s=1.0)
    res = Trial(spec, 1, LateTyperAgent(), client=docker_client, images=ImageResolver(docker_client), config=tc).run()
    assert (res["outcome"], res["reward"]) == ("agent_timeout", 0.0), res
    assert res["agent_commands_killed"], "the in-flight `sleep 4; echo 1 > reward.txt` must be killed"
    assert "abandoned" in res["error"]


@pytest.mark.docker
def test_rerun_errors_skips_verifier_errors_unless_asked(docker_client, base_image, tmp_path, test_labels):
    root = tmp_path / "tasks"
    task = make_task(root, "broken-verifier", test="#!/bin/bash\necho 'no reward written'\n")
    out = tmp_path / "out"
    first = _scheduler(docker_client, discover_tasks(root), OracleAgent, out, test_labels).run()
    assert first.results[("broken-verifier", 1)]["outcome"] == "verifier_error"
    (task / "tests" / "test.sh").write_text(PASS_TEST)  # fixed: a rerun would now pass

    def resume(**config) -> dict:
        sched = _scheduler(docker_client, discover_tasks(root), OracleAgent, out, test_labels)
        sched.config.resume = True
        for key, value in config.items():
            setattr(sched.config, key, value)
        return sched.run().results[("broken-verifier", 1)]

    assert resume(rerun_errors=True)["outcome"] == "verifier_error"  # infra and llm errors only
    assert resume(rerun=frozenset({"verifier_error"}))["outcome"] == "passed"
    cli = subprocess.run(
        _cli("run", "--tasks", str(root), "--agent", "oracle", "--out", str(out), "--resume", "--rerun", "verifer"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert cli.returncode == 1 and "--rerun 'verifer' is not an outcome" in cli.stderr


# -------------------------------------------------------------------- the user's entry script


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]


@pytest.mark.docker
@pytest.mark.model
@pytest.mark.slow
def test_full_bench_parallel_under_sigterm_exits_143_leaving_nothing(docker_client, base_image, smollm2_dir, tmp_path):
    root = tmp_path / "tasks"
    make_task(root, "long", agent_timeout=900)
    out = tmp_path / "bench"
    home = tmp_path / "home"  # the detached server's state file lands here, apart from other runs
    env = {**ENV, "ABLBENCH": str(REPO_ROOT / ".venv" / "bin" / "ablbench"), "ABLBENCH_HOME": str(home)}
    cmd = [
        "bash",
        str(REPO_ROOT / "scripts" / "full_bench_parallel.sh"),
        "--model",
        f"base={smollm2_dir}",
        "--tasks",
        str(root),
        "--backend",
        "transformers",
        "-n",
        "1",
        "--max-turns",
        "50",
        "--max-tokens",
        "32",
        "--out",
        str(out),
    ]
    proc = Background(cmd, env)
    states = home / "servers"
    _wait_for(
        lambda: list(states.glob("fullpar-base-*.json")) and _containers(docker_client, out / "base"),
        600,
        "the server and the first trial container",
        proc,
    )
    server_pid = json.loads(next(states.glob("fullpar-base-*.json")).read_text())["detach"]["pid"]
    assert _alive(server_pid)

    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 143, stderr[-3000:]
    assert time.monotonic() - t0 < 120
    assert "interrupted by SIGTERM" in stderr and "== analysis" not in stdout
    assert not _containers(docker_client, out / "base")
    deadline = time.monotonic() + 15
    while _alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server_pid), "the model server outlived the script"
    assert not list(states.glob("*.json"))
    run = json.loads((out / "base" / "run.json").read_text())
    assert run["invocations"][-1]["status"] == "interrupted"
