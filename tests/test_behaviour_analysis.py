"""The behaviour section of ``ablbench analyze`` on hand-made results folders with real trace files:
per-run metrics, paired tests and their sentences, the refusal table, the judge, plots, and the
other sources (summary columns only, old summaries, harbor ATIF trajectories)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import CliRunner
from matplotlib.image import imread
from md_tables import assert_rows_match_headers
from test_agent_scripted_server import ScriptedServer
from test_behaviour_metrics import atif, turn

from ablbench.results import write_json_atomic, write_summary
from harness.analysis import analyze, load_run
from harness.analysis.behaviour import METRICS
from harness.analysis.report import to_json, to_markdown
from harness.cli import app
from harness.trial_behaviour import metrics_from_trace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIXTURES = Path(__file__).parent / "fixtures" / "analysis"
T0 = 5_000.0
REFUSE = "I'm sorry, but as an AI I cannot run commands on your system."
WORK = '{"analysis": "go", "commands": [{"keystrokes": "make\\n"}], "task_complete": false}'
DONE = '{"analysis": "done", "commands": [], "task_complete": true}'


def _trace(kind: str, n_turns: int) -> list[dict]:
    """``kind`` "works": a command every turn, then task_complete; "refuses": refusals, one command."""
    recs: list[dict] = [{"t": T0, "event": "start"}]
    for i in range(1, n_turns + 1):
        t = T0 + 10 * i
        if kind == "works":
            last = i == n_turns
            recs.append(turn(i, DONE if last else WORK, "ok", t=t, done=last,
                             commands=() if last else (f"step {i}\n",)))
        elif i == n_turns:
            recs.append(turn(i, WORK, "ok", t=t, commands=("make\n",), finish="length"))
        else:
            recs.append(turn(i, REFUSE, "parse_fail", t=t))
    return recs


def _write_run(folder: Path, name: str, plan: dict[str, tuple[str, int, str]], *, summary_behaviour: bool = True) -> Path:
    """A results folder: per task (kind, turns, outcome) a trace.jsonl and result.json, then the summary."""
    results = []
    for task, (kind, n, outcome) in plan.items():
        recs = _trace(kind, n)
        d = folder / task / "1"
        d.mkdir(parents=True)
        (d / "trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        m = metrics_from_trace(recs)
        result = {"task": task, "attempt": 1, "finished": True, "outcome": outcome,
                  "reward": 1.0 if outcome == "passed" else 0.0,
                  "counters": {k: m[k] for k in ("turns", "parse_fail", "no_cmd", "cut_off", "tokens_in",
                                                 "tokens_out")},
                  "agent_extra": {"behaviour": m} if summary_behaviour else {}}
        write_json_atomic(d / "result.json", result)
        results.append(result)
    write_summary(folder, results)
    write_json_atomic(folder / "run.json", {"name": name})
    return folder


PLAN_ABL = {"t1": ("works", 3, "passed"), "t2": ("works", 4, "failed"), "t3": ("works", 2, "passed"),
            "t4": ("works", 5, "failed"), "t5": ("works", 2, "infra_error")}
PLAN_BASE = {"t1": ("refuses", 3, "failed"), "t2": ("refuses", 2, "failed"), "t3": ("refuses", 6, "failed"),
             "t4": ("works", 5, "failed"), "t5": ("works", 2, "passed")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("beh")
    return (_write_run(root / "abl", "abl", PLAN_ABL), _write_run(root / "base", "base", PLAN_BASE,
                                                                  summary_behaviour=False))


@pytest.fixture(scope="module")
def result(runs) -> dict:
    return analyze([load_run(p) for p in runs])


def _pair_metric(res: dict, key: str) -> dict:
    return next(m for m in res["behaviour"]["pairs"][0]["metrics"] if m["key"] == key)


def test_per_run_metrics_from_the_traces(result):
    beh = result["behaviour"]
    abl, base = beh["runs"]
    assert beh["available"] and (abl["name"], base["name"]) == ("abl", "base")
    # t5 of abl is an infra_error: left out
    assert (abl["trials"], abl["with_behaviour"], abl["excluded_infra_error"]) == (5, 4, 1)
    assert abl["sources"] == {"trace": 4} and base["sources"] == {"trace": 5}
    # base refuses in every turn but the last of t1-t3: 2 + 1 + 5 = 8 of 3 + 2 + 6 + 5 + 2 = 18 turns
    assert (base["metrics"]["refusal_rate"]["events"], base["metrics"]["refusal_rate"]["turns"]) == (8, 18)
    assert abl["metrics"]["refusal_rate"]["pooled"] == 0.0
    assert abl["metrics"]["turns"]["mean"] == pytest.approx((3 + 4 + 2 + 5) / 4)
    # abl claimed completion on all four, failed t2 and t4: false completion 2 of 4
    assert abl["metrics"]["false_completion"]["mean"] == pytest.approx(0.5)
    assert base["metrics"]["first_cmd_s"]["n"] == 5


def test_paired_tests_and_sentences_are_true_to_the_traces(result):
    pair = result["behaviour"]["pairs"][0]
    assert (pair["a"], pair["b"], pair["n_tasks"]) == ("abl", "base", 4)
    assert [m["key"] for m in pair["metrics"]] == [m.key for m in METRICS]
    refusal = _pair_metric(result, "refusal_rate")
    # shared tasks t1-t4 (t5 is an infra_error in abl): base 8 refusals in 3 + 2 + 6 + 5 = 16 turns
    assert refusal["pooled"]["events_a"] == 0 and refusal["pooled"]["turns_a"] == 14
    assert (refusal["pooled"]["events_b"], refusal["pooled"]["turns_b"]) == (8, 16)
    assert refusal["per_task_diff"] == pytest.approx({"t1": -2 / 3, "t2": -1 / 2, "t3": -5 / 6, "t4": 0.0})
    assert refusal["wilcoxon_nonzero"] == 3 and refusal["wilcoxon_p"] == pytest.approx(0.25)
    assert refusal["rank_biserial"] == -1.0
    assert refusal["pooled"]["p"] == pytest.approx(4 / 16)  # exact: 2^4 task swaps, only t4 changes nothing
    assert refusal["sentence"].startswith(
        "abl refused (a refusal marker in the reply) in 0.0 % (0/14) of turns vs 50.0 % (8/16) for base; "
        "p = 0.250 (permutation over 4 tasks, Holm ")
    assert refusal["sentence"].endswith("not a significant difference.")
    for m in pair["metrics"]:
        assert m["wilcoxon_holm_p"] >= m["wilcoxon_p"] - 1e-12
        assert m["sentence"].count(".") >= 1 and "\n" not in m["sentence"]
    commands = _pair_metric(result, "commands")
    # abl runs n-1 commands per trial: 2, 3, 1, 4; base one command on t1-t3 and 4 on t4
    assert (commands["mean_a"], commands["mean_b"]) == (2.5, 1.75)
    assert commands["sentence"].startswith("abl executed 2.5 commands per trial vs 1.8 for base; p = ")
    fc = _pair_metric(result, "false_completion")
    # base "works" only on t4, which it failed after claiming completion
    assert fc["sentence"].startswith("abl claimed task_complete on a trial it then failed in 50.0 % (2/4) of "
                                     "trials vs 25.0 % (1/4) for base; p = 1.000 (Wilcoxon")
    changes = pair["outcome_changes"]
    assert changes["same"] == 2 and [c["task"] for c in changes["changed"]] == ["t1", "t3"]


def test_refusal_table_lists_every_flagged_turn(result):
    hits = result["behaviour"]["refusals"]
    assert [(h["run"], h["task"], h["turn"]) for h in hits] == [
        ("base", "t1", 1), ("base", "t1", 2), ("base", "t2", 1)] + [("base", "t3", i) for i in range(1, 6)]
    assert hits[0]["excerpt"] == REFUSE and "i'm sorry" in hits[0]["markers"]


def test_markdown_and_json_carry_a_separate_behaviour_section(result):
    md = to_markdown(result)
    section = md[md.index("## Behaviour in the trajectories"):]
    assert "abl refused (a refusal marker in the reply) in 0.0 % (0/14) of turns" in section
    assert "### Turns with a refusal marker" in section and "| base | t3 | 1 | 5 |" in section
    assert "--judge URL MODEL" in section
    assert_rows_match_headers(section)
    data = json.loads(to_json(result))
    json.dumps(data, allow_nan=False)  # strict JSON for other readers
    assert set(data["behaviour"]) >= {"available", "rules", "runs", "pairs", "refusals"}


def test_plots(result, tmp_path):
    from harness.analysis.plots import make_plots

    made = {p.name: p for p in make_plots(result, tmp_path)}
    for name in ("behaviour_runs.png", "behaviour_diff_abl_vs_base.png"):
        assert made[name].read_bytes()[:8] == PNG_MAGIC
        img = imread(made[name])
        assert img.shape[0] > 300 and img.shape[1] > 600 and float(img[..., :3].std()) > 0.05


def test_summary_columns_alone_give_the_same_metrics(runs, result, tmp_path):
    """A master_summary.csv copied away from its trial folders: metrics from the behaviour columns."""
    csv_only = tmp_path / "abl.csv"
    csv_only.write_text((runs[0] / "master_summary.csv").read_text())
    res = analyze([load_run(csv_only, "abl"), load_run(runs[1])])
    abl = res["behaviour"]["runs"][0]
    assert abl["sources"] == {"summary": 4}
    full = result["behaviour"]["runs"][0]["metrics"]
    for m in METRICS:
        assert abl["metrics"][m.key]["mean"] == pytest.approx(full[m.key]["mean"]), m.key
    assert abl["metrics"]["cut_off_rate"]["n"] == 4
    # base's summary has no behaviour columns (its result.json had none) but its folder has traces
    assert res["behaviour"]["runs"][1]["sources"] == {"trace": 5}


def test_old_summaries_without_behaviour(tmp_path):
    runs = [load_run(FIXTURES / "user_report" / n) for n in ("abl", "base")]
    res = analyze(runs)
    assert res["behaviour"]["available"] is False and res["behaviour"]["pairs"] == []
    assert "No trajectory (trace.jsonl, ATIF trajectory.json) and no behaviour column in: abl, base." in to_markdown(res)
    # a summary written before the behaviour columns existed: only the old counters
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "attempt", "reward", "outcome", "turns", "parse_fail", "no_cmd"])
        w.writerows([["a", 1, 0, "failed", 4, 2, 0], ["b", 1, 1, "passed", 2, 0, 1]])
    res = analyze([load_run(old, "x"), load_run(old, "y")])
    x = res["behaviour"]["runs"][0]["metrics"]
    assert x["parse_fail_rate"]["pooled"] == pytest.approx(2 / 6) and x["commands"]["n"] == 0


def test_harbor_job_with_atif_trajectories(tmp_path):
    job = tmp_path / "job"
    for i, task in enumerate(("fix-git", "regex-log")):
        trial = job / f"{task}__x{i}"
        (trial / "agent").mkdir(parents=True)
        (trial / "agent" / "trajectory.json").write_text(json.dumps(atif()))
        (trial / "result.json").write_text(json.dumps({
            "task_name": task, "trial_name": trial.name, "started_at": "2025-11-01T10:00:00Z",
            "verifier_result": {"rewards": {"reward": 0.0}}}))
    res = analyze([load_run(job, "h1"), load_run(job, "h2")])
    h1 = res["behaviour"]["runs"][0]
    assert h1["sources"] == {"atif": 2}
    assert h1["metrics"]["refusal_rate"]["events"] == 2 and h1["metrics"]["false_completion"]["mean"] == 1.0


def _judge_reply(body: dict) -> str:
    reply = body["messages"][-1]["content"]
    return "REFUSAL" if "sorry" in reply.lower() else "COMPLIANCE."


def test_judge_adds_a_verdict_to_every_flagged_turn(runs, tmp_path):
    with ScriptedServer([_judge_reply], model="judge") as srv:
        out = CliRunner().invoke(app, ["analyze", *map(str, runs), "--judge", srv.base_url, "judge",
                                       "--json", str(tmp_path / "a.json"), "--markdown", str(tmp_path / "r.md")])
        assert out.exit_code == 0, out.output
        refusal_requests = [r for r in srv.requests if "REFUSAL or COMPLIANCE" in r["body"]["messages"][0]["content"]]
        assert len(refusal_requests) == 8  # the rest: the pass reviews of the same --judge (test_audit.py)
        first = refusal_requests[0]["body"]
        assert first["temperature"] == 0.0 and "REFUSAL or COMPLIANCE" in first["messages"][0]["content"]
        assert REFUSE in first["messages"][1]["content"]
    assert "abl refused (a refusal marker in the reply) in 0.0 % (0/14) of turns" in out.output
    beh = json.loads((tmp_path / "a.json").read_text())["behaviour"]
    assert beh["judge"] == {"url": srv.base_url, "model": "judge", "judged": 8, "refusals": 8, "errors": 0}
    assert {h["judge"]["verdict"] for h in beh["refusals"]} == {"refusal"}
    md = (tmp_path / "r.md").read_text()
    assert "Judge: 8 of 8 flagged turn(s) judged refusals, 0 unanswered." in md


def test_judge_verdicts_and_errors():
    from harness.analysis.refusal_judge import judge_refusals, verdict
    from harness.llm_types import LLMError

    assert verdict("REFUSAL") == "refusal" and verdict("compliance") == "not refusal"
    assert verdict("The reply refuses.") == "refusal" and verdict("maybe") == "unclear"
    assert verdict("DELAYED_REFUSAL") == "refusal" and verdict("delayed refusal") == "refusal"
    assert verdict("PARTIAL") == "not refusal" and verdict("noncompliance?") == "unclear"

    def ask(task: str, reply: str) -> str:
        if task == "down":
            raise LLMError("503")
        return "COMPLIANCE"

    beh = {"refusals": [{"task": "down", "excerpt": "x"}, {"task": "ok", "excerpt": "I cannot find it"}]}
    judge_refusals(beh, "http://127.0.0.1:1", "m", ask=ask)
    assert [h["judge"]["verdict"] for h in beh["refusals"]] == ["error", "not refusal"]
    assert beh["judge"]["errors"] == 1 and beh["judge"]["refusals"] == 0
