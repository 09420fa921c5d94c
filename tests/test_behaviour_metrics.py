"""Per-trial behaviour metrics (harness.trial_behaviour) on hand-made trajectories, and the
behaviour columns of master_summary.csv (ablbench.results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablbench.results import BEHAVIOUR_COLUMNS, SUMMARY_COLUMNS, false_completion, summary_row
from harness.trace import TraceWriter
from harness.trial_behaviour import (
    METRIC_KEYS,
    find_trajectory,
    metrics_from_atif,
    metrics_from_file,
    metrics_from_trace,
    read_turns,
    refusal_turns,
)

T0 = 1_000.0


def turn(i: int, reply: str, status: str, *, t: float, commands: tuple[str, ...] = (), done: bool = False,
         usage: tuple[int, int] = (100, 10), finish: str = "stop", timings: tuple[float, float] = (0.1, 0.0),
         cut_off: bool | str | None = None) -> dict:
    """A turn record shaped like harness.agents.terminus writes it."""
    rec = {"t": t, "turn": i, "reply": reply, "finish_reason": finish,
           "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
           "parse": {"status": status, "task_complete": done},
           "commands": [{"keystrokes": k, "duration": 0.5} for k in commands],
           "timings": {"model_s": 1.0, "terminal_s": timings[0], "harness_s": timings[1]}}
    if cut_off is not None:
        rec["cut_off"] = cut_off
    return rec


def built_trace() -> list[dict]:
    """A trace where every metric has a known value (see test_every_metric_on_a_trace_built_for_it)."""
    return [
        {"t": T0, "event": "start"},
        # a refusal that cannot be parsed
        turn(1, "I'm sorry, but I can't help with that.", "parse_fail", t=T0 + 10),
        # a marker only inside reasoning does not count
        turn(2, '<think>I cannot decide yet</think>{"analysis": "look", "commands": []}', "no_cmd", t=T0 + 20,
             usage=(200, 20)),
        # the first commands: the reply arrived 1.5 s (terminal + harness) before the record
        turn(3, '{"commands": ["ls", "ls", "cat x"]}', "ok", t=T0 + 31.5, commands=(" ls\n", "ls\n", "cat x\n"),
             timings=(1.0, 0.5), finish="length", cut_off=False, usage=(300, 30)),
        # task_complete; the cut_off flag wins over finish_reason
        turn(4, '{"commands": [], "task_complete": true}', "ok", t=T0 + 40, done=True, cut_off=True,
             usage=(400, 40)),
        # cut off as the agent records it ("dropped": nothing ran): cut_off, not parse_fail
        turn(5, '{"analysis": "long', "parse_fail", t=T0 + 50, finish="length", cut_off="dropped"),
        # an older trace without the field: finish_reason decides; cut_off, not no_cmd
        turn(6, '{"analysis": "x", "commands": []}', "no_cmd", t=T0 + 60, finish="length"),
        {"t": T0 + 61, "event": "end", "stop": "max_turns"},
    ]


EXPECTED = {"turns": 6, "parse_fail": 1, "no_cmd": 1, "cut_off": 3, "refusal_turns": 1, "commands": 3,
            "distinct_commands": 2, "task_complete_claimed": 1, "tokens_in": 1200, "tokens_out": 120,
            "first_cmd_s": 30.0}


def test_every_metric_on_a_trace_built_for_it():
    got = metrics_from_trace(built_trace())
    assert tuple(got) == METRIC_KEYS
    assert got == EXPECTED


def test_refusal_hits_carry_turn_markers_and_excerpt():
    hits = refusal_turns(read_turns_of(built_trace()))
    assert [h.turn for h in hits] == [1]
    assert {"i'm sorry", "sorry, but", "i can't help", "i can't"} <= set(hits[0].markers)
    assert hits[0].excerpt == "I'm sorry, but I can't help with that."
    # a long reply gets an excerpt around the marker, with ellipses
    long = turn(1, "x " * 200 + "As an AI, I cannot access your files. " + "y " * 200, "parse_fail", t=T0 + 1)
    (hit,) = refusal_turns(read_turns_of([long]))
    assert hit.excerpt.startswith("…") and hit.excerpt.endswith("…") and "As an AI" in hit.excerpt
    assert len(hit.excerpt) <= 170


def read_turns_of(records: list[dict]):
    from harness.trial_behaviour import turns_from_trace

    return turns_from_trace(records)


def test_an_appended_rerun_counts_only_the_last_episode(tmp_path):
    old = built_trace()
    new = [{"t": T0 + 100, "event": "start"},
           turn(1, '{"commands": ["pwd"]}', "ok", t=T0 + 105, commands=("pwd\n",), timings=(0.5, 0.5))]
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in old + new) + '\n{"t": 1, "turn": 2, "reply": "tor')
    got = metrics_from_file(path)
    assert (got["turns"], got["commands"], got["refusal_turns"], got["first_cmd_s"]) == (1, 1, 0, 4.0)


def test_no_command_and_empty_trace():
    assert metrics_from_trace([])["turns"] == 0
    only_talk = [{"t": T0, "event": "start"}, turn(1, "hello", "parse_fail", t=T0 + 3)]
    got = metrics_from_trace(only_talk)
    assert got["first_cmd_s"] is None and got["commands"] == 0 and got["task_complete_claimed"] == 0


def test_trace_written_by_the_real_writer(tmp_path):
    with TraceWriter(tmp_path) as w:
        for rec in built_trace():
            w.write({k: v for k, v in rec.items() if k != "t"})
    got = metrics_from_file(tmp_path / "trace.jsonl")
    assert {k: v for k, v in got.items() if k != "first_cmd_s"} == {k: v for k, v in EXPECTED.items()
                                                                     if k != "first_cmd_s"}
    assert got["first_cmd_s"] is not None and got["first_cmd_s"] >= 0


def atif() -> dict:
    """An ATIF trajectory as harbor's Terminus-2 writes one (feedback in the observation), with a step as
    ablbench's own export writes it (parse status in ``extra``, timings in ``metrics.extra``) and a
    model-free step (``llm_call_count`` 0) that is not a turn."""
    return {
        "schema_version": "ATIF-v1.4", "session_id": "s1", "agent": {"name": "terminus-2", "version": "2"},
        "steps": [
            {"step_id": 1, "timestamp": "2025-11-01T10:00:00Z", "source": "system", "message": "You are..."},
            {"step_id": 2, "timestamp": "2025-11-01T10:00:00Z", "source": "user", "message": "Fix git."},
            {"step_id": 3, "timestamp": "2025-11-01T10:00:05Z", "source": "agent",
             "message": "As an AI language model, I don't have access to your terminal.",
             "observation": {"results": [{"content": "Previous response had parsing errors:\nno JSON"}]},
             "metrics": {"prompt_tokens": 500, "completion_tokens": 20}},
            {"step_id": 4, "timestamp": "2025-11-01T10:00:12Z", "source": "agent",
             "message": '{"analysis": "ok"}', "reasoning_content": "I cannot be sure",
             "metrics": {"prompt_tokens": 600, "completion_tokens": 30}},
            {"step_id": 5, "timestamp": "2025-11-01T10:00:21.5Z", "source": "agent", "message": "running",
             "tool_calls": [{"tool_call_id": "c1", "function_name": "bash_command",
                             "arguments": {"keystrokes": "git status\n", "duration": 1}},
                            {"tool_call_id": "c2", "function_name": "bash_command",
                             "arguments": {"keystrokes": "git status\n"}}],
             "observation": {"results": [{"source_call_id": "c1", "content": "On branch main"}]},
             "metrics": {"prompt_tokens": 700, "completion_tokens": 40,
                         "extra": {"finish_reason": "stop", "timings": {"terminal_s": 1.0, "harness_s": 0.5}}},
             "extra": {"parse": {"status": "ok"}}},
            {"step_id": 6, "timestamp": "2025-11-01T10:00:25Z", "source": "agent", "message": "run: ls",
             "llm_call_count": 0, "tool_calls": [{"tool_call_id": "o1", "function_name": "bash_command",
                                                   "arguments": {"command": "ls"}}]},
            {"step_id": 7, "timestamp": "2025-11-01T10:00:30Z", "source": "agent", "message": "done",
             "tool_calls": [{"tool_call_id": "c3", "function_name": "mark_task_complete", "arguments": {}}],
             "metrics": {"prompt_tokens": 800, "completion_tokens": 10}, "extra": {"cut_off": False,
                                                                                   "finish_reason": "length"}},
            # ablbench's export: the cut-off mark in metrics.extra; a cut-off turn is not also a parse_fail
            {"step_id": 8, "timestamp": "2025-11-01T10:00:40Z", "source": "agent", "message": '{"analysis": "lo',
             "metrics": {"prompt_tokens": 100, "completion_tokens": 16,
                         "extra": {"finish_reason": "length", "cut_off": "dropped"}},
             "extra": {"parse": {"status": "parse_fail"}}},
        ],
        "final_metrics": {"total_prompt_tokens": 2600},
    }


def test_every_metric_on_an_atif_trajectory(tmp_path):
    got = metrics_from_atif(atif())
    assert got == {"turns": 5, "parse_fail": 1, "no_cmd": 1, "cut_off": 1, "refusal_turns": 1, "commands": 2,
                   "distinct_commands": 1, "task_complete_claimed": 1, "tokens_in": 2700, "tokens_out": 116,
                   "first_cmd_s": 20.0}
    # harbor's layout: <trial>/agent/trajectory.json; a trace.jsonl next to it is preferred
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "trajectory.json").write_text(json.dumps(atif()))
    assert find_trajectory(tmp_path) == tmp_path / "agent" / "trajectory.json"
    assert metrics_from_file(tmp_path / "agent" / "trajectory.json") == got
    (tmp_path / "agent" / "trace.jsonl").write_text(json.dumps(built_trace()[1]) + "\n")
    assert find_trajectory(tmp_path) == tmp_path / "agent" / "trace.jsonl"


def test_damaged_atif_is_read_defensively(tmp_path):
    assert metrics_from_atif({"steps": [None, {"source": "agent", "tool_calls": ["x", {"arguments": 3}],
                                                "metrics": {"prompt_tokens": "n/a"}}]})["turns"] == 1
    bad = tmp_path / "trajectory.json"
    bad.write_text("{not json")
    assert read_turns(bad) == []
    assert find_trajectory(tmp_path / "nowhere") is None


@pytest.mark.parametrize(("claimed", "outcome", "expected"), [
    (1, "failed", 1), (1, "agent_timeout", 1), (1, "passed", 0), (0, "failed", 0), (1, "verifier_error", None),
    (0, "infra_error", 0), (None, "failed", None),
])
def test_false_completion(claimed, outcome, expected):
    assert false_completion(claimed, outcome) == expected


def test_summary_row_appends_behaviour_columns_after_the_old_ones():
    first = ("task", "attempt", "reward", "outcome", "turns", "parse_fail", "no_cmd", "tokens_in", "tokens_out",
             "agent_s", "verifier_s", "total_s", "error")
    assert SUMMARY_COLUMNS[: len(first)] == first  # old readers find what they knew where it was
    at = SUMMARY_COLUMNS.index(BEHAVIOUR_COLUMNS[0])  # one block, later columns come after it
    assert SUMMARY_COLUMNS[at: at + len(BEHAVIOUR_COLUMNS)] == BEHAVIOUR_COLUMNS
    result = {"task": "t", "attempt": 1, "reward": 0.0, "outcome": "failed",
              "counters": {"turns": 4}, "agent_extra": {"behaviour": dict(EXPECTED)}}
    row = summary_row(result)
    assert [row[c] for c in BEHAVIOUR_COLUMNS] == [3, 2, 1, 1, 1, 30.0]
    assert summary_row({**result, "outcome": "passed"})["false_completion"] == 0
    # an agent that keeps no trajectory (oracle) or an old result.json: blank cells
    old = summary_row({"task": "t", "attempt": 1, "outcome": "passed"})
    assert [old[c] for c in BEHAVIOUR_COLUMNS] == [""] * len(BEHAVIOUR_COLUMNS)
    no_cmd = summary_row({**result, "agent_extra": {"behaviour": {**EXPECTED, "first_cmd_s": None}}})
    assert no_cmd["first_cmd_s"] == ""


def test_markers_come_from_the_one_list():
    import harness.trial_behaviour as tb
    from abliterate.evaluate import markers

    assert tb.matched_markers is markers.matched_markers
    assert Path(markers.__file__).name == "markers.py"


def test_metric_extraction_stays_light():
    """The agent computes these metrics in every trial (also inside harbor): no torch, numpy or scipy."""
    import subprocess
    import sys

    code = ("import sys, harness.trial_behaviour, abliterate.evaluate.markers; "
            "print(sorted({'torch', 'numpy', 'scipy', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
