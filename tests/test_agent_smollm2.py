"""The bundled SmolLM2-135M-Instruct, served by ``transformers serve``, plays the agent.

Whatever such a small model replies, the loop must end cleanly and its counters must agree
with the trace and the server's token accounting.
"""

from __future__ import annotations

import time

import pytest

from ablbench.agent_api import AgentStop
from harness.agents.terminus import AgentConfig, TerminusAgent
from harness.llm_client import LLMClient
from harness.trace import read_trace
from runners.environment import TaskEnvironment

pytestmark = [pytest.mark.docker, pytest.mark.model, pytest.mark.slow]


def test_smollm2_plays_three_turns(smollm2_dir, container, tmp_path):
    from runners.servers import make_server

    with make_server("transformers", smollm2_dir) as server:
        client = LLMClient(server.base_url, server.model_name, max_retries=1, timeout_s=300)
        agent = TerminusAgent(client, AgentConfig(max_turns=3, max_tokens=32, max_parse_failures=3))
        res = agent.run(TaskEnvironment.attach(container), "Create a file /app/hello.txt containing the line `Hello, world!`.",
                        tmp_path, time.monotonic() + 400, tmp_path)
    trace = read_trace(tmp_path / "trace.jsonl")
    turns = [t for t in trace if "turn" in t]
    assert res.stop in (AgentStop.MAX_TURNS, AgentStop.COMPLETED, AgentStop.PARSE_FAIL_EXHAUSTED), res.error
    assert res.error is None or res.stop is AgentStop.PARSE_FAIL_EXHAUSTED
    assert res.turns == len(turns) and 1 <= res.turns <= 3
    if res.stop is AgentStop.MAX_TURNS:
        assert res.turns == 3
    # a reply cut at the token limit counts as cut_off, not as parse_fail/no_cmd (parser rule 8)
    statuses = [t["parse"]["status"] for t in turns if not t.get("cut_off")]
    assert res.parse_fail == statuses.count("parse_fail")
    assert res.no_cmd == statuses.count("no_cmd")
    assert res.cut_off == sum(1 for t in turns if t.get("cut_off"))
    assert res.tokens_in == sum(t["usage"]["prompt_tokens"] for t in turns) > 0
    assert res.tokens_out == sum(t["usage"]["completion_tokens"] for t in turns) > 0
    assert all(t["usage"]["completion_tokens"] <= 32 for t in turns)
    assert all(t["reply"] is not None and t["timings"]["model_s"] > 0 for t in turns)
    assert trace[-1]["event"] == "end" and trace[-1]["counters"]["turns"] == res.turns
