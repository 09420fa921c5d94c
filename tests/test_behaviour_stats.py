"""Paired tests of behaviour metrics (harness.analysis.paired_stats) against brute force and scipy,
and the cluster-aware test on a task with 100 turns among tasks with 2."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from harness.analysis.paired_stats import (
    EXACT_MAX,
    hodges_lehmann,
    pooled_rate_test,
    rank_biserial,
    wilcoxon_paired,
)


def brute_wilcoxon_p(d: list[float]) -> float:
    """Two-sided p of the signed-rank statistic R+ by enumerating every sign pattern (zeros dropped)."""
    nz = [x for x in d if x != 0]
    ranks = stats.rankdata(np.abs(nz))
    observed = float(ranks[np.asarray(nz) > 0].sum())
    null = [sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in
            itertools.product([0, 1], repeat=len(nz))]
    lo = np.mean([x <= observed + 1e-9 for x in null])
    hi = np.mean([x >= observed - 1e-9 for x in null])
    return min(1.0, 2 * min(lo, hi))


@pytest.mark.parametrize("d", [
    [1.5, -0.5, 2.0, 3.0, -1.0, 4.5, 0.0],  # no ties (exact), one zero dropped
    [2.0, 3.0, 4.0, 5.0, 6.0, 1.0],  # every difference one way
    [1.0, 1.0, 2.0, -1.0, 3.0, 0.0, -2.0],  # ties: scipy's permutation version
    [0.25, -0.5, 0.25, 0.75, 1.0, -0.25, 0.5, 0.5],
])
def test_wilcoxon_matches_brute_force(d):
    res = wilcoxon_paired(d, [0.0] * len(d))
    assert res.p == pytest.approx(brute_wilcoxon_p(d), abs=1e-9)
    assert res.n == len(d) and res.n_nonzero == sum(x != 0 for x in d)
    assert res.method.startswith("exact")


def test_wilcoxon_agrees_with_scipy_directly_and_large_n_is_asymptotic():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1, 1, 12), rng.normal(0, 1, 12)
    assert wilcoxon_paired(a, b).p == pytest.approx(stats.wilcoxon(a, b).pvalue)
    a = np.round(rng.normal(0.3, 1, 40), 1)
    b = np.round(rng.normal(0, 1, 40), 1)
    res = wilcoxon_paired(a, b)
    assert res.method.startswith("normal") or res.method == "exact"
    nz = (a - b)[(a - b) != 0]
    assert res.p == pytest.approx(stats.wilcoxon(nz, method="asymptotic" if "normal" in res.method else "exact").pvalue)


def test_wilcoxon_all_zero_and_length_mismatch():
    res = wilcoxon_paired([1, 2, 3], [1, 2, 3])
    assert (res.p, res.n_nonzero, res.rank_biserial) == (1.0, 0, 0.0)
    with pytest.raises(ValueError, match="length"):
        wilcoxon_paired([1, 2], [1])


def test_effect_sizes_by_hand():
    # ranks of |d| = 1, 2, 3 -> R+ = 1 + 2, R- = 3 -> r = 0
    assert rank_biserial([1, 2, -3]) == pytest.approx(0.0)
    assert rank_biserial([1, 2, 3, 0]) == 1.0 and rank_biserial([-1, -5]) == -1.0
    d = [1.0, -2.0, 4.0, 0.5]
    walsh = sorted((d[i] + d[j]) / 2 for i in range(4) for j in range(i, 4))
    assert hodges_lehmann(d) == pytest.approx(float(np.median(walsh)))
    assert hodges_lehmann([]) is None


def brute_pooled_p(ea, ta, eb, tb) -> float:
    """Two-sided p of pooled-rate difference by swapping every subset of tasks between the runs."""
    def diff(xa, na, xb, nb):
        return sum(xa) / sum(na) - sum(xb) / sum(nb)

    observed = abs(diff(ea, ta, eb, tb))
    hits = total = 0
    for swap in itertools.product([False, True], repeat=len(ea)):
        xa = [b if s else a for a, b, s in zip(ea, eb, swap, strict=True)]
        na = [b if s else a for a, b, s in zip(ta, tb, swap, strict=True)]
        xb = [a if s else b for a, b, s in zip(ea, eb, swap, strict=True)]
        nb = [a if s else b for a, b, s in zip(ta, tb, swap, strict=True)]
        hits += abs(diff(xa, na, xb, nb)) >= observed - 1e-12
        total += 1
    return hits / total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_permutation_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = 7
    ta, tb = rng.integers(1, 12, k), rng.integers(1, 12, k)
    ea, eb = rng.integers(0, ta + 1), rng.integers(0, tb + 1)
    res = pooled_rate_test(ea, ta, eb, tb)
    assert res.method.startswith("exact")
    assert res.p == pytest.approx(brute_pooled_p(ea, ta, eb, tb), abs=1e-12)
    assert res.rate_a == pytest.approx(ea.sum() / ta.sum()) and res.events_b == int(eb.sum())


def test_pooled_permutation_monte_carlo_is_close_to_exact():
    rng = np.random.default_rng(5)
    k = EXACT_MAX + 2
    ta, tb = rng.integers(2, 6, k), rng.integers(2, 6, k)
    ea, eb = rng.binomial(ta, 0.5), rng.binomial(tb, 0.3)
    res = pooled_rate_test(ea, ta, eb, tb)
    assert res.method.startswith("monte carlo")
    # exact p by vectorised enumeration of all 2^k swaps
    swaps = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(bool)
    xa = np.where(swaps, eb, ea).sum(1) / np.where(swaps, tb, ta).sum(1)
    xb = np.where(swaps, ea, eb).sum(1) / np.where(swaps, ta, tb).sum(1)
    observed = abs(ea.sum() / ta.sum() - eb.sum() / tb.sum())
    exact = float(np.mean(np.abs(xa - xb) >= observed - 1e-12))
    assert res.p == pytest.approx(exact, abs=0.01)
    assert 0.0 < exact < 0.5  # a case where the estimate matters


def test_one_task_with_100_turns_is_one_observation_not_100():
    """One task has 100 turns (a refuses in 60 of them, b in none); nine tasks have 2 turns each,
    where the runs refuse about equally. Turn by turn the difference looks overwhelming; over
    tasks it is one task out of ten, which no test at the task level can call significant."""
    ta = tb = [100] + [2] * 9
    ea = [60, 1, 0, 0, 1, 0, 2, 0, 0, 1]
    eb = [0, 0, 1, 0, 1, 1, 0, 0, 1, 0]
    naive = stats.fisher_exact([[sum(ea), sum(ta) - sum(ea)], [sum(eb), sum(tb) - sum(eb)]]).pvalue
    assert naive < 1e-15  # treating turns as independent
    res = pooled_rate_test(ea, ta, eb, tb)
    assert res.rate_a == pytest.approx(65 / 118) and res.rate_b == pytest.approx(4 / 118)
    assert res.p >= 0.5, res  # swapping the big task only flips the sign; the rest is noise
    assert res.p == pytest.approx(brute_pooled_p(ea, ta, eb, tb))
    rates_a = [e / t for e, t in zip(ea, ta, strict=True)]
    rates_b = [e / t for e, t in zip(eb, tb, strict=True)]
    assert wilcoxon_paired(rates_a, rates_b).p > 0.2


def test_a_consistent_difference_over_tasks_is_significant():
    """The counterpart: the same kind of difference on every one of 10 tasks is found (p = 2/1024)."""
    ta = tb = [10] * 10
    res = pooled_rate_test([5] * 10, ta, [1] * 10, tb)
    assert res.p == pytest.approx(2 / 2**10)
    assert wilcoxon_paired([0.5] * 10, [0.1] * 10).p < 0.01


def test_pooled_rate_rejects_bad_counts():
    with pytest.raises(ValueError, match="between 0"):
        pooled_rate_test([3], [2], [0], [2])
    with pytest.raises(ValueError, match="one entry per task"):
        pooled_rate_test([1, 1], [2, 2], [0], [2])
    assert pooled_rate_test([], [], [], []).p == 1.0
    one = pooled_rate_test([3], [4], [0], [4])
    assert (one.p, one.diff) == (1.0, 0.75) and one.p == brute_pooled_p([3], [4], [0], [4])
    assert wilcoxon_paired([0.75], [0.0]).p == 1.0
