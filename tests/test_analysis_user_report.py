"""The user's own 3-run example (seed report 004) reproduced from per-task data.

Fixture: tests/fixtures/analysis/user_report (see its README for the one assumption:
the region the user's listing left out is base ∩ sft).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.analysis import analyze, load_run
from harness.analysis.report import to_json, to_markdown

FIXTURE = Path(__file__).parent / "fixtures" / "analysis" / "user_report"
ABL_ONLY = ["fix-git", "hf-model-inference", "log-summary-date-ranges", "modernize-scientific-stack", "qemu-startup"]


@pytest.fixture(scope="module")
def result() -> dict:
    return analyze([load_run(FIXTURE / name) for name in ("abl", "base", "sft")])


def test_per_run_counts_and_wilson(result):
    runs = {r["name"]: r for r in result["runs"]}
    assert [(r["name"], r["n"], r["passes"]) for r in result["runs"]] == [("abl", 89, 7), ("base", 89, 3),
                                                                          ("sft", 89, 3)]
    assert runs["abl"]["wilson95"] == pytest.approx([0.0386, 0.1536], abs=5e-5)
    assert runs["base"]["wilson95"] == pytest.approx([0.0115, 0.0945], abs=5e-5)
    assert runs["abl"]["rate"] == pytest.approx(7 / 89)


def test_abl_vs_base_pair(result):
    pair = result["pairs"][0]
    assert (pair["a"], pair["b"], pair["n"]) == ("abl", "base", 89)
    assert (pair["both"], pair["a_only"], pair["b_only"], pair["neither"]) == (1, 6, 2, 80)
    assert round(pair["mcnemar_exact_p"], 3) == 0.289
    assert pair["mcnemar_midp"] < pair["mcnemar_exact_p"]
    assert round(pair["fisher_two_sided_p"], 3) == 0.330
    assert round(pair["fisher_one_sided_p"], 3) == 0.165
    lo, hi = pair["newcombe95"]
    assert lo < 0 < hi and pair["diff"] == pytest.approx(4 / 89)
    assert sorted(pair["a_only_tasks"]) == sorted([*ABL_ONLY, "git-leak-recovery"])


def test_every_unordered_pair_first_named_is_a(result):
    assert [(p["a"], p["b"]) for p in result["pairs"]] == [("abl", "base"), ("abl", "sft"), ("base", "sft")]
    assert all(p["mcnemar_holm_p"] >= p["mcnemar_exact_p"] for p in result["pairs"])


def test_cochran_q_on_the_users_matrix(result):
    from statsmodels.stats.contingency_tables import cochrans_q

    solved = {o_run: set() for o_run in ("abl", "base", "sft")}
    for region in result["overlap"]:
        for name in region["runs"]:
            solved[name].update(region["tasks"])
    tasks = sorted(load_run(FIXTURE / "abl").tasks())
    x = np.array([[t in solved[n] for n in ("abl", "base", "sft")] for t in tasks], dtype=int)
    ref = cochrans_q(x)
    assert result["cochran_q"]["q"] == pytest.approx(ref.statistic)
    assert result["cochran_q"]["df"] == 2
    assert result["cochran_q"]["p"] == pytest.approx(ref.pvalue)


def test_overlap_lists_all_seven_regions_including_the_missing_and_empty_ones(result):
    regions = {tuple(o["runs"]): o["tasks"] for o in result["overlap"]}
    assert len(result["overlap"]) == 2**3 - 1
    assert regions[("abl",)] == ABL_ONLY
    assert regions[("abl", "base")] == ["kv-store-grpc"]
    assert regions[("abl", "sft")] == ["git-leak-recovery"]
    assert regions[("base",)] == ["openssl-selfsigned-cert"]
    assert regions[("sft",)] == ["cobol-modernization"]
    assert regions[("base", "sft")] == ["regex-log"]  # the region the user's listing left out
    assert regions[("abl", "base", "sft")] == []
    # regions partition the solved tasks: each run's regions add up to its passes
    for r in result["runs"]:
        assert sum(len(t) for runs, t in regions.items() if r["name"] in runs) == r["passes"]
    assert result["unsolved_by_all"] == 89 - sum(len(t) for t in regions.values())


def test_minimum_detectable_effect_not_post_hoc_power(result):
    from harness.analysis.power import power_of_cells

    pair = result["pairs"][0]
    assert "power" not in pair  # power at the observed rates restates the p-value
    mde = pair["mde80"]
    assert (mde["discordant"], mde["discordant_share"]) == (8, pytest.approx(8 / 89))
    d, share = mde["mcnemar"], 8 / 89
    assert round(100 * d, 1) == 8.9  # nearly every discordant task would have to go one way
    assert power_of_cells(89, (share + d) / 2, (share - d) / 2) >= 0.8
    assert power_of_cells(89, (share + d - 0.002) / 2, (share - d + 0.002) / 2) < 0.8


def test_json_has_exactly_the_issue_keys(result):
    data = json.loads(to_json(result))
    assert {"name", "n", "passes", "rate", "wilson95"} <= set(data["runs"][0])
    assert {"a", "b", "n", "both", "a_only", "b_only", "neither", "mcnemar_exact_p", "mcnemar_midp",
            "fisher_two_sided_p", "fisher_one_sided_p"} <= set(data["pairs"][0])
    assert set(data["cochran_q"]) == {"q", "df", "p", "p_exact", "exact_method", "n", "excluded_errors"}
    assert all(set(o) >= {"runs", "tasks"} for o in data["overlap"])


def test_markdown_names_tests_and_alternatives(result):
    md = to_markdown(result)
    assert "| abl only | 5 | fix-git, hf-model-inference" in md
    assert "| base ∩ sft | 1 | regex-log |" in md
    assert "| abl ∩ base ∩ sft | 0 | — |" in md
    assert "unpaired" in md and "a greater than b" in md
    assert "| abl vs base | 89 | 1 | 6 | 2 | 80 |" in md and "0.289" in md
