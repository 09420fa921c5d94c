"""The ATIF export (``ablbench.atif``) and the exec adapter (``runners.exec_container``).

Traces here are written the way the agents write them; the exported trajectories are checked
field by field and then validated with harbor's own ATIF model in ``.venv-harbor``. The exec
adapter is checked with a real shell on this host and with the real tmux terminal in a container.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import missing
from harbor_helpers import harbor_python, harbor_ready, validate_atif

from ablbench.atif import ATIF_VERSION, read_trace_records, trajectory_from_trace, write_trajectory
from ablbench.paths import REPO_ROOT
from harness.prompt import initial_messages
from harness.trace import TraceWriter
from runners.exec_container import MAX_COMMAND_BYTES, ExecClosed, ExecContainer
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


def _local_shell(command: str, env, workdir, user, timeout_s):
    res = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, cwd=workdir,
                         timeout=timeout_s)
    return res.returncode, res.stdout, res.stderr


def test_exec_container_quotes_argv_and_refuses_after_close(tmp_path):
    box = ExecContainer(_local_shell, name="local")
    code, out = box.exec_run(["sh", "-c", 'echo "$1 $X"; echo err >&2; exit 3', "sh", "it's $HOME"],
                             environment={"X": "x y", "PATH": "/usr/bin:/bin"}, workdir=str(tmp_path))
    assert (code, out) == (3, b"it's $HOME x y\nerr\n")
    with pytest.raises(ExecClosed, match="limit"):
        box.exec_run(["echo", "a" * (MAX_COMMAND_BYTES + 1)])
    box.close()
    with pytest.raises(ExecClosed, match="closed"):
        box.exec_run(["true"])
    assert box.calls == 1


@pytest.mark.docker
def test_tmux_terminal_runs_through_the_exec_adapter(container):
    """The terminal drives tmux with the adapter exactly as with the SDK (docker exec via the CLI here)."""

    def via_cli(command, env, workdir, user, timeout_s):
        argv = ["docker", "exec", *[a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")],
                container.name, "bash", "-c", command]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        return res.returncode, res.stdout, res.stderr

    term = TmuxTerminal(ExecContainer(via_cli, name=container.name))
    term.start()
    assert term.counter_ok  # PROMPT_COMMAND went through the env
    sent = term.send("echo $((6 * 7)) > /tmp/n; cat /tmp/n\n", 5)
    assert sent.how == "idle-prompt"
    assert "42" in term.observe()
    term.close()


NEWEST_ATIF = """
import typing
from importlib.metadata import version
from harbor.models.trajectories import Trajectory
field = Trajectory.model_fields["schema_version"]
print(version("harbor"), field.default, max(typing.get_args(field.annotation), key=lambda v: tuple(
    int(x) for x in v.removeprefix("ATIF-v").split("."))))
"""


def test_the_export_follows_the_newest_atif_schema_of_the_pinned_harbor():
    """The pinned harbor (the [harbor] extra) is installed, and our ATIF_VERSION is its newest schema."""
    reason = harbor_ready()
    if reason:
        missing(reason)
    import re
    import tomllib

    extra = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["harbor"]
    pinned = next(re.match(r"harbor==([\w.]+)", r).group(1) for r in extra if r.startswith("harbor=="))
    res = harbor_python(NEWEST_ATIF)
    assert res.returncode == 0, res.stderr[-2000:]
    installed, default, newest = res.stdout.split()
    assert installed == pinned, f".venv-harbor holds harbor {installed}, the extra pins {pinned}: run make setup-harbor"
    assert ATIF_VERSION == default == newest
