"""Faults injected for real, one test each (issue 27): every one ends in one line naming the cause
and the fix, keeps what finished, leaves no container, and ``--resume`` completes the run.

Real processes throughout: the ``ablbench run`` command in a subprocess, the real Docker engine
(and, for the engine-stop fault, a second dockerd of the test's own), real task containers, a
real llama.cpp server, and a misbehaving model server that is its own process on 127.0.0.1
(``tests/fault_server.py``: a stand-in for a server that answers garbage, 500s and 429s, or
hangs when stopped with SIGSTOP). The disk faults use a small tmpfs as ``--out``.

Every run that used the terminus agent is also checked for agreement: result.json, the
``master_summary.csv`` row and the trace agree on turns, tokens and commands (issue 27 item 2).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from conftest import missing
from test_run_integrity import ENV, Background, _wait_for
from test_runner import PASS_TEST, _cli, _finished, make_task
from test_runner import _containers as labelled_containers

from ablbench.paths import BUNDLED_TASKS, DEBIAN_IMAGE, REPO_ROOT
from harness.trial_behaviour import metrics_from_file
from runners.servers import free_port

pytestmark = pytest.mark.docker
FAULT_SERVER = Path(__file__).parent / "fault_server.py"
HELLO = ("--tasks", str(BUNDLED_TASKS), "--include", "hello-world")


# ------------------------------------------------------------------------------------------ helpers
def run_cli(*args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """``ablbench ARGS`` to the end; its output as text."""
    return subprocess.run(_cli(*args, "--quiet"), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)


def last_line(text: str) -> str:
    """The last non-empty line of ``text``."""
    return [line for line in text.splitlines() if line.strip()][-1]


def assert_one_line_error(proc: subprocess.CompletedProcess | tuple[int, str], code: int, *needles: str) -> str:
    """The command ended with ``code`` and an ``error:`` line holding ``needles``; no traceback."""
    rc, err = (proc.returncode, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc
    assert rc == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    line = last_line(err)
    assert line.startswith("error: "), err[-3000:]
    for needle in needles:
        assert needle in line, line
    return line


def assert_record_agrees(out: Path) -> None:
    """Issue 27 item 2: result.json, master_summary.csv and trace.jsonl tell the same story."""
    with (out / "master_summary.csv").open() as fh:
        rows = {(r["task"], r["attempt"]): r for r in csv.DictReader(fh)}
    finished = _finished(out)
    assert set(rows) == set(finished)
    for key, result in finished.items():
        trace = out / key[0] / key[1] / "trace.jsonl"
        turns = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
        turns = [t for t in turns if "turn" in t]
        counters, row = result["counters"], rows[key]
        metrics = metrics_from_file(trace)
        assert counters["turns"] == len(turns) == int(row["turns"]) == metrics["turns"], (key, result["outcome"])
        assert counters["tokens_in"] == sum(t["usage"]["prompt_tokens"] for t in turns) == int(row["tokens_in"])
        assert counters["tokens_out"] == sum(t["usage"]["completion_tokens"] for t in turns) == int(row["tokens_out"])
        commands = sum(len(t.get("commands") or []) for t in turns)
        assert commands == metrics["commands"] == int(row["commands"] or 0)
        assert result["agent_extra"]["behaviour"]["turns"] == counters["turns"]


def no_containers(client: docker.DockerClient, out: Path) -> None:
    assert not labelled_containers(client, out), [c.name for c in labelled_containers(client, out)]


class FaultServer:
    """``tests/fault_server.py`` as a process (its own port); stop/cont/kill it like a real server."""

    def __init__(self, turns: str = "solve,done", fault: str = "", stop_at: int = -1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, str(FAULT_SERVER), str(self.port), "--turns", turns, "--stop-at", str(stop_at)]
        self.proc = subprocess.Popen([*args, "--fault", fault] if fault else args)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the fault server did not start")
            time.sleep(0.1)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def fault_server() -> Iterator[type[FaultServer]]:
    made: list[FaultServer] = []

    def make(*args: str, **kw: str) -> FaultServer:
        made.append(FaultServer(*args, **kw))
        return made[-1]

    yield make  # type: ignore[misc]
    for server in made:
        server.close()


def terminus(url: str, *extra: str) -> tuple[str, ...]:
    return ("--agent", "terminus", "--model-url", url, "--model", "fault-model", "--max-turns", "4", *extra)


@contextlib.contextmanager
def small_tmpfs(size: str = "300k") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a fresh folder (needs root)."""
    mnt = Path(tempfile.mkdtemp(prefix="abl-tmpfs-"))
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        mnt.rmdir()
        missing(f"cannot mount a tmpfs ({made.stderr.decode().strip()}): the disk faults need root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(mnt, ignore_errors=True)


# ------------------------------------------------------------------------------------------ the record
OUTCOMES = {  # scenario: (the model's replies, expected outcome, expected agent_error)
    "passed": ("solveok,done", "passed", False),
    "failed": ("done,done", "failed", False),
    "max_turns": ("ls", "failed", False),
    "parse_fail_exhausted": ("prose", "parse_fail_exhausted", False),  # 5 in a row, before 6 turns
    "passed_after_llm_error": ("solveok,e500", "passed", True),
    "llm_error": ("ls,e500", "llm_error", True),
}


@pytest.mark.slow
def test_the_record_agrees_on_every_outcome(docker_client, base_image, tmp_path, fault_server):
    """Issue 27 item 2: counters survive a failing agent; the three records agree whatever the
    outcome. One task per scenario, one model server playing each task's script."""
    root = tmp_path / "tasks"
    for name in OUTCOMES:
        folder = make_task(root, name)
        (folder / "instruction.md").write_text(f"Write ok to /app/out.txt. [{name}]\n")
    server = fault_server(";".join(f"{name}={turns}" for name, (turns, _o, _e) in OUTCOMES.items()))
    out = tmp_path / "outcomes"
    proc = run_cli("run", "--tasks", str(root), *terminus(server.url, "--max-turns", "6"), "-n", "3",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = _finished(out)
    for name, (_turns, outcome, agent_error) in OUTCOMES.items():
        result = results[(name, "1")]
        assert result["outcome"] == outcome, (name, result["error"])
        assert bool(result["agent_error"]) is agent_error, name
    crashed = results[("passed_after_llm_error", "1")]  # shown as such: passed, with the agent's error beside it
    assert crashed["counters"]["turns"] == 1 and "passed although the agent ended in an error" in crashed["error"]
    row = next(r for r in csv.DictReader((out / "master_summary.csv").open()) if r["task"] == "passed_after_llm_error")
    assert row["outcome"] == "passed" and "failed after" in row["agent_error"]
    assert results[("llm_error", "1")]["counters"]["turns"] == 1  # the turn before the failure is still counted
    assert_record_agrees(out)
    no_containers(docker_client, out)


# ------------------------------------------------------------------------------------------ model server faults
def test_garbage_answers_are_retried_and_the_record_stays_true(docker_client, base_image, tmp_path, fault_server):
    """Every second request answers 200 with an HTML body (the issue's case): retried, passed, counters kept."""
    server = fault_server("solve,done", fault="nonjson")
    out = tmp_path / "garbage"
    proc = run_cli("run", *HELLO, "-k", "2", *terminus(server.url), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = _finished(out)
    assert {r["outcome"] for r in results.values()} == {"passed"}
    assert all(r["agent_error"] is None and r["counters"]["retries"] >= 1 for r in results.values())
    assert all(r["counters"]["turns"] == 3 for r in results.values())  # solve, done, done (confirmed)
    assert_record_agrees(out)
    no_containers(docker_client, out)


def test_500_and_429_are_retried(docker_client, base_image, tmp_path, fault_server):
    server = fault_server("solve,done", fault="500+429")
    out = tmp_path / "flaky"
    proc = run_cli("run", *HELLO, *terminus(server.url), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _finished(out)[("hello-world", "1")]
    # every second request fails (the CLI's seed probe took the first): one retry per turn
    assert result["outcome"] == "passed" and result["counters"]["retries"] == result["counters"]["turns"] == 3
    trace = (out / "hello-world" / "1" / "trace.jsonl").read_text().splitlines()
    assert sum(json.loads(t).get("retries", 0) for t in trace if '"turn"' in t) == 3
    assert_record_agrees(out)
    no_containers(docker_client, out)


def test_a_hung_server_is_detected_by_the_stall_bound_and_resume_completes(
        docker_client, base_image, tmp_path, fault_server):
    """SIGSTOP the model server mid-trial: each request is given up after the stall bound (not
    the 600 s timeout) and the trial ends as llm_error naming the hang; once the server runs
    again, ``--resume --rerun-errors`` completes the run."""
    server = fault_server("ls,solve,ls,done", stop_at=1)  # it hangs on the request for the second reply
    out = tmp_path / "hung"
    args = ("run", *HELLO, *terminus(server.url, "--llm-stall-s", "1", "--max-turns", "6"), "--out", str(out))
    run = Background(_cli(*args, "--quiet"))
    trace = out / "hello-world" / "1" / "trace.jsonl"
    _wait_for(lambda: trace.exists() and '"turn"' in trace.read_text(), 120, "the first turn", run)
    stopped = time.monotonic()
    _o, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert time.monotonic() - stopped < 90  # 4 attempts of ~2 s plus backoff, not 4 x 600 s
    result = _finished(out)[("hello-world", "1")]
    assert result["outcome"] == "llm_error" and "server hung: no reply for" in result["error"], result["error"]
    assert "\n" not in result["error"] and result["counters"]["turns"] >= 1
    assert_record_agrees(out)
    os.kill(server.proc.pid, signal.SIGCONT)
    again = run_cli(*args, "--resume", "--rerun-errors")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _finished(out)[("hello-world", "1")]["outcome"] == "passed"
    assert_record_agrees(out)
    no_containers(docker_client, out)


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_killed_llama_server_gives_the_one_line_message(docker_client, base_image, bundled_gguf, tmp_path, sig):
    """Issue 26 item 2 / 27: the llama.cpp server dies mid-run; the run stops at once with one
    line naming the server, its signal and its log; restarted, ``--resume`` completes the run."""
    from runners.servers import make_server

    log = tmp_path / "llama.log"
    server = make_server("llamacpp", bundled_gguf, name="fault-smol", log_path=log, threads=1)
    out = tmp_path / "died"
    args = ("run", *HELLO, "-k", "3", "--agent", "terminus", "--max-turns", "2", "--max-tokens", "48",
            "--out", str(out))
    with server:
        run = Background(_cli(*args, "--model-url", server.base_url, "--model", server.model_name, "--quiet"))
        _wait_for(lambda: any(out.glob("hello-world/*/trace.jsonl")), 120, "the first trial's agent", run)
        time.sleep(1.0)
        os.kill(server.pid, sig)
        _out, err = run.communicate(timeout=180)
        line = assert_one_line_error((run.returncode, err), 4, f"killed by {signal.Signals(sig).name}", str(log),
                                     "llamacpp server 'fault-smol'", "--resume")
        assert "failed after" not in line  # said at once, not after blind retries
        assert "--resume" in err
        done_before = _finished(out)
        assert all(r["outcome"] != "llm_error" for r in done_before.values())  # the dead server's trial is not kept
        no_containers(docker_client, out)
    with make_server("llamacpp", bundled_gguf, name="fault-smol-2", threads=1) as again:
        proc = run_cli(*args, "--model-url", again.base_url, "--model", again.model_name, "--resume",
                       timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_finished(out)) == 3
    assert_record_agrees(out)
    no_containers(docker_client, out)


# ------------------------------------------------------------------------------------------ disk faults
def _stop_after_first(out: Path, args: tuple[str, ...], fault, undo) -> tuple[int, str]:
    """Run ``args`` in the background, inject ``fault()`` once a trial finished; ``undo()`` after the end."""
    run = Background(_cli(*args, "--quiet"))
    try:
        _wait_for(lambda: len(_finished(out)) >= 1, 180, "a finished trial", run)
        fault()
        _o, err = run.communicate(timeout=240)
    finally:
        undo()
    return run.returncode, err


def test_results_disk_fills(docker_client, base_image, tmp_path):
    with small_tmpfs("300k") as mnt:
        out = mnt / "run"
        args = ("run", *HELLO, "--agent", "oracle", "-k", "4", "--out", str(out))
        filler = mnt / "filler"

        def fill() -> None:
            with contextlib.suppress(OSError), filler.open("wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()

        code, err = _stop_after_first(out, args, fill, lambda: None)
        assert_one_line_error((code, err), 3, "No space left on device", "free space there", "--resume")
        kept = _finished(out)
        assert kept and all(r["outcome"] == "passed" for r in kept.values())
        no_containers(docker_client, out)
        filler.unlink()
        proc = run_cli(*args, "--resume")
        assert proc.returncode == 0, proc.stderr[-3000:]
        final = _finished(out)
        assert len(final) == 4 and all(final[k] == v for k, v in kept.items())


def test_results_folder_becomes_read_only(docker_client, base_image, tmp_path):
    with small_tmpfs("20m") as mnt:
        out = mnt / "run"
        args = ("run", *HELLO, "--agent", "oracle", "-k", "4", "--out", str(out))

        def read_only() -> None:  # a read-only bind mount on top: files the run opens from now on are read-only
            subprocess.run(["mount", "--bind", str(mnt), str(mnt)], check=True)
            subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)], check=True)

        def writable() -> None:
            subprocess.run(["umount", "-l", str(mnt)], check=True)

        code, err = _stop_after_first(out, args, read_only, writable)
        assert_one_line_error((code, err), 3, "Read-only file system", "make it writable", "--resume")
        kept = _finished(out)
        assert kept
        no_containers(docker_client, out)
        proc = run_cli(*args, "--resume")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(_finished(out)) == 4


# ------------------------------------------------------------------------------------------ docker faults
class OwnDockerd:
    """A dockerd of this test's own (own socket, data and exec roots, its own bridge, no iptables,
    its own containerd namespace): stopping it touches nobody else's containers.

    Not ``--bridge=none``: a dockerd started so deletes the host's ``docker0``, the system
    engine's bridge, and every container with a network fails to start until it is recreated.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "d.sock"
        self.host = f"unix://{self.sock}"
        self.bridge = f"ablf{os.getpid() % 100000}"
        self.proc: subprocess.Popen | None = None

    def make_bridge(self) -> None:
        if shutil.which("ip") is None:
            missing("iproute2 (`ip`) is not installed")
        made = subprocess.run(["ip", "link", "add", "name", self.bridge, "type", "bridge"], capture_output=True)
        if made.returncode != 0:
            missing(f"cannot make a bridge for a test dockerd: {made.stderr.decode().strip()}")
        subprocess.run(["ip", "addr", "add", "10.251.77.1/24", "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    def remove_bridge(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)

    def start(self) -> None:
        exe = shutil.which("dockerd")
        if exe is None:
            missing("dockerd is not installed")
        self.proc = subprocess.Popen(
            [exe, "-H", self.host, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "x"),
             "--pidfile", str(self.root / "d.pid"), f"--bridge={self.bridge}", "--iptables=false",
             "--ip6tables=false", "--ip-masq=false",
             "--containerd-namespace", "ablfault", "--containerd-plugins-namespace", "ablfault-p"],
            stdout=(self.root / "dockerd.log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                docker.DockerClient(base_url=self.host, timeout=60).ping()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    pytest.fail(f"own dockerd did not start: {(self.root / 'dockerd.log').read_text()[-2000:]}")
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.proc = None


@pytest.mark.slow
def test_docker_engine_stopped_mid_run(docker_client, base_image, tmp_path):
    root = Path(tempfile.mkdtemp(prefix="abld-", dir="/tmp"))  # short: unix socket paths are limited
    engine = OwnDockerd(root)
    docker0 = Path("/sys/class/net/docker0").exists()
    try:
        engine.make_bridge()
        engine.start()
        env = {**ENV, "DOCKER_HOST": engine.host}
        # the small debootstrap image (the base image is built on it): save/load is the slow part
        tasks = tmp_path / "tasks"
        folder = make_task(tasks, "tiny")
        (folder / "environment" / "Dockerfile").write_text(f"FROM {DEBIAN_IMAGE}\nWORKDIR /app\n")
        saved = subprocess.Popen(["docker", "save", DEBIAN_IMAGE], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "-H", engine.host, "load", "-q"], stdin=saved.stdout, capture_output=True)
        saved.wait()
        assert loaded.returncode == 0, loaded.stderr
        out = tmp_path / "engine"
        args = ("run", "--tasks", str(tasks), "--agent", "oracle", "-k", "4", "--out", str(out))
        run = Background(_cli(*args, "--quiet"), env=env)
        _wait_for(lambda: len(_finished(out)) >= 1, 240, "a finished trial", run)
        engine.stop()
        _o, err = run.communicate(timeout=240)
        assert_one_line_error((run.returncode, err), 5, "Docker engine stopped answering", "start it", "--resume")
        kept = _finished(out)
        assert kept and all(r["outcome"] == "passed" for r in kept.values())
        engine.start()
        proc = run_cli(*args, "--resume", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(_finished(out)) == 4
        own = docker.DockerClient(base_url=engine.host, timeout=60)
        assert not own.api.containers(all=True, filters={"label": f"ablbench.results={out.resolve()}"})
    finally:
        engine.stop()
        engine.remove_bridge()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    assert Path("/sys/class/net/docker0").exists() == docker0  # the system engine's bridge is untouched


def test_task_container_oom_killed(docker_client, base_image, tmp_path):
    root = tmp_path / "tasks"
    hog = "python3 -c 'x = bytearray(400 * 1024 * 1024); print(len(x))'\necho ok > /app/out.txt\n"
    folder = make_task(root, "memory-hog", solve=hog)
    toml = (folder / "task.toml").read_text().replace('memory = "512M"', 'memory = "64M"')
    (folder / "task.toml").write_text(toml)
    (folder / "tests" / "test.sh").write_text(PASS_TEST.replace("ok", "never"))  # the hog must not pass
    out = tmp_path / "oom"
    proc = run_cli("run", "--tasks", str(root), "--agent", "oracle", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _finished(out)[("memory-hog", "1")]
    assert result["oom_kills"] >= 1 and result["outcome"] == "failed"
    assert "OOM-killed (memory limit 64 MB)" in result["error"]
    no_containers(docker_client, out)


def test_runner_sigkilled_while_a_verifier_runs(docker_client, base_image, tmp_path):
    root = tmp_path / "tasks"
    make_task(root, "slow-verifier", test="#!/bin/bash\nsleep 4\n" + PASS_TEST.split("\n", 1)[1])
    out = tmp_path / "killed"
    args = ("run", "--tasks", str(root), "--agent", "oracle", "--out", str(out))
    run = Background(_cli(*args, "--quiet"))
    log = out / "slow-verifier" / "1" / "runner.stdout"
    _wait_for(lambda: log.exists() and "verifier starts" in log.read_text(), 120, "the verifier", run)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    assert labelled_containers(docker_client, out)  # what SIGKILL leaves: resume must clean it
    assert not _finished(out)
    proc = run_cli(*args, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "removed 1 leftover container" in proc.stderr
    assert _finished(out)[("slow-verifier", "1")]["outcome"] == "passed"
    no_containers(docker_client, out)


def test_verifier_hangs_past_its_timeout(docker_client, base_image, tmp_path):
    root = tmp_path / "tasks"
    make_task(root, "hung-verifier", test="#!/bin/bash\nsleep 600\n", verifier_timeout=3)
    out = tmp_path / "hung-verifier"
    started = time.monotonic()
    proc = run_cli("run", "--tasks", str(root), "--agent", "oracle", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - started < 120
    result = _finished(out)[("hung-verifier", "1")]
    assert result["outcome"] == "verifier_error" and result["error"] == "verifier timed out after 3s"
    no_containers(docker_client, out)
    again = run_cli("run", "--tasks", str(root), "--agent", "oracle", "--out", str(out), "--resume")
    assert again.returncode == 0 and _finished(out) == {("hung-verifier", "1"): result}  # kept as it was


def test_image_build_fails(docker_client, base_image, tmp_path):
    """A failing Dockerfile: the trial's error names the build in one line, the other task's
    trials still run, no container is left; ``--resume`` keeps the error as it was and
    ``--rerun-errors`` builds again (a fixed Dockerfile is another experiment: a new --out)."""
    root = tmp_path / "tasks"
    folder = make_task(root, "bad-build")
    make_task(root, "good-build")
    (folder / "environment" / "Dockerfile").write_text("FROM ablbench/base:bookworm\nRUN echo about to fail && exit 7\n")
    out = tmp_path / "bad-build"
    args = ("run", "--tasks", str(root), "--agent", "oracle", "--out", str(out), "--infra-retries", "0")
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = _finished(out)
    bad = results[("bad-build", "1")]
    assert bad["outcome"] == "infra_error" and "build" in bad["error"] and "exit 7" in bad["error"], bad["error"]
    assert "\n" not in bad["error"].strip() and results[("good-build", "1")]["outcome"] == "passed"
    no_containers(docker_client, out)
    assert not docker_client.api.containers(all=True, filters={"status": "exited", "ancestor": "ablbench/base:bookworm",
                                                                 "label": "ablbench.task=bad-build"})
    kept = run_cli(*args, "--resume")
    assert kept.returncode == 0 and _finished(out) == results
    again = run_cli(*args, "--resume", "--rerun-errors")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _finished(out)[("bad-build", "1")]["outcome"] == "infra_error"
    assert _finished(out)[("good-build", "1")] == results[("good-build", "1")]
    no_containers(docker_client, out)
