"""Reading runs: results folders, master_summary.csv, harbor job folders, tb runs folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ablbench.errors import AblbenchError
from harness.analysis import AnalyzeOptions, analyze, load_run

FIX = Path(__file__).parent / "fixtures" / "analysis"
HARBOR_JOB = FIX / "harbor_job" / "2025-11-01__10-00-00"
TB_RUN = FIX / "tb_runs" / "2025-06-01__09-30-00"


def _by_task(run) -> dict[str, list[tuple[int, float, str]]]:
    return {task: [(t.attempt, t.reward, t.outcome) for t in ts] for task, ts in run.by_task().items()}


def test_harbor_job_folder():
    run = load_run(HARBOR_JOB)
    assert (run.kind, run.name) == ("harbor", "2025-11-01__10-00-00")
    assert _by_task(run) == {
        "fix-git": [(1, 1.0, "passed"), (2, 0.0, "failed")],
        # the verifier ran after the agent timed out and passed: the reward counts
        "regex-log": [(1, 1.0, "passed"), (2, 0.0, "agent_timeout")],
        # no verifier_result: an infrastructure error, scored 0
        "qemu-startup": [(1, 0.0, "verifier_error"), (2, 0.0, "failed")],
    }
    assert "VerifierTimeoutError" in run.by_task()["qemu-startup"][0].error


def test_harbor_jobs_root_with_one_job_is_accepted():
    run = load_run(HARBOR_JOB.parent, name="h")
    assert run.name == "h" and len(run.trials) == 6


def test_tb_run_folder_and_runs_root():
    run = load_run(TB_RUN)
    assert run.kind == "tb"
    assert _by_task(run) == {
        "hello-world": [(1, 1.0, "passed"), (2, 1.0, "passed")],
        "fix-permissions": [(1, 0.0, "agent_timeout"), (2, 1.0, "passed")],
        "csv-to-parquet": [(1, 0.0, "failed"), (2, 0.0, "llm_error")],
    }
    assert _by_task(load_run(TB_RUN.parent)) == _by_task(run)


def test_tb_run_without_run_level_results_reads_trials(tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(TB_RUN, copy)
    (copy / "results.json").unlink()
    assert _by_task(load_run(copy)) == _by_task(load_run(TB_RUN))


def test_results_folder_uses_run_json_name_and_csv_file_directly(tmp_path):
    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "master_summary.csv").write_text("task,reward\nt1,1.0\nt2,0\nt3,\n")
    (folder / "run.json").write_text(json.dumps({"name": "abl-run"}))
    run = load_run(folder)
    assert (run.name, run.kind) == ("abl-run", "results")
    assert [(t.task, t.attempt, t.reward, t.outcome) for t in run.trials] == [
        ("t1", 1, 1.0, "passed"), ("t2", 1, 0.0, "failed"), ("t3", 1, 0.0, "infra_error")]
    assert load_run(folder / "master_summary.csv").kind == "csv"


@pytest.mark.parametrize(
    ("content", "needle"),
    [("task,score\nt1,1\n", r"missing column\(s\) reward"), ("task,reward\n", "no trials"),
     ("task,reward\n,1\n", "empty task name")],
)
def test_bad_csv_gives_one_line_error(tmp_path, content, needle):
    path = tmp_path / "master_summary.csv"
    path.write_text(content)
    with pytest.raises(AblbenchError, match=needle) as info:
        load_run(path)
    assert "\n" not in str(info.value)


def test_unknown_folder_and_missing_path(tmp_path):
    with pytest.raises(AblbenchError, match="no master_summary.csv"):
        load_run(tmp_path)
    with pytest.raises(AblbenchError, match="no such file"):
        load_run(tmp_path / "nope")


def test_different_task_sets_use_the_intersection_and_name_dropped_tasks(tmp_path):
    for name, rows in {"a": "x,1\ny,0\nz,1\n", "b": "x,0\ny,1\nw,1\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "master_summary.csv").write_text("task,reward\n" + rows)
    res = analyze([load_run(tmp_path / "a"), load_run(tmp_path / "b")])
    assert res["n_tasks"] == 2
    assert [r["dropped_tasks"] for r in res["runs"]] == [["z"], ["w"]]
    assert [r["passes"] for r in res["runs"]] == [1, 1]
    pair = res["pairs"][0]
    assert (pair["both"], pair["a_only"], pair["b_only"], pair["neither"]) == (0, 1, 1, 0)


def test_runs_sharing_no_task_or_a_name_are_refused(tmp_path):
    for name, rows in {"a": "x,1\n", "b": "y,1\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "master_summary.csv").write_text("task,reward\n" + rows)
    with pytest.raises(AblbenchError, match="share no task"):
        analyze([load_run(tmp_path / "a"), load_run(tmp_path / "b")])
    with pytest.raises(AblbenchError, match="used twice"):
        analyze([load_run(tmp_path / "a", "same"), load_run(tmp_path / "a", "same")])


def test_harbor_and_tb_runs_analyse_with_attempts():
    res = analyze([load_run(TB_RUN, "tb")], AnalyzeOptions(solved="any"))
    run = res["runs"][0]
    assert (run["n"], run["passes"], run["trials"], run["trial_passes"]) == (3, 2, 6, 3)
    assert run["mean_pass_at_1"] == pytest.approx(0.5)
    # per task c/n = 2/2, 1/2, 0/2: pass@2 = (1 + 1 + 0)/3, pass^2 = (1 + 0 + 0)/3
    assert run["pass_at_k"]["2"] == pytest.approx(2 / 3)
    assert run["pass_hat_k"]["2"] == pytest.approx(1 / 3)
    assert run["outcomes"] == {"passed": 3, "failed": 1, "agent_timeout": 1, "llm_error": 1}
