"""Typed results (``ablbench.records``): the published schemas, folders written before the models
existed, and the one-line error for a malformed ``result.json`` or ``run.json``.

``tests/fixtures/results_v1`` holds two results folders written by ``ablbench run`` before the
models existed (commit 3cd63f7): ``oracle`` (hello-world and make-output-dir, two attempts each,
all passed) and ``nop`` (hello-world once, failed).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ablbench.records import SCHEMA_DIR, SCHEMAS, Analysis, RecordError, TrialResult, schema_text
from ablbench.results import RESULT_FILE, load_result, read_result, read_run_meta, scan_results, write_result
from harness.analysis.compare import analyze
from harness.analysis.loaders import load_run
from harness.analysis.report import to_json

FIXTURES = Path(__file__).parent / "fixtures" / "results_v1"
ABLBENCH = str(Path(sys.executable).parent / "ablbench")
EXPECTED = {"oracle": {("hello-world", 1): "passed", ("hello-world", 2): "passed",
                       ("make-output-dir", 1): "passed", ("make-output-dir", 2): "passed"},
            "nop": {("hello-world", 1): "failed"}}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_is_the_models(name):
    committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert committed == schema_text(SCHEMAS[name]), f"run `python -m ablbench.records` to refresh {name}"


@pytest.mark.parametrize("run", sorted(EXPECTED))
def test_folder_written_before_the_models_loads_with_its_outcomes(run):
    folder = FIXTURES / run
    results = scan_results(folder)
    assert {key: r["outcome"] for key, r in results.items()} == EXPECTED[run]
    loaded = load_run(folder)
    assert loaded.kind == "results" and loaded.name == run
    assert {(t.task, t.attempt): t.outcome for t in loaded.trials} == EXPECTED[run]
    with (folder / "master_summary.csv").open() as fh:
        assert {(r["task"], int(r["attempt"])): r["outcome"] for r in csv.DictReader(fh)} == EXPECTED[run]
    record, raw = load_result(folder / "hello-world" / "1")
    assert record.outcome == EXPECTED[run][("hello-world", 1)]
    assert record.counters.turns == (1 if run == "oracle" else 0)
    assert record.verifier.reward_source == "reward.txt" and raw["agent"] == run
    assert read_run_meta(folder)["run_id"] == run


def test_writing_a_result_keeps_its_bytes(tmp_path):
    """The writer keeps keys, order and layout: an old result.json written again is the same file."""
    src = FIXTURES / "oracle" / "hello-world" / "1" / RESULT_FILE
    write_result(tmp_path, json.loads(src.read_text()))
    assert (tmp_path / RESULT_FILE).read_bytes() == src.read_bytes()


def test_unknown_keys_are_kept(tmp_path):
    """A newer writer's key survives a read (forward compatibility)."""
    data = json.loads((FIXTURES / "nop" / "hello-world" / "1" / RESULT_FILE).read_text())
    data["from_the_future"] = {"x": 1}
    data["counters"]["new_counter"] = 3
    (tmp_path / RESULT_FILE).write_text(json.dumps(data))
    record, raw = load_result(tmp_path)
    assert record.model_extra["from_the_future"] == {"x": 1} and record.counters.model_extra["new_counter"] == 3
    assert raw == data


def test_finished_result_needs_an_outcome(tmp_path):
    (tmp_path / RESULT_FILE).write_text(json.dumps({"task": "t", "attempt": 1, "finished": True}))
    with pytest.raises(RecordError, match=r"result\.json: outcome: a finished trial needs an outcome"):
        read_result(tmp_path)
    with pytest.raises(RecordError, match="outcome: Input should be 'passed'"):
        write_result(tmp_path, {"task": "t", "attempt": 1, "finished": True, "outcome": "won"})


def _malformed_copy(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "oracle"
    shutil.copytree(FIXTURES / "oracle", folder)
    bad = folder / "hello-world" / "2" / RESULT_FILE
    data = json.loads(bad.read_text())
    data["counters"]["turns"] = "many"
    bad.write_text(json.dumps(data, indent=2))
    return folder, bad


def test_malformed_result_is_one_line_naming_file_and_field_in_the_api(tmp_path):
    folder, bad = _malformed_copy(tmp_path)
    expected = f"{bad}: counters.turns: Input should be a valid integer"
    with pytest.raises(RecordError) as err:
        load_run(folder)
    message = str(err.value)
    assert message.startswith(expected) and message.endswith("fix or delete the file and rerun with --resume")
    assert "\n" not in message
    with pytest.raises(RecordError, match="counters.turns"):
        read_result(bad.parent)


def test_malformed_result_is_one_line_naming_file_and_field_in_the_cli(tmp_path):
    folder, bad = _malformed_copy(tmp_path)
    res = subprocess.run([ABLBENCH, "analyze", str(folder)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"{bad}: counters.turns: Input should be a valid integer" in lines[0]
    assert "rerun with --resume" in lines[0]


def test_resume_over_a_malformed_result_stops_with_the_same_line(tmp_path):
    folder, bad = _malformed_copy(tmp_path)
    res = subprocess.run([ABLBENCH, "run", "--agent", "oracle", "--out", str(folder), "--resume", "-k", "2",
                          "--include", "hello-world", "--include", "make-output-dir", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}: counters.turns: Input should be a valid integer" in lines[0], res.stderr


def test_malformed_run_json_names_its_field(tmp_path):
    folder = tmp_path / "nop"
    shutil.copytree(FIXTURES / "nop", folder)
    meta = json.loads((folder / "run.json").read_text())
    meta["attempts"] = "two"
    (folder / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RecordError, match=r"run\.json: attempts: Input should be a valid integer"):
        load_run(folder)
    (folder / "run.json").write_text("{not json")
    with pytest.raises(RecordError, match=r"run\.json: not valid JSON"):
        load_run(folder)


def test_analysis_json_fits_its_schema():
    runs = [load_run(FIXTURES / "oracle"), load_run(FIXTURES / "nop")]
    res = analyze(runs)
    text = to_json(res)
    typed = Analysis.model_validate_json(text)
    assert typed.runs[0].name == "oracle" and typed.multi_attempt  # oracle has two attempts per task
    assert typed.pairs[0].mean_of_k is not None and typed.pairs[0].mean_of_k.n == 1
    res["runs"][0]["n"] = "one"
    with pytest.raises(RecordError, match="the analysis: runs.0.n: Input should be a valid integer"):
        to_json(res)


def test_trial_result_model_reads_the_minimal_shape():
    """What the tests' helpers and older writers put in a result.json is enough."""
    record = TrialResult.model_validate({"task": "t", "attempt": 2, "finished": True, "outcome": "failed"})
    assert (record.counters, record.verifier, record.outcome) == (None, None, "failed")


def test_counters_record_has_every_counter_the_agent_reports():
    """result.json's ``counters`` model and ``AgentResult``'s integer counters stay the same set."""
    from dataclasses import fields

    from ablbench.agent_api import AgentResult
    from ablbench.records import Counters

    agent_counters = {f.name for f in fields(AgentResult) if f.type in (int, "int")}
    assert agent_counters == set(Counters.model_fields)
