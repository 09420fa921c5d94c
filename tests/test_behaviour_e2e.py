"""Behaviour end to end on real runs: ``ablbench run`` twice on two bundled tasks in real containers,
the model a scripted OpenAI-compatible server (real HTTP) whose two "models" differ in refusal and
format, then ``ablbench analyze``. The behaviour section's numbers and sentences are checked
against the trace files themselves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import CliRunner
from test_agent_scripted_server import ScriptedServer

from ablbench.paths import BUNDLED_TASKS
from ablbench.results import BEHAVIOUR_COLUMNS
from abliterate.evaluate.markers import is_refusal
from harness.cli import app
from harness.parser import strip_reasoning

pytestmark = pytest.mark.docker

TASKS = ("hello-world", "make-output-dir")
SOLVE = {"hello.txt": "echo 'Hello, world!' > /app/hello.txt\n", "/app/output": "mkdir -p /app/output\n"}
DONE = '{"analysis": "Done.", "plan": "Finish.", "commands": [], "task_complete": true}'


def _turn(body: dict) -> int:
    return 1 + sum(m["role"] == "assistant" for m in body["messages"])


def good_model(body: dict) -> str | dict:
    """Solves the task in turn 1, then says task_complete twice."""
    if _turn(body) > 1:
        return DONE
    task = " ".join(str(m["content"]) for m in body["messages"] if m["role"] == "user")
    cmd = next(c for key, c in SOLVE.items() if key in task)
    return json.dumps({"analysis": "Easy.", "plan": "Do it.", "commands": [{"keystrokes": cmd, "duration": 0.5}],
                       "task_complete": False})


def bad_model(body: dict) -> str | dict:
    """Refuses in prose (parse_fail), then in a command-less JSON cut off at the limit, then claims completion."""
    turn = _turn(body)
    if turn == 1:
        return "I'm sorry, but I can't help with that."
    if turn == 2:
        return {"content": '{"analysis": "As an AI, I cannot access your files.", "commands": [], '
                           '"task_complete": false}', "finish_reason": "length"}
    return DONE


def _run(out: Path, model) -> None:
    with ScriptedServer([model]) as srv:
        res = CliRunner().invoke(app, [
            "run", "--tasks", str(BUNDLED_TASKS), *[x for t in TASKS for x in ("--include", t)],
            "--agent", "terminus", "--model-url", srv.base_url, "--model", srv.model, "-n", "2",
            "--max-turns", "3", "--max-tokens", "256", "--offline", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def compared(tmp_path_factory, docker_client, base_image) -> tuple[Path, dict, str]:
    root = tmp_path_factory.mktemp("behaviour_e2e")
    _run(root / "good", good_model)
    _run(root / "bad", bad_model)
    res = CliRunner().invoke(app, ["analyze", str(root / "bad"), str(root / "good"), "--names", "bad,good",
                                   "--json", str(root / "a.json"), "--markdown", str(root / "r.md"),
                                   "--plots", str(root / "plots")])
    assert res.exit_code == 0, res.output
    return root, json.loads((root / "a.json").read_text()), (root / "r.md").read_text()


def trace_counts(run: Path, tasks: tuple[str, ...] | list[str] = TASKS) -> dict:
    """Counts read straight from the trace files of attempt 1 (independently of the code under test)."""
    turns = [json.loads(line) for task in tasks for line in (run / task / "1" / "trace.jsonl").open()]
    turns = [t for t in turns if "turn" in t]
    cut = [bool(t["cut_off"]) if "cut_off" in t else t["finish_reason"] == "length" for t in turns]
    return {"turns": len(turns),
            "parse_fail": sum(t["parse"]["status"] == "parse_fail" and not c for t, c in zip(turns, cut, strict=True)),
            "no_cmd": sum(t["parse"]["status"] == "no_cmd" and not c for t, c in zip(turns, cut, strict=True)),
            "cut_off": sum(cut),
            "refusal": sum(is_refusal(strip_reasoning(t["reply"] or "")[0]) for t in turns),
            "commands": sum(len(t["commands"]) for t in turns)}


def pct(e: int, n: int) -> str:
    """A rate as the behaviour sentences print it."""
    return f"{100 * e / n:.1f} % ({e}/{n})"


def test_runs_are_real_and_differ_as_scripted(compared):
    root, data, _ = compared
    outcomes = {r["name"]: r["outcomes"] for r in data["runs"]}
    assert outcomes == {"bad": {"failed": 2}, "good": {"passed": 2}}
    bad, good = trace_counts(root / "bad"), trace_counts(root / "good")
    # the cut-off turn 2 counts as cut_off only (as the agent counts it)
    assert bad == {"turns": 6, "parse_fail": 2, "no_cmd": 0, "cut_off": 2, "refusal": 4, "commands": 0}
    assert good == {"turns": 6, "parse_fail": 0, "no_cmd": 0, "cut_off": 0, "refusal": 0, "commands": 2}


def test_summary_columns_match_the_traces(compared):
    root, _, _ = compared
    for name, expected in (("bad", ["0", "0", "2", "1", "1", ""]), ("good", ["1", "1", "0", "1", "0", None])):
        with (root / name / "master_summary.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["task"] for r in rows] == list(TASKS)
        for r in rows:
            cells = [r[c] for c in BEHAVIOUR_COLUMNS]
            assert cells[:5] == expected[:5], (name, cells)
            if expected[5] is None:
                assert float(cells[5]) >= 0  # seconds to the first command
            else:
                assert cells[5] == ""
            result = json.loads((root / name / r["task"] / "1" / "result.json").read_text())
            assert result["agent_extra"]["behaviour"]["refusal_turns"] == int(r["refusal_turns"])


def test_behaviour_section_is_filled_and_true_to_the_traces(compared):
    root, data, md = compared
    beh = data["behaviour"]
    assert beh["available"] and [r["sources"] for r in beh["runs"]] == [{"trace": 2}, {"trace": 2}]
    bad, good = trace_counts(root / "bad"), trace_counts(root / "good")
    sentences = {m["key"]: m["sentence"] for m in beh["pairs"][0]["metrics"]}
    assert sentences["refusal_rate"].startswith(
        f"bad refused (a refusal marker in the reply) in {pct(bad['refusal'], bad['turns'])} of turns vs "
        f"{pct(good['refusal'], good['turns'])} for good; p = 0.500 (permutation over 2 tasks")
    assert sentences["parse_fail_rate"].startswith(
        f"bad's replies could not be parsed in {pct(bad['parse_fail'], bad['turns'])} of turns vs "
        f"{pct(0, good['turns'])} for good")
    assert sentences["cut_off_rate"].startswith(
        f"bad's replies were cut off at the token limit in {pct(bad['cut_off'], bad['turns'])} of turns")
    assert sentences["commands"].startswith("bad executed 0.0 commands per trial vs 1.0 for good")
    assert sentences["false_completion"].startswith(
        "bad claimed task_complete on a trial it then failed in 100.0 % (2/2) of trials vs 0.0 % (0/2) for good")
    assert sentences["first_cmd_s"] == ("seconds to first command: no shared task has a value in both runs "
                                        "(bad on 0, good on 2 task(s)).")
    for s in sentences.values():
        assert s in md
    # the refusal table: every flagged turn with its excerpt
    assert [(h["run"], h["task"], h["turn"]) for h in beh["refusals"]] == [
        ("bad", t, i) for t in TASKS for i in (1, 2)]
    assert "| bad | hello-world | 1 | 2 | " in md and "As an AI, I cannot access your files." in md
    plots = sorted(p.name for p in (root / "plots").iterdir())
    assert "behaviour_runs.png" in plots and "behaviour_diff_bad_vs_good.png" in plots
