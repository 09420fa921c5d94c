"""``ablbench analyze`` end to end on results folders written with the runner's own summary writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CliRunner
from matplotlib.image import imread
from md_tables import assert_rows_match_headers

from ablbench.results import SUMMARY_COLUMNS, write_json_atomic, write_summary
from harness.cli import app

TASKS = [f"task-{i:02d}" for i in range(14)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_run(folder: Path, name: str, skill: float, seed: int, attempts: int = 3) -> Path:
    """A results folder like `ablbench run` writes: run.json + master_summary.csv (+ trial result.json)."""
    rng = np.random.default_rng(seed)
    results = []
    for i, task in enumerate(TASKS):
        p = max(0.0, min(1.0, skill - 0.07 * i))
        for attempt in range(1, attempts + 1):
            roll = rng.random()
            outcome = "passed" if roll < p else ("agent_timeout" if roll > 0.93 else "failed")
            if task == "task-13" and attempt == 2:
                outcome = "verifier_error"
            result = {
                "task": task, "attempt": attempt, "finished": True, "outcome": outcome,
                "reward": 1.0 if outcome == "passed" else 0.0, "error": "" if outcome != "verifier_error"
                else "verifier set-up failed: no reward file",
                # task-05 stands for a task where the model keeps answering with analysis only
                "counters": {"turns": 8, "parse_fail": int(rng.integers(0, 2)),
                             "no_cmd": 7 if task == "task-05" else int(rng.integers(0, 2)),
                             "tokens_in": 9000, "tokens_out": 700},
                "timings": {"agent": 30.5, "verifier": 4.0, "total": 36.0},
            }
            write_json_atomic(folder / task / str(attempt) / "result.json", result)
            results.append(result)
    write_summary(folder, results)
    write_json_atomic(folder / "run.json", {"name": name, "attempts": attempts})
    return folder


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("results")
    return [_write_run(root / "r_base", "base", 0.55, 1), _write_run(root / "r_sft", "sft", 0.6, 2),
            _write_run(root / "r_abl", "abl", 0.85, 3)]


@pytest.fixture(scope="module")
def cli_out(run_dirs, tmp_path_factory) -> tuple[object, Path]:
    out = tmp_path_factory.mktemp("analysis")
    res = CliRunner().invoke(app, ["analyze", *map(str, run_dirs), "--json", str(out / "a.json"),
                                   "--markdown", str(out / "report.md"), "--plots", str(out / "plots")])
    return res, out


def test_summary_csv_has_the_runner_columns(run_dirs):
    header = (run_dirs[0] / "master_summary.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == SUMMARY_COLUMNS


def test_cli_writes_report_json_and_plots(cli_out):
    res, out = cli_out
    assert res.exit_code == 0, res.output
    assert "pass rates" in res.output and "overlap of solved tasks" in res.output
    data = json.loads((out / "a.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["base", "sft", "abl"]  # names from run.json
    assert [(p["a"], p["b"]) for p in data["pairs"]] == [("base", "sft"), ("base", "abl"), ("sft", "abl")]
    assert len(data["overlap"]) == 7
    assert {"q", "df", "p", "p_exact", "exact_method", "n", "excluded_errors"} == set(data["cochran_q"])
    abl = data["runs"][2]
    assert abl["trials"] == 42 and abl["attempts_min"] == abl["attempts_max"] == 3
    assert abl["outcomes"]["verifier_error"] == 1
    assert set(abl["pass_at_k"]) == {"1", "2", "3"}
    assert abl["pass_at_k"]["1"] == pytest.approx(abl["mean_pass_at_1"])
    assert abl["pass_hat_k"]["3"] <= abl["pass_at_k"]["1"] <= abl["pass_at_k"]["3"]
    assert [u["task"] for u in abl["unusual_no_cmd"]] == ["task-05"]
    assert "sign_flip_p" in data["pairs"][0]


def test_markdown_report_opens_cleanly(cli_out):
    _, out = cli_out
    md = (out / "report.md").read_text()
    for heading in ("# Run comparison: base, sft, abl", "## Pass rates", "## Paired comparisons on the same tasks",
                    "## All runs together: Cochran's Q", "## Overlap of solved tasks", "## What these data can resolve",
                    "## Outcomes and failure modes"):
        assert heading in md
    assert "solved in attempt 1" in md  # the documented per-task rule for several attempts
    assert "task-05 (7)" in md  # unusual no_cmd flagged with its mean
    assert_rows_match_headers(md)


def test_plots_are_valid_pngs(cli_out):
    _, out = cli_out
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert names == ["behaviour_diff_base_vs_abl.png", "behaviour_diff_base_vs_sft.png",
                     "behaviour_diff_sft_vs_abl.png", "behaviour_runs.png", "overlap_upset.png",
                     "overlap_venn.png", "pass_rates.png", "task_heatmap.png"]
    for png in (out / "plots").iterdir():
        assert png.read_bytes()[:8] == PNG_MAGIC
        img = imread(png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
        assert float(img[..., :3].std()) > 0.05  # something was drawn


def test_cli_markdown_to_stdout_and_bad_names(run_dirs):
    runner = CliRunner()
    res = runner.invoke(app, ["analyze", str(run_dirs[0]), str(run_dirs[2]), "--names", "b,a", "--markdown", "-"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("# Run comparison: b, a")
    assert "Cochran" not in res.output  # two runs: no Cochran's Q
    bad = runner.invoke(app, ["analyze", str(run_dirs[0]), str(run_dirs[2]), "--names", "only-one"])
    assert bad.exit_code == 1 and "error: --names has 1 name(s) for 2 run(s)" in bad.output
    bad = runner.invoke(app, ["analyze", str(run_dirs[0]), "--solved", "best"])
    assert bad.exit_code == 1 and "unknown --solved rule" in bad.output


def test_four_runs_get_an_upset_plot_with_every_region_and_no_venn(tmp_path):
    from harness.analysis import analyze, load_run
    from harness.analysis.plots import make_plots

    fix = Path(__file__).parent / "fixtures" / "analysis" / "user_report"
    runs = [load_run(fix / n) for n in ("abl", "base", "sft")] + [load_run(fix / "abl", "abl-again")]
    res = analyze(runs)
    assert len(res["overlap"]) == 15 and "mcnemar_holm_p" in res["pairs"][0]
    made = make_plots(res, tmp_path)
    assert sorted(p.name for p in made) == ["overlap_upset.png", "pass_rates.png"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in made)


def _write_outcomes(folder: Path, outcomes: dict[str, str]) -> Path:
    """A one-attempt results folder with the given outcome per task."""
    results = [{"task": t, "attempt": 1, "finished": True, "outcome": o, "reward": 1.0 if o == "passed" else 0.0,
                "error": "boom" if o.endswith("_error") else ""} for t, o in outcomes.items()]
    write_summary(folder, results)
    return folder


def test_errored_tasks_leave_the_paired_test_with_a_stated_count(tmp_path):
    tasks = [f"t{i}" for i in range(10)]
    a = {t: "passed" if i < 6 else "failed" for i, t in enumerate(tasks)}
    b = {t: "failed" for t in tasks}
    c = {t: "passed" if i % 2 else "failed" for i, t in enumerate(tasks)}
    a["t8"] = "llm_error"
    b.update(t0="infra_error", t1="infra_error", t2="verifier_error")  # b's trouble would count against b
    dirs = [_write_outcomes(tmp_path / n, o) for n, o in (("a", a), ("b", b), ("c", c))]
    runner = CliRunner()
    res = runner.invoke(app, ["analyze", *map(str, dirs), "--json", str(tmp_path / "x.json"),
                              "--markdown", str(tmp_path / "x.md")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "x.json").read_text())
    ab = data["pairs"][0]
    assert (ab["a"], ab["b"], ab["n"]) == ("a", "b", 6)
    assert [(e["task"], e["a"], e["b"]) for e in ab["excluded_errors"]] == [
        ("t0", None, "infra_error"), ("t1", None, "infra_error"), ("t2", None, "verifier_error"), ("t8", "llm_error", None)]
    assert (ab["both"], ab["a_only"], ab["b_only"], ab["neither"]) == (0, 3, 0, 3)
    assert data["cochran_q"]["n"] == 6 and data["cochran_q"]["excluded_errors"] == 4
    md = (tmp_path / "x.md").read_text()
    assert ("- a vs b: 4 task(s) left out of the paired test because a run had an error there: t0 (b infra_error), "
            "t1 (b infra_error), t2 (b verifier_error), t8 (a llm_error).") in md
    assert "| a vs b | 6 | 0 | 3 | 0 | 3 |" in md
    assert "4 task(s) left out of the paired test" in res.output
    # the old rule on request: errors are failures, every task stays
    res = runner.invoke(app, ["analyze", *map(str, dirs), "--errors-as-failures", "--json", "-"])
    assert res.exit_code == 0, res.output
    old = json.loads(res.output)
    ab = old["pairs"][0]
    assert (ab["n"], ab["excluded_errors"], ab["a_only"], ab["b_only"]) == (10, [], 6, 0)
    assert old["cochran_q"]["n"] == 10 and old["errors_as_failures"] is True
