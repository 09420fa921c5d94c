"""The mean-of-k test (harness.analysis.mean_of_k) against brute force, and its place in ``analyze``."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from ablbench.results import write_json_atomic, write_summary
from harness.analysis import AnalyzeOptions, analyze, load_run
from harness.analysis.mean_of_k import EXACT_MAX, bootstrap_ci, mean_of_k_test, permutation_p
from harness.analysis.report import to_markdown
from harness.analysis.stats import Z95, mcnemar_exact

USER = Path(__file__).parent / "fixtures" / "analysis" / "user_report"


def _brute_force_p(d: np.ndarray) -> float:
    """Every one of the 2^n sign patterns of the per-task differences, counted one by one."""
    observed = abs(d.sum())
    hits = sum(abs(np.dot(signs, d)) >= observed - 1e-9 for signs in itertools.product((-1, 1), repeat=d.size))
    return hits / 2**d.size


@pytest.mark.parametrize("seed", range(6))
def test_permutation_p_equals_enumerating_every_sign_flip(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 11)), int(rng.integers(1, 6))
    a = rng.integers(0, k + 1, n) / k
    b = rng.integers(0, k + 1, n) / k
    b[0] = a[0]  # a tied task: no sign flip can move it
    p, method = permutation_p(a, b)
    assert p == pytest.approx(_brute_force_p(a - b), abs=1e-12)
    assert method.startswith("exact") or np.all(a == b)


def test_one_attempt_is_the_exact_mcnemar_test():
    a = np.array([1] * 6 + [0] * 2 + [1] + [0] * 80, dtype=float)
    b = np.array([0] * 6 + [1] * 2 + [1] + [0] * 80, dtype=float)
    assert permutation_p(a, b)[0] == pytest.approx(mcnemar_exact(6, 2)[0], abs=1e-12)


def test_monte_carlo_beyond_the_exact_limit_is_within_its_error_and_seeded():
    rng = np.random.default_rng(7)
    n = EXACT_MAX + 4  # 2^20 patterns: enumerated here with numpy, estimated by the test
    d = rng.integers(1, 4, n) * rng.choice([-1, 1], n) / 3 + 0.25
    codes = np.arange(2**n, dtype=np.int64)[:, None]
    signs = 1 - 2 * ((codes >> np.arange(n)) & 1)
    exact = float(np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-9))
    p, method = permutation_p(d, np.zeros(n), n_resamples=20000, seed=3)
    assert method.startswith("monte carlo")
    assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4
    assert permutation_p(d, np.zeros(n), n_resamples=20000, seed=3)[0] == p


@pytest.mark.parametrize("seed", [0, 5])
def test_bootstrap_equals_a_direct_resampling_loop(seed):
    rng = np.random.default_rng(100 + seed)
    n = 9
    a, b = rng.integers(0, 4, n) / 3, rng.integers(0, 4, n) / 3
    d = a - b
    draws = np.random.default_rng(seed)  # the same stream: one resample of n task indices at a time
    means = [d[draws.integers(0, n, n)].mean() for _ in range(2000)]
    lo, hi = np.quantile(means, [0.025, 0.975])
    ci = bootstrap_ci(a, b, n_resamples=2000, seed=seed)
    assert ci == pytest.approx((lo, hi), abs=1e-12)
    # and with an unrelated stream, the same interval within Monte Carlo error
    other = np.random.default_rng(999)
    means2 = [d[other.integers(0, n, n)].mean() for _ in range(20000)]
    lo2, hi2 = np.quantile(means2, [0.025, 0.975])
    spread = np.std(means2)
    assert abs(ci[0] - lo2) < 0.25 * spread and abs(ci[1] - hi2) < 0.25 * spread


def test_bootstrap_of_identical_differences_is_a_point():
    assert bootstrap_ci([1, 1, 1], [0, 0, 0]) == (1.0, 1.0)
    result = mean_of_k_test([0.5, 0.5], [0.5, 0.5])
    assert (result.p, result.n_nonzero, result.diff) == (1.0, 0, 0.0)


def _write(folder: Path, rates: dict[str, list[str]]) -> Path:
    """A results folder: per task the outcomes of its attempts."""
    results = []
    for task, outcomes in rates.items():
        for attempt, outcome in enumerate(outcomes, 1):
            r = {"task": task, "attempt": attempt, "finished": True, "outcome": outcome,
                 "reward": 1.0 if outcome == "passed" else 0.0, "error": "", "counters": {}, "timings": {}}
            write_json_atomic(folder / task / str(attempt) / "result.json", r)
            results.append(r)
    write_summary(folder, results)
    write_json_atomic(folder / "run.json", {"name": folder.name, "attempts": max(len(o) for o in rates.values())})
    return folder


P, F, E = "passed", "failed", "infra_error"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("mok")
    a = {f"t{i}": [P, P, F] for i in range(6)} | {"t6": [F, F, F], "t7": [E, E, E], "t8": [F, P, E]}
    b = {f"t{i}": [F, F, P] for i in range(6)} | {"t6": [F, F, F], "t7": [P, F, F], "t8": [F, F, F]}
    return [load_run(_write(root / "a", a)), load_run(_write(root / "b", b))]


@pytest.fixture(scope="module")
def analysed(two_runs) -> dict:
    return analyze(two_runs)


def test_analyze_makes_mean_of_k_the_headline_with_several_attempts(analysed):
    res = analysed
    assert res["solved_rule"] == "mean" and res["headline_test"] == "mean_of_k"
    m = res["pairs"][0]["mean_of_k"]
    # t7 has no scored trial in run a: it leaves the test; t8's error leaves only its own attempt (rate 1/2)
    assert m["left_out_no_scored_trial"] == ["t7"] and m["n"] == 8
    rates_a = [2 / 3] * 6 + [0, 1 / 2]
    rates_b = [1 / 3] * 6 + [0, 0]
    assert m["diff"] == pytest.approx(np.mean(np.subtract(rates_a, rates_b)))
    assert m["p"] == pytest.approx(_brute_force_p(np.subtract(rates_a, rates_b)))
    lo, hi = m["ci95"]
    assert lo <= m["diff"] <= hi
    md = to_markdown(res)
    assert "mean-of-k accuracy differs by +31.2 pp" in md and "t7" in md  # (6 × 1/3 + 1/2) / 8


def test_leaderboard_figure_is_the_tb2_formula(analysed):
    res = analysed
    run_b = res["runs"][1]
    rates = list(run_b["per_task_rate"].values())
    hw = Z95 / len(rates) * math.sqrt(sum(p * (1 - p) / 2 for p in rates))  # 3 attempts: n_t - 1 = 2
    assert run_b["leaderboard"] == {"mean": pytest.approx(run_b["mean_pass_at_1"]), "half_width": pytest.approx(hw)}
    assert "leaderboard: mean ± 1.96·SE" in to_markdown(res)


def test_a_zero_one_rule_makes_mcnemar_the_headline_and_keeps_the_mean_of_k_test_beside(two_runs):
    res = analyze(two_runs, AnalyzeOptions(solved="first"))
    assert res["headline_test"] == "mcnemar" and "mean_of_k" in res["pairs"][0]
    assert "Beside the headline, using every attempt" in to_markdown(res)


def test_one_attempt_results_are_unchanged():
    res = analyze([load_run(USER / n) for n in ("abl", "base")])
    pair = res["pairs"][0]
    assert res["headline_test"] == "mcnemar" and "mean_of_k" not in pair
    assert round(pair["mcnemar_exact_p"], 3) == 0.289
    assert res["runs"][0]["leaderboard"] == {"mean": pytest.approx(7 / 89), "half_width": None}
    assert "7.9% ± — (1 attempt)" in to_markdown(res)


def test_the_html_page_shows_the_mean_of_k_test_the_leaderboard_figure_and_the_design(analysed, two_runs):
    from harness.analysis.html import build_report

    page = build_report(analysed, two_runs, plots=[])
    assert "Headline, using every attempt: the mean-of-k test" in page
    assert "leaderboard: mean ± 1.96·SE" in page
    assert "Design as run: 9 tasks × 3 attempt(s) per task" in page
    assert "detectable at 80% (mean-of-k, tasks × attempts as run)" in page
