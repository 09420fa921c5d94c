"""The ATIF export (``ablbench.atif``) and the harbor environment bridge (``runners.harbor_bridge``).

Traces here are written the way the agents write them; the exported trajectories are checked
field by field and then validated with harbor's own ATIF model in ``.venv-harbor``. The bridge is
checked over a harbor-style asynchronous environment (its four coroutines, written here since
harbor's own classes only load in ``.venv-harbor``) running a real shell on this host, and with the
real tmux terminal in a container.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import missing
from harbor_helpers import harbor_ready, validate_atif

from ablbench.atif import read_trace_records, trajectory_from_trace, write_trajectory
from harness.prompt import initial_messages
from harness.trace import TraceWriter
from runners.harbor_bridge import MAX_COMMAND_BYTES, ExecClosed, HarborEnvironmentBridge
from runners.terminal import TmuxTerminal


def _turn(n: int, reply: str, commands: list[dict], *, status: str = "ok", complete: bool = False,
          finish: str = "stop", warnings: list[str] | None = None) -> dict:
    return {"turn": n, "reply": reply, "reasoning": "thinking" if n == 1 else None, "finish_reason": finish,
            "usage": {"prompt_tokens": 100 * n, "completion_tokens": 10 * n}, "retries": 0,
            "parse": {"status": status, "error": "no JSON" if status == "parse_fail" else None,
                      "warnings": warnings or [], "task_complete": complete},
            "commands": commands, "observation": f"screen {n}", "next_message": f"New terminal output:\nscreen {n}",
            "request": {"messages": 2 * n, "chars": 900}, "timings": {"model_s": 0.1}}


def _terminus_trace(path: Path) -> Path:
    with TraceWriter(path) as w:
        w.write({"event": "start", "config": {"max_turns": 5, "temperature": float("nan")}, "screen": "$",
                 "idle_detection": True, "model": "qwen-abl", "instruction": "Make /app/x.",
                 "messages": initial_messages("Make /app/x.", "$")})
        w.write(_turn(1, '{"commands": [...]}', [
            {"keystrokes": "ls\n", "duration": 0.5, "waited_s": 0.1, "ended": "idle-prompt"},
            {"keystrokes": "touch /app/x\n", "duration": 0.5, "waited_s": 0.1, "ended": "idle-prompt"}],
            warnings=["prose around the JSON"]))
        w.write(_turn(2, "no json", [], status="parse_fail", finish="length"))
        w.write({"event": "context_overflow", "error": "too long", "trimmed_total": 1})
        w.write(_turn(3, '{"task_complete": true}', [{"keystrokes": "true\n", "duration": 0.1}], complete=True))
        w.write(_turn(4, '{"task_complete": true}', [], complete=True))
        w.write({"event": "end", "stop": "completed", "error": None, "counters": {"turns": 4, "parse_fail": 1}})
    return path / "trace.jsonl"


def test_terminus_trace_becomes_atif_steps(tmp_path):
    data = trajectory_from_trace(read_trace_records(_terminus_trace(tmp_path)), instruction="Make /app/x.",
                                 agent_name="terminus", session_id="run/task/1")
    assert data["schema_version"] == "ATIF-v1.8" and data["session_id"] == "run/task/1"
    assert data["agent"]["model_name"] == "qwen-abl" and data["agent"]["extra"]["config"]["temperature"] is None
    steps = data["steps"]
    assert [s["step_id"] for s in steps] == list(range(1, 8))
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent", "system", "agent", "agent"]
    assert "Make /app/x." in steps[1]["message"]
    first = steps[2]
    assert first["reasoning_content"] == "thinking" and first["llm_call_count"] == 1
    assert [c["arguments"]["keystrokes"] for c in first["tool_calls"]] == ["ls\n", "touch /app/x\n"]
    assert "source_call_id" not in first["observation"]["results"][0]  # one screen, two commands
    assert first["extra"]["parse"]["warnings"] == ["prose around the JSON"]
    failed = steps[3]
    assert "tool_calls" not in failed and failed["extra"]["parse"]["status"] == "parse_fail"
    assert failed["metrics"]["extra"]["finish_reason"] == "length"
    assert steps[4]["message"].startswith("context_overflow: too long")
    third = steps[5]
    assert [c["function_name"] for c in third["tool_calls"]] == ["bash_command", "mark_task_complete"]
    assert third["observation"]["results"][0]["source_call_id"] == "call_3_1"
    assert data["final_metrics"] == {"total_prompt_tokens": 1000, "total_completion_tokens": 100, "total_steps": 7}
    assert data["extra"]["stop"] == "completed"


def test_model_free_agents_and_empty_traces(tmp_path):
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    (oracle / "trace.jsonl").write_text(
        json.dumps({"t": 1.0, "event": "command", "command": "bash /solution/solve.sh", "timeout_s": 300}) + "\n"
        + json.dumps({"t": 2.0, "event": "result", "exit_code": 0, "timed_out": False, "output_tail": "ok"}) + "\n"
        + '{"t": 3.0, "event": "res')  # a torn last line (killed agent) is skipped
    out = write_trajectory(oracle / "trace.jsonl", oracle / "agent" / "trajectory.json", instruction="Do it.",
                           agent_name="oracle")
    data = json.loads(out.read_text())
    user, step = data["steps"]
    assert user == {"step_id": 1, "source": "user", "message": "Do it.", "timestamp": user["timestamp"]}
    assert step["llm_call_count"] == 0 and "metrics" not in step
    assert step["observation"]["results"][0] == {"source_call_id": step["tool_calls"][0]["tool_call_id"],
                                                 "content": "ok", "extra": {"exit_code": 0, "timed_out": False}}
    empty = tmp_path / "empty" / "trace.jsonl"
    empty.parent.mkdir()
    empty.touch()
    assert write_trajectory(empty, tmp_path / "empty" / "t.json", instruction="x", agent_name="nop") is None
    assert not (tmp_path / "empty" / "t.json").exists()


def test_exported_trajectories_validate_with_harbors_model(tmp_path):
    reason = harbor_ready()
    if reason:
        missing(reason)
    paths = []
    for name, trace in (("terminus", _terminus_trace(tmp_path / "a")),):
        paths.append(write_trajectory(trace, tmp_path / f"{name}.json", instruction="Make /app/x.", agent_name=name))
    nop = tmp_path / "nop" / "trace.jsonl"
    nop.parent.mkdir()
    nop.write_text(json.dumps({"t": 1.0, "event": "nop"}) + "\n")
    paths.append(write_trajectory(nop, tmp_path / "nop.json", instruction="x", agent_name="nop"))
    res = validate_atif(*paths)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("ATIF-v1.8") == 2


class _AsyncShell:
    """Stands in for harbor's BaseEnvironment: its exec/upload/download coroutines over ``argv_of``."""

    def __init__(self, argv_of=None) -> None:
        self.argv_of = argv_of  # (command, env) -> argv run on this host with its own environment

    async def exec(self, command, cwd=None, env=None, timeout_sec=None, user=None):
        argv, host_env = (["bash", "-c", command], env) if self.argv_of is None else (self.argv_of(command, env), None)
        res = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                      env=host_env, cwd=cwd, timeout=timeout_sec)
        return SimpleNamespace(return_code=res.returncode, stdout=res.stdout, stderr=res.stderr)

    async def upload_file(self, source_path, target_path):
        Path(target_path).write_bytes(Path(source_path).read_bytes())

    async def upload_dir(self, source_dir, target_dir):
        subprocess.run(["cp", "-r", f"{source_dir}/.", target_dir], check=True)

    async def download_file(self, source_path, target_path):
        Path(target_path).write_bytes(Path(source_path).read_bytes())


@pytest.fixture
def loop():
    """An event loop running in its own thread, as harbor's is beside the agent's thread."""
    lp = asyncio.new_event_loop()
    thread = threading.Thread(target=lp.run_forever, daemon=True)
    thread.start()
    yield lp
    lp.call_soon_threadsafe(lp.stop)
    thread.join(5)
    lp.close()


def test_exec_container_quotes_argv_and_refuses_after_close(tmp_path, loop):
    box = HarborEnvironmentBridge(_AsyncShell(), loop, name="local")
    res = box.exec(["sh", "-c", 'echo "$1 $X"; echo err >&2; exit 3', "sh", "it's $HOME"],
                   env={"X": "x y", "PATH": "/usr/bin:/bin"}, workdir=str(tmp_path))
    code, out = res.exit_code, res.output.encode()
    assert (code, out) == (3, b"it's $HOME x y\nerr\n")
    with pytest.raises(ExecClosed, match="limit"):
        box.exec(["echo", "a" * (MAX_COMMAND_BYTES + 1)])
    box.close()
    with pytest.raises(ExecClosed, match="closed"):
        box.exec(["true"])
    assert box.calls == 1


def test_bridge_copies_files_in_and_reads_them_back(tmp_path, loop):
    box = HarborEnvironmentBridge(_AsyncShell(), loop, name="local")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("alpha\n")
    box.copy_in(src, str(tmp_path / "dest"))
    assert box.read_file(str(tmp_path / "dest" / "sub" / "a.txt")) == b"alpha\n"
    box.write_file(str(tmp_path / "deep" / "run.sh"), "echo hi\n", mode=0o755)
    assert box.exec(str(tmp_path / "deep" / "run.sh")).output == "hi\n"
    assert box.read_file(str(tmp_path / "absent")) is None


@pytest.mark.docker
def test_tmux_terminal_runs_through_the_exec_adapter(container, loop):
    """The terminal drives tmux through the bridge exactly as through docker (docker exec via the CLI here)."""

    def via_cli(command, env):
        return ["docker", "exec", *[a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")],
                container.name, "bash", "-c", command]

    term = TmuxTerminal(HarborEnvironmentBridge(_AsyncShell(via_cli), loop, name=container.name))
    term.start()
    assert term.counter_ok  # PROMPT_COMMAND went through the env
    sent = term.send("echo $((6 * 7)) > /tmp/n; cat /tmp/n\n", 5)
    assert sent.how == "idle-prompt"
    assert "42" in term.observe()
    term.close()
