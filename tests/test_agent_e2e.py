"""The Terminus agent end to end: real tmux in a real container, a real HTTP model server.

The "model" is a scripted OpenAI-compatible server (``test_agent_scripted_server``) replaying
messy replies (think blocks, fenced and split JSON, prose, repaired JSON); the agent solves the
bundled ``hello-world`` task and the task's own verifier grades the container.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from test_agent_scripted_server import ScriptedServer

from ablbench.agent_api import AgentStop
from ablbench.paths import BUNDLED_TASKS
from harness.agents.terminus import AgentConfig, TerminusAgent
from harness.llm_client import LLMClient
from harness.prompt import AGENT_SYSTEM_PROMPT
from harness.trace import read_trace
from runners.environment import TaskEnvironment

pytestmark = pytest.mark.docker

HELLO = BUNDLED_TASKS / "hello-world"

SPLIT_FENCED = (
    '<think>maybe {"commands": [{"keystrokes": "rm -rf /app\\n"}]}</think>\n'
    "I will look first.\n```json\n"
    '{"analysis": "A fresh shell.", "plan": "Look at /app."}\n```\n```json\n'
    '{"commands": [{"keystrokes": "ls -la /app\\n", "duration": 0.5}], "task_complete": false}\n```'
)
PROSE_ONLY = "I think I should write the file with printf and then check it."
# single quotes, Python booleans, a string duration, trailing commas, missing closers
# ("!" is written \041: an interactive bash would history-expand it)
REPAIRED = (
    "{'analysis': 'Now write it', 'plan': 'printf then cat', 'commands': ["
    "{'keystrokes': 'printf \"Hello, world\\\\041\\\\n\" > /app/hello.txt\\n', 'duration': '1',},"
    "{'keystrokes': 'cat /app/hello.txt\\n', 'duration': 0.5,},], 'task_complete': False,"
)
DONE = '{"analysis": "The file is there.", "plan": "Finish.", "commands": [], "task_complete": true}'


def _copy_dir(container, src: Path, dest: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src, arcname=Path(dest).name)
    container.exec_run(["mkdir", "-p", str(Path(dest).parent)])
    container.put_archive(str(Path(dest).parent), buf.getvalue())


@pytest.fixture(scope="module")
def box(docker_client, base_image, test_labels):
    """One network-less base container shared by this module's agent runs (each starts a fresh tmux)."""
    c = docker_client.containers.run(
        base_image, ["sleep", "infinity"], detach=True, network_mode="none", labels=test_labels,
        name=f"ablbench-test-agent-{uuid.uuid4().hex[:8]}",
    )
    try:
        yield c
    finally:
        c.remove(force=True)


def _run(server: ScriptedServer, container, tmp_path: Path, deadline_s: float = 60.0, **cfg):
    client = LLMClient(server.base_url, server.model, max_retries=0, timeout_s=30)
    agent = TerminusAgent(client, AgentConfig(**cfg))
    res = agent.run(TaskEnvironment.attach(container), (HELLO / "instruction.md").read_text(), tmp_path, time.monotonic() + deadline_s,
                    HELLO)
    return res, read_trace(tmp_path / "trace.jsonl")


def test_scripted_model_solves_hello_world(box, tmp_path):
    with ScriptedServer([SPLIT_FENCED, PROSE_ONLY, REPAIRED, DONE, DONE]) as srv:
        res, trace = _run(srv, box, tmp_path)
    assert res.stop is AgentStop.COMPLETED, res.error
    assert (res.turns, res.parse_fail, res.no_cmd) == (5, 1, 0)
    assert res.tokens_in > 0 and res.tokens_out > 0

    # the container holds the answer, and the task's own verifier says so
    assert box.exec_run(["cat", "/app/hello.txt"]).output == b"Hello, world!\n"
    _copy_dir(box, HELLO / "tests", "/tests")
    box.exec_run(["bash", "/tests/test.sh"])
    assert box.exec_run(["cat", "/logs/verifier/reward.txt"]).output.strip() in (b"1", b"1.0")

    turns = [t for t in trace if "turn" in t]
    assert trace[0]["event"] == "start" and trace[-1]["event"] == "end"
    assert trace[-1]["stop"] == "completed" and trace[-1]["counters"]["turns"] == 5
    assert [t["parse"]["status"] for t in turns] == ["ok", "parse_fail", "ok", "ok", "ok"]
    # turn 1: split JSON -> the second object's command ran; the command inside <think> did not
    assert [c["keystrokes"] for c in turns[0]["commands"]] == ["ls -la /app\n"]
    assert any("2 JSON objects" in w for w in turns[0]["parse"]["warnings"])
    assert "rm -rf" in turns[0]["reasoning"]
    assert box.exec_run(["test", "-d", "/app"]).exit_code == 0
    # turn 2: nothing ran, the model was told why
    assert turns[1]["commands"] == []
    assert "Previous response had parsing errors" in turns[1]["next_message"]
    # turn 3: repaired JSON ran both commands and the observation shows the file
    assert len(turns[2]["commands"]) == 2 and "Hello, world!" in turns[2]["observation"]
    assert all(c["ended"].startswith("idle") for c in turns[2]["commands"])
    # turns 4-5: double confirmation
    assert "Are you sure" in turns[3]["next_message"] and turns[3]["confirm_pending"]
    for t in turns:
        assert t["timings"]["model_s"] >= 0 and t["timings"]["harness_s"] < 1.0
        assert t["request"]["chars"] > 0 and t["usage"]["prompt_tokens"] > 0

    # what the model saw: the shared prompt, then the feedback of each turn
    first = srv.requests[0]["body"]
    assert first["messages"][0] == {"role": "system", "content": AGENT_SYSTEM_PROMPT}
    assert "hello.txt" in first["messages"][1]["content"] and first["max_tokens"] == 4096
    third = srv.requests[2]["body"]["messages"]
    assert third[-1]["role"] == "user" and "parsing errors" in third[-1]["content"]
    assert "<think>" not in srv.requests[1]["body"]["messages"][2]["content"]


def test_parse_failures_are_capped(box, tmp_path):
    with ScriptedServer(["no json here", "still none {", "nope"]) as srv:
        res, trace = _run(srv, box, tmp_path, max_parse_failures=3)
    assert res.stop is AgentStop.PARSE_FAIL_EXHAUSTED
    assert (res.turns, res.parse_fail, res.no_cmd) == (3, 3, 0)
    assert len([t for t in trace if "turn" in t]) == 3


def test_max_turns_and_no_cmd_counters(box, tmp_path):
    analysis_only = '{"analysis": "thinking", "plan": "later"}'
    with ScriptedServer([analysis_only, "garbage", analysis_only, analysis_only]) as srv:
        res, _ = _run(srv, box, tmp_path, max_turns=3)
    assert res.stop is AgentStop.MAX_TURNS
    assert (res.turns, res.parse_fail, res.no_cmd) == (3, 1, 2)
    assert len(srv.requests) == 3


def test_unconfirmed_completion_is_not_completion(box, tmp_path):
    ls = '{"commands": [{"keystrokes": "true\\n", "duration": 0.2}], "task_complete": false}'
    with ScriptedServer([DONE, ls, DONE, DONE]) as srv:
        res, _ = _run(srv, box, tmp_path)
    assert res.stop is AgentStop.COMPLETED and res.turns == 4


def test_deadline_stops_a_slow_model(box, tmp_path):
    with ScriptedServer([DONE], delay_s=5.0) as srv:
        t0 = time.monotonic()
        res, trace = _run(srv, box, tmp_path, deadline_s=1.5)
    assert res.stop is AgentStop.TIMEOUT and res.turns == 0
    assert time.monotonic() - t0 < 4.5
    assert trace[-1]["stop"] == "timeout"


def test_command_duration_is_capped_by_the_deadline(box, tmp_path):
    sleepy = '{"commands": [{"keystrokes": "sleep 30\\n", "duration": 60}]}'
    with ScriptedServer([sleepy]) as srv:
        t0 = time.monotonic()
        res, trace = _run(srv, box, tmp_path, deadline_s=3.0)
    assert res.stop is AgentStop.TIMEOUT and res.turns == 1
    assert time.monotonic() - t0 < 6.0
    turn = [t for t in trace if "turn" in t][0]
    assert turn["commands"][0]["ended"] == "timeout" and turn["commands"][0]["waited_s"] < 3.5
    box.exec_run(["pkill", "sleep"])


def test_llm_errors_and_context_overflow(box, tmp_path):
    with ScriptedServer([{"status": 500, "error": "boom"}]) as srv:
        res, _ = _run(srv, box, tmp_path / "a")
    assert res.stop is AgentStop.LLM_ERROR and "boom" in (res.error or "")
    over = {"status": 400, "error": "This model's maximum context length is 100 tokens."}
    with ScriptedServer([over]) as srv:
        res, _ = _run(srv, box, tmp_path / "b")
    assert res.stop is AgentStop.CONTEXT_EXCEEDED and res.context_events == 1


def test_old_turns_are_trimmed_near_the_context_limit(box, tmp_path):
    # each observation is ~2,000 chars (~500 tokens by the server's count); 2,400 tokens of context
    # with a 512-token reply budget leave room for the task plus about two exchanges
    big = '{"analysis": "more", "commands": [{"keystrokes": "seq 100000 100400\\n", "duration": 1}]}'
    with ScriptedServer([big] * 6, max_model_len=2400) as srv:
        res, trace = _run(srv, box, tmp_path, max_turns=6, max_tokens=512)
    assert res.stop is AgentStop.MAX_TURNS and res.turns == 6
    assert res.context_events >= 1
    sizes = [len(r["body"]["messages"]) for r in srv.requests]
    assert max(sizes) < 2 + 2 * 6  # old exchanges were dropped
    last = srv.requests[-1]["body"]["messages"]
    assert "earlier turn(s) omitted" in last[1]["content"]
    assert [m["role"] for m in last[1:]] == ["user", "assistant"] * ((len(last) - 1) // 2) + ["user"]
    assert all(r["body"]["max_tokens"] <= 512 for r in srv.requests)

