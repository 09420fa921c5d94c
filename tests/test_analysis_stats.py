"""Statistics of harness.analysis against published values, hand computation and statsmodels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.analysis import power, stats


def test_wilson_matches_the_users_counts():
    assert stats.wilson(3, 89) == pytest.approx((0.0115, 0.0945), abs=5e-5)
    assert stats.wilson(7, 89) == pytest.approx((0.0386, 0.1536), abs=5e-5)
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and 0.25 < hi < 0.35


def test_wilson_agrees_with_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for x, n in [(0, 5), (3, 89), (45, 89), (89, 89), (12, 445)]:
        assert stats.wilson(x, n) == pytest.approx(proportion_confint(x, n, method="wilson"), abs=1e-12)


def test_fisher_two_and_one_sided_on_7_vs_3_of_89():
    two, greater = stats.fisher(7, 89, 3, 89)
    assert round(two, 3) == 0.330
    assert round(greater, 3) == 0.165
    # the one-sided alternative is "a greater than b": swapping the runs changes it
    _, reverse = stats.fisher(3, 89, 7, 89)
    assert reverse > 0.9


def test_exact_mcnemar_is_a_binomial_test_on_discordant_tasks():
    exact, midp = stats.mcnemar_exact(6, 2)
    assert round(exact, 3) == 0.289
    assert exact == pytest.approx(2 * sum(math.comb(8, i) for i in range(3)) / 2**8)
    # mid-p removes half the probability of the observed split from each tail
    assert midp == pytest.approx(exact - 2 * 0.5 * math.comb(8, 2) / 2**8)
    assert stats.mcnemar_exact(4, 0)[0] == pytest.approx(0.125)  # the nested best case
    assert stats.mcnemar_exact(6, 0)[0] <= 0.05 < stats.mcnemar_exact(5, 0)[0]
    assert stats.mcnemar_exact(0, 0) == (1.0, 1.0)
    assert stats.mcnemar_exact(3, 3)[1] == pytest.approx(1.0)


def test_exact_mcnemar_agrees_with_statsmodels():
    from statsmodels.stats.contingency_tables import mcnemar

    for b, c in [(6, 2), (1, 9), (10, 10), (0, 7)]:
        ref = mcnemar(np.array([[5, b], [c, 40]]), exact=True).pvalue
        assert stats.mcnemar_exact(b, c)[0] == pytest.approx(ref, abs=1e-12)


def test_newcombe_method_10_validation_vector():
    diff, lo, hi = stats.newcombe_paired(59, 6, 16, 80)
    assert (round(diff, 4), round(lo, 4), round(hi, 4)) == (-0.0621, -0.1186, -0.0046)


def test_newcombe_interval_contains_the_difference_and_flips_sign_with_the_runs():
    for both, a, b, neither in [(1, 6, 2, 80), (0, 0, 0, 10), (5, 0, 0, 5), (0, 3, 0, 0), (2, 1, 7, 30)]:
        d, lo, hi = stats.newcombe_paired(both, a, b, neither)
        assert -1 <= lo <= d <= hi <= 1
        d2, lo2, hi2 = stats.newcombe_paired(both, b, a, neither)
        assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo))


def _hand_cochran(x: np.ndarray) -> float:
    """Q = (k-1)[k Σ C_j² − N²] / (k N − Σ R_i²), written out independently."""
    k = x.shape[1]
    c = [sum(row[j] for row in x) for j in range(k)]
    r = [sum(row) for row in x]
    n = sum(r)
    return (k - 1) * (k * sum(v * v for v in c) - n * n) / (k * n - sum(v * v for v in r))


def test_cochran_q_agrees_with_statsmodels():
    from statsmodels.stats.contingency_tables import cochrans_q

    rng = np.random.default_rng(7)
    for k, n, p in [(3, 89, 0.08), (4, 30, 0.4), (5, 12, 0.5)]:
        x = (rng.random((n, k)) < p).astype(int)
        x[0, 0], x[1, 1] = 1, 0  # make sure the matrix is not degenerate
        q, df, pval = stats.cochran_q(x)
        ref = cochrans_q(x)
        assert q == pytest.approx(ref.statistic, rel=1e-10)
        assert q == pytest.approx(_hand_cochran(x), rel=1e-10)
        assert df == ref.df == k - 1
        assert pval == pytest.approx(ref.pvalue, rel=1e-9)


def test_cochran_q_degenerate_matrix_means_no_evidence():
    assert stats.cochran_q(np.zeros((5, 3))) == (0.0, 2, 1.0)
    assert stats.cochran_q(np.ones((5, 3))) == (0.0, 2, 1.0)


def test_holm_agrees_with_statsmodels():
    from statsmodels.stats.multitest import multipletests

    ps = [0.289, 0.289, 1.0, 0.01, 0.04]
    assert stats.holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))
    assert stats.holm([0.289, 0.289, 1.0]) == pytest.approx([0.867, 0.867, 1.0], abs=1e-3)


def test_pass_at_k_and_pass_hat_k_hand_values():
    # n=5 attempts, c=2 successes
    assert stats.pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert stats.pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert stats.pass_at_k(5, 2, 4) == pytest.approx(1.0)  # n - c < k: some attempt must succeed
    assert stats.pass_hat_k(5, 2, 2) == pytest.approx(1 / 10)  # C(2,2)/C(5,2)
    assert stats.pass_hat_k(5, 2, 3) == 0.0
    assert stats.pass_hat_k(5, 5, 5) == 1.0 and stats.pass_at_k(5, 0, 5) == 0.0
    # pass@k equals the probability over all k-subsets of attempts that one succeeds
    outcomes = [1, 0, 0, 1, 0]
    subsets = list(itertools.combinations(outcomes, 3))
    assert stats.pass_at_k(5, 2, 3) == pytest.approx(np.mean([any(s) for s in subsets]))
    assert stats.pass_hat_k(5, 2, 3) == pytest.approx(np.mean([all(s) for s in subsets]))
    with pytest.raises(ValueError):
        stats.pass_at_k(3, 1, 4)


def test_sign_flip_exact_on_small_cases():
    p, method = stats.sign_flip_test([1, 1, 1])
    assert method == "exact" and p == pytest.approx(2 / 8)
    # with 0/1 outcomes (one attempt) the sign-flip test IS the exact McNemar test
    diffs = [1] * 6 + [-1] * 2 + [0] * 81
    assert stats.sign_flip_test(diffs)[0] == pytest.approx(stats.mcnemar_exact(6, 2)[0])
    assert stats.sign_flip_test([0, 0])[0] == 1.0


def test_sign_flip_monte_carlo_is_close_to_exact_and_reproducible():
    diffs = [0.4, 0.2, -0.2, 0.6, 0.2, 0.4, -0.4, 0.2] * 3  # 24 non-zero: Monte Carlo
    p1, method = stats.sign_flip_test(diffs, n_resamples=20000, seed=1)
    assert method.startswith("monte carlo")
    assert stats.sign_flip_test(diffs, n_resamples=20000, seed=1)[0] == p1
    # a normal approximation of the same permutation distribution: sd = sqrt(sum d^2)
    z = abs(sum(diffs)) / math.sqrt(sum(d * d for d in diffs))
    assert p1 == pytest.approx(2 * sps.norm.sf(z), abs=0.02)


def test_leaderboard_interval_formula():
    hw = stats.leaderboard_ci([0.2, 0.6, 1.0], [5, 5, 5])
    assert hw == pytest.approx(1.959964 / 3 * math.sqrt((0.16 + 0.24 + 0.0) / 4), rel=1e-6)
    assert stats.leaderboard_ci([0.5], [1]) is None


def _brute_force_power(n: int, p10: float, p01: float, alpha: float) -> float:
    """Sum over every (a_only, b_only) count of the multinomial probability times 'rejects'."""
    total = 0.0
    p_same = 1 - p10 - p01
    for b in range(n + 1):
        for c in range(n + 1 - b):
            prob = math.comb(n, b) * math.comb(n - b, c) * p10**b * p01**c * p_same ** (n - b - c)
            if stats.mcnemar_exact(b, c)[0] <= alpha:
                total += prob
    return total


def test_mcnemar_power_matches_brute_force_enumeration():
    for model in power.MODELS:
        p10, p01 = power.discordance(0.5, 0.2, model)
        assert power.mcnemar_power(14, 0.5, 0.2, model=model) == pytest.approx(
            _brute_force_power(14, p10, p01, 0.05), abs=1e-10)


def test_power_at_the_users_counts():
    nested = power.mcnemar_power(89, 7 / 89, 3 / 89, model="nested")
    # nested: every discordant task favours a; the test rejects once >= 6 of them occur
    assert nested == pytest.approx(sps.binom.sf(5, 89, 4 / 89), abs=1e-12)
    assert round(nested, 2) == 0.21
    assert 0.1 < power.mcnemar_power(89, 7 / 89, 3 / 89, model="independent") < nested


def test_mde_mcnemar_is_the_80_percent_crossing_at_fixed_discordance():
    for n, share in ((89, 8 / 89), (30, 0.4), (14, 0.6)):
        d = power.mde_mcnemar(n, share)
        assert 0 < d <= share
        # the enumeration is checked against brute force above; brute force here too where it is quick
        pw = power.power_of_cells if n > 30 else (lambda n, a, b: _brute_force_power(n, a, b, 0.05))
        assert pw(n, (share + d) / 2, (share - d) / 2) >= 0.8
        assert pw(n, (share + d - 0.003) / 2, (share - d + 0.003) / 2) < 0.8
    assert power.mde_mcnemar(10, 0.3) is None  # ~3 discordant tasks can never reach 80%
    assert power.mde_mcnemar(50, 0.0) is None


def test_mde_mean_diff_matches_the_noncentral_t_solution():
    from statsmodels.stats.power import TTestPower

    rng = np.random.default_rng(0)
    for n in (12, 40, 89):
        diffs = rng.normal(0.05, 0.3, n)
        effect = TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05, power=0.8)
        assert power.mde_mean_diff(diffs) == pytest.approx(effect * np.std(diffs, ddof=1), rel=0.01)
    assert power.mde_mean_diff([0.1]) is None


def _brute_force_cochran_p(x: np.ndarray) -> float:
    """Every way to place each task's successes among the runs (all equally likely under H0)."""
    k = x.shape[1]
    q_obs = stats.cochran_q(x)[0]
    options = [[row] if row.sum() in (0, k) else
               [np.array(p) for p in sorted(set(itertools.permutations(row)))] for row in x]
    hits = total = 0
    for combo in itertools.product(*options):
        total += 1
        hits += stats.cochran_q(np.array(combo))[0] >= q_obs - 1e-9
    return hits / total


def test_exact_cochran_p_matches_brute_force_enumeration():
    rng = np.random.default_rng(7)
    cases = [np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 0, 0], [1, 1, 1], [1, 0, 0]]),
             np.array([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])]
    cases += [(rng.random((rng.integers(4, 8), rng.integers(3, 5))) < 0.45).astype(int) for _ in range(6)]
    for x in cases:
        p, method = stats.cochran_q_exact(x)
        assert method == "exact"
        assert p == pytest.approx(_brute_force_cochran_p(x), abs=1e-12), x
    # two runs: Cochran's exact conditional test is the exact McNemar test
    x = np.array([[1, 0]] * 6 + [[0, 1]] * 1 + [[1, 1]] * 3 + [[0, 0]] * 5)
    assert stats.cochran_q_exact(x)[0] == pytest.approx(stats.mcnemar_exact(6, 1)[0])
    assert stats.cochran_q_exact(np.ones((4, 3))) == (1.0, "exact")


def test_exact_cochran_falls_back_to_a_seeded_monte_carlo_when_the_table_is_too_big(monkeypatch):
    x = (np.random.default_rng(3).random((30, 3)) < 0.4).astype(int)
    exact, _ = stats.cochran_q_exact(x)
    monkeypatch.setattr(stats, "EXACT_COCHRAN_MAX_CELLS", 10)
    p, method = stats.cochran_q_exact(x, n_resamples=4000)
    assert method.startswith("monte carlo") and p == pytest.approx(exact, abs=0.03)
