"""Sampling seeds: one per (run seed, task, attempt, turn), the same across models; servers that
reject ``seed`` still work. Real runs of the bundled hello-world task against scripted servers."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from cli_helpers import CliRunner
from test_agent_scripted_server import ScriptedServer

from harness.cli import app
from harness.llm_client import LLMClient
from harness.llm_types import SamplingParams
from harness.seeds import request_seed
from harness.trace import read_trace

WRITE = ('{"analysis": "Nothing yet.", "plan": "Write the file.", "commands": [{"keystrokes": '
         '"printf \'Hello, world!\\\\n\' > /app/hello.txt\\n", "duration": 1}], "task_complete": false}')
DONE = '{"analysis": "Done.", "plan": "Finish.", "commands": [], "task_complete": true}'
REJECT = {"status": 400, "error": "Unrecognized request argument supplied: seed"}


def solve(body: dict) -> str:
    return WRITE if len(body["messages"]) <= 2 else DONE


def rejecting(body: dict) -> str | dict:
    return REJECT if "seed" in body else solve(body)


def test_the_seed_rule_is_the_documented_hash():
    raw = b"ablbench-seed-v1|7|fix-git|2|3"
    assert request_seed(7, "fix-git", 2, 3) == int.from_bytes(hashlib.sha256(raw).digest()[:4], "big") & 0x7FFFFFFF
    seeds = {request_seed(0, "t", a, turn) for a in range(1, 6) for turn in range(1, 21)}
    assert len(seeds) == 100 and all(0 <= s < 2**31 for s in seeds)
    assert request_seed(0, "t", 1, 1) != request_seed(1, "t", 1, 1) != request_seed(0, "u", 1, 1)


def test_client_drops_a_rejected_seed_once():
    with ScriptedServer([rejecting]) as srv:
        client = LLMClient(srv.base_url, "scripted", max_retries=0)
        first = client.chat([{"role": "user", "content": "a"}], SamplingParams(max_tokens=5, seed=11))
        second = client.chat([{"role": "user", "content": "b"}], SamplingParams(max_tokens=5, seed=12))
        assert first.content == WRITE and (first.seed_sent, second.seed_sent) == (False, False)
        assert client.seed_supported is False and first.retries == 0
        assert ["seed" in r["body"] for r in srv.requests] == [True, False, False]  # one retry, then never again
        assert LLMClient(srv.base_url, "scripted").probe_seed() is False
    with ScriptedServer([solve]) as srv:
        client = LLMClient(srv.base_url, "scripted")
        assert client.probe_seed() is True
        assert client.chat([{"role": "user", "content": "a"}], SamplingParams(seed=5)).seed_sent
        assert srv.requests[-1]["body"]["seed"] == 5


def _run(srv: ScriptedServer, out: Path, *extra: str) -> dict:
    res = CliRunner().invoke(app, ["run", "--include", "hello-world", "--model-url", srv.base_url, "--model", "scripted",
                                   "--agent", "terminus", "--out", str(out), "--quiet", *extra], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return json.loads((out / "run.json").read_text())


def _trace_seeds(out: Path) -> dict[tuple[int, int], tuple[int, bool]]:
    """(attempt, turn) -> (seed, seed_sent) from every trace.jsonl of a run."""
    found = {}
    for path in out.glob("hello-world/*/trace.jsonl"):
        for t in read_trace(path):
            if "turn" in t:
                found[(int(path.parent.name), t["turn"])] = (t["seed"], t["seed_sent"])
    return found


def _server_seeds(srv: ScriptedServer) -> list[int]:
    return sorted(r["body"]["seed"] for r in srv.requests if "seed" in r["body"] and len(r["body"]["messages"]) > 1)


@pytest.mark.docker
def test_attempts_differ_and_models_share_seeds(base_image, tmp_path):
    runs = {}
    for model in ("base", "edited"):
        with ScriptedServer([solve]) as srv:
            meta = _run(srv, tmp_path / model, "-k", "3", "-n", "2", "--seed", "7")
            runs[model] = (_trace_seeds(tmp_path / model), _server_seeds(srv), meta)
    base, edited = runs["base"][0], runs["edited"][0]
    assert sorted(base) == [(a, t) for a in (1, 2, 3) for t in (1, 2, 3)]  # write, done, confirm
    # three attempts, three different seeds (at every turn)
    for turn in (1, 2, 3):
        assert len({base[(a, turn)][0] for a in (1, 2, 3)}) == 3
    # base and edited: the same seed for the same (task, attempt, turn), and it is the rule's
    assert base == edited
    assert all(seed == request_seed(7, "hello-world", a, t) and sent for (a, t), (seed, sent) in base.items())
    # what the servers received is what the traces say
    assert runs["base"][1] == runs["edited"][1] == sorted(s for s, _ in base.values())
    agent = runs["base"][2]["agent"]
    assert agent["seed"] == 7 and agent["seed_supported"] is True and "sha256" in agent["seed_rule"]
    with (tmp_path / "base" / "master_summary.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(row["cut_off"] == "0" for row in rows)


@pytest.mark.docker
def test_a_server_that_rejects_seed_still_works(base_image, tmp_path):
    with ScriptedServer([rejecting]) as srv:
        meta = _run(srv, tmp_path / "out", "--seed", "3")
        sent = [r["body"].get("seed") for r in srv.requests]
    result = json.loads((tmp_path / "out" / "hello-world" / "1" / "result.json").read_text())
    assert result["outcome"] == "passed", result["error"]
    assert meta["agent"]["seed_supported"] is False and meta["agent"]["send_seed"] is False
    assert sent[0] == 0 and all(s is None for s in sent[1:])  # only the start-up probe carried one
    traced = _trace_seeds(tmp_path / "out")
    assert traced and all(seed == request_seed(3, "hello-world", 1, t) and not was_sent
                          for (_a, t), (seed, was_sent) in traced.items())
    assert "seed_rejected" not in result["agent_extra"]  # the run knew from its probe: no mid-run rejection
