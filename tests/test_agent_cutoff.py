"""The Terminus agent with cut-off replies and commands that lack their newline: real tmux in a
real container, a scripted model server on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_agent_e2e import DONE, HELLO, box  # noqa: F401 - box is the shared container fixture
from test_agent_scripted_server import ScriptedServer
from test_parser_cutoff import COMPLETE_THEN_CUT, DURATION_CUT, HEREDOC_CUT

from ablbench.agent_api import AgentStop
from harness.agents.terminus import AgentConfig, TerminusAgent
from harness.llm_client import LLMClient
from harness.trace import read_trace
from runners.environment import TaskEnvironment

pytestmark = pytest.mark.docker


def _run(server: ScriptedServer, container, tmp_path: Path, **cfg):
    client = LLMClient(server.base_url, server.model, max_retries=0, timeout_s=30)
    agent = TerminusAgent(client, AgentConfig(**cfg)).for_trial("hello-world", 1)
    res = agent.run(TaskEnvironment.attach(container), (HELLO / "instruction.md").read_text(), tmp_path, time.monotonic() + 60, HELLO)
    return res, [t for t in read_trace(tmp_path / "trace.jsonl") if "turn" in t]


def cut(text: str) -> dict:
    return {"content": text, "finish_reason": "length"}


def test_cut_off_replies_run_nothing_unless_an_action_closed(box, tmp_path):  # noqa: F811
    box.exec_run(["sh", "-c", "mkdir -p /app && rm -rf /app/run.sh /tmp/after"])
    after = '{"analysis": "a", "plan": "b", "commands": [{"keystrokes": "echo fine > /tmp/after\\n", "duration": 1}]}'
    script = [cut(HEREDOC_CUT), cut(DURATION_CUT), cut(COMPLETE_THEN_CUT), after, DONE, DONE]
    with ScriptedServer(script) as srv:
        res, turns = _run(srv, box, tmp_path, max_tokens=300)
    assert res.stop is AgentStop.COMPLETED, res.error
    assert (res.turns, res.cut_off, res.parse_fail, res.no_cmd) == (6, 3, 0, 0)
    assert [t["cut_off"] for t in turns] == ["dropped", "dropped", "salvaged", None, None, None]
    # heredoc opener and the duration cut mid-number: nothing typed, nothing waited for
    assert turns[0]["commands"] == [] and turns[1]["commands"] == []
    assert box.exec_run(["test", "-e", "/app/run.sh"]).exit_code != 0
    # the complete object before the cut ran; the cut second object did not
    assert [c["keystrokes"] for c in turns[2]["commands"]] == ["ls /app\n"]
    # the shell was never left inside a here-doc: the next command ran normally
    assert box.exec_run(["cat", "/tmp/after"]).output == b"fine\n"
    for t in turns[:2]:
        assert "cut off at the token limit (300 tokens)" in t["next_message"]
        assert "NONE of its commands were run" in t["next_message"] and "shorter" in t["next_message"]
    assert "Only the commands of the complete JSON object" in turns[2]["next_message"]
    # what the model saw next is what the trace says
    assert srv.requests[1]["body"]["messages"][-1]["content"] == turns[0]["next_message"]


def test_commands_without_newlines_are_warned_about(box, tmp_path):  # noqa: F811
    box.exec_run(["sh", "-c", "rm -rf /tmp/nl"])
    glued = ('{"analysis": "Make a dir and a file.", "plan": "mkdir then touch.", "commands": ['
             '{"keystrokes": "mkdir -p /tmp/nl", "duration": 0.3}, {"keystrokes": "touch /tmp/nl/x", "duration": 0.3}],'
             ' "task_complete": false}')
    with ScriptedServer([glued, DONE, DONE]) as srv:
        res, turns = _run(srv, box, tmp_path)
    assert res.stop is AgentStop.COMPLETED
    # executed exactly as written: typed onto one prompt line, never run
    assert [c["keystrokes"] for c in turns[0]["commands"]] == ["mkdir -p /tmp/nl", "touch /tmp/nl/x"]
    assert box.exec_run(["test", "-e", "/tmp/nl"]).exit_code != 0
    seen = srv.requests[1]["body"]["messages"][-1]["content"]
    assert "Previous response had warnings" in seen
    assert "command 1 should end with \\n when followed by another command" in seen
    assert "command 2 does not end with \\n" in seen
    assert "mkdir -p /tmp/nltouch /tmp/nl/x" in seen  # the screen shows the glued line too
