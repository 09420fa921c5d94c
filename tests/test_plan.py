"""``ablbench plan`` (harness.analysis.plan): its simulated power against exact power, and the CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CliRunner
from md_tables import assert_rows_match_headers
from scipy import integrate, special, stats

from ablbench.results import write_json_atomic, write_summary
from harness.analysis import plan
from harness.analysis.options import PlanOptions
from harness.analysis.plan_report import make_plan
from harness.cli import app


def _exact_mcnemar_power(n: int, p10: float, p01: float, alpha: float) -> float:
    """Enumerate the discordant counts: m ~ Binomial(n, p10 + p01), split ~ Binomial(m, share), test by binomtest."""
    pd, share = p10 + p01, p10 / (p10 + p01)
    total = 0.0
    for m in range(1, n + 1):
        pm = stats.binom.pmf(m, n, pd)
        if pm < 1e-15:
            continue
        for b in range(m + 1):
            if stats.binomtest(b, m, 0.5).pvalue <= alpha:
                total += pm * stats.binom.pmf(b, m, share)
    return total


@pytest.mark.parametrize(("base", "concentration", "effect"), [(3 / 89, 2.0, 0.045), (0.2, 8.0, 0.1)])
def test_simulated_power_at_k1_matches_exact_mcnemar_power(base, concentration, effect):
    a, b = plan.beta_from_mean(base, concentration)
    model = plan.RateModel("beta", a, b)
    shift = plan.shift_for_effect(model.quadrature(), effect)

    def cell(f):  # E over the Beta of f(p, q), by adaptive quadrature (not plan's own grid)
        def g(p: float) -> float:
            return f(p, special.expit(special.logit(p) + shift)) * stats.beta.pdf(p, a, b)
        return integrate.quad(g, 0, 1, limit=400, points=[1e-9, 1e-6, 1e-3, 0.1])[0]

    p10, p01 = cell(lambda p, q: q * (1 - p)), cell(lambda p, q: p * (1 - q))
    assert cell(lambda p, q: q - p) == pytest.approx(effect, abs=2e-4)  # the effect is what was asked
    exact = _exact_mcnemar_power(89, p10, p01, 0.05)
    studies = 8000
    row = plan.plan_table(model, 89, [1], effect, studies=studies, seed=11)[0]
    se = math.sqrt(exact * (1 - exact) / studies)
    assert abs(row.mcnemar_power - exact) < 4 * se
    assert abs(row.power - exact) < 4 * se  # at k = 1 the mean-of-k test is McNemar
    assert row.mcnemar_exact == pytest.approx(exact, abs=2e-3)


def test_fixed_rates_power_matches_simulation():
    rates = np.linspace(0.0, 0.6, 30)
    model = plan.RateModel("pilot", 1.0, 1.0, tuple(rates))
    row = plan.plan_table(model, 30, [1], 0.15, studies=8000, seed=2)[0]
    se = math.sqrt(row.mcnemar_exact * (1 - row.mcnemar_exact) / 8000)
    assert abs(row.mcnemar_power - row.mcnemar_exact) < 4 * se


@pytest.mark.parametrize("k", [1, 2, 3])
def test_signflip_pvalues_equal_enumeration(k):
    rng = np.random.default_rng(k)
    d = rng.integers(-k, k + 1, (6, 8))
    for row, p in zip(d, plan.signflip_pvalues(d, k), strict=True):
        brute = np.mean([abs(np.dot(s, row)) >= abs(row.sum()) for s in itertools.product((-1, 1), repeat=8)])
        assert p == pytest.approx(brute, abs=1e-9)


def test_more_attempts_more_power_and_seeded():
    a, b = plan.beta_from_mean(3 / 89, 2.0)
    model = plan.RateModel("beta", a, b)
    rows = plan.plan_table(model, 89, [1, 5], 0.045, studies=600, seed=4, trial_minutes=6)
    assert rows[0].power < rows[1].power and rows[0].mde > rows[1].mde
    assert rows[1].trials == 2 * 89 * 5 and rows[1].gpu_hours == pytest.approx(89.0)
    assert rows[0].mcnemar_power is not None and rows[1].mcnemar_power is None
    assert plan.plan_table(model, 89, [1, 5], 0.045, studies=600, seed=4, trial_minutes=6) == rows


def test_beta_binomial_fit_recovers_the_rates():
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 4.5, 1500)
    c = rng.binomial(10, p)
    a, b = plan.fit_beta_binomial(c, np.full(1500, 10))
    assert a / (a + b) == pytest.approx(0.1, abs=0.01)
    assert a + b == pytest.approx(5.0, rel=0.2)


def _pilot(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    results = []
    for i in range(20):
        rate = [0.0, 0.0, 0.1, 0.6][i % 4]
        for attempt in (1, 2, 3):
            ok = rng.random() < rate
            outcome = "infra_error" if (i, attempt) == (5, 3) else ("passed" if ok else "failed")
            r = {"task": f"task-{i:02d}", "attempt": attempt, "finished": True, "outcome": outcome,
                 "reward": 1.0 if outcome == "passed" else 0.0, "error": "", "counters": {}, "timings": {}}
            write_json_atomic(folder / r["task"] / str(attempt) / "result.json", r)
            results.append(r)
    write_summary(folder, results)
    write_json_atomic(folder / "run.json", {"name": "pilot", "attempts": 3})
    return folder


def test_a_pilot_sets_the_tasks_and_the_model(tmp_path):
    res = make_plan(PlanOptions(pilot=_pilot(tmp_path / "pilot"), attempts="1,3", studies=300, effect=10))
    assert res["tasks"] == 20 and "beta-binomial fit to the pilot pilot" in res["model"]
    fixed = make_plan(PlanOptions(pilot=tmp_path / "pilot", model="pilot", attempts="3", studies=300, effect=10))
    assert fixed["model"].startswith("per-task rates fixed at the pilot's empirical-Bayes rates (20 tasks")


def test_cli_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "plan.json"
    res = CliRunner().invoke(app, ["plan", "--base-solved", "3/89", "--effect", "4.5", "--attempts", "1,5",
                                   "--studies", "400", "--trial-minutes", "12", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "| k | power at +4.5 pp | detectable at 80% power |" in res.output
    assert_rows_match_headers(res.output)
    data = json.loads(out.read_text())
    assert data["tasks"] == 89 and [r["k"] for r in data["rows"]] == [1, 5]
    assert data["rows"][1]["gpu_hours"] == pytest.approx(2 * 89 * 5 * 12 / 60)


@pytest.mark.parametrize(("args", "message"), [
    (["--base-solved", "3/89", "--base-rate", "0.03"], "give exactly one of --base-rate"),
    (["--base-rate", "0.03"], "--base-rate needs --tasks N"),
    (["--base-solved", "three"], "is not a fraction; write it like 3/89"),
    (["--base-solved", "3/89", "--attempts", "0,5"], "give at least one k >= 1"),
    (["--base-solved", "3/89", "--model", "pilot"], "--model pilot needs --pilot"),
    (["--base-solved", "3/89", "--effect", "97"], "is beyond reach"),
])
def test_bad_input_is_one_line(args, message):
    res = CliRunner().invoke(app, ["plan", *args, "--studies", "200"])
    assert res.exit_code == 1 and message in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1
