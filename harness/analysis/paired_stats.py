"""Paired tests for behaviour metrics of two runs on the same tasks (tasks are the unit).

Rules, in order:

1. One value per task and run (the mean over the task's attempts); the paired difference is
   a − b. Tasks where either run has no value are left out, and the count says how many remain.
2. Wilcoxon signed-rank test (scipy), two-sided, zero differences dropped (Wilcoxon's rule):
   exact null distribution when no |difference| is tied; with ties, scipy's permutation version
   (exact enumeration up to 16 non-zero differences); beyond that the normal approximation
   with tie correction. The method used is returned with the p-value.
3. Effect sizes: the matched-pairs rank-biserial correlation r = (R+ − R−)/(R+ + R−) over the
   non-zero differences (+1: a larger on every task that differs, −1: b larger) and the
   Hodges–Lehmann shift, the median of the Walsh averages (d_i + d_j)/2, i ≤ j (descriptive).
4. Rates pooled over turns (events / turns summed over tasks) are compared with a cluster-aware
   permutation test: under "no difference" the two runs' (events, turns) of a task are
   exchangeable, so the labels are swapped task by task (never turn by turn), with scipy's
   ``permutation_test`` (paired "samples" permutations): exact enumeration of all 2^k swaps for
   up to 16 tasks, otherwise a seeded Monte Carlo estimate. A task with many turns therefore
   weighs in the pooled rate but is still one observation of the test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: exact enumeration of sign flips / task swaps up to this many
EXACT_MAX = 16
MC_RESAMPLES = 20_000


@dataclass(frozen=True)
class WilcoxonResult:
    """Rule 2-3 of the module doc for one metric."""

    n: int  # tasks with a value in both runs
    n_nonzero: int
    p: float
    method: str
    rank_biserial: float
    hodges_lehmann: float | None
    statistic: float | None  # scipy's statistic (min(R+, R-) for two-sided)


@dataclass(frozen=True)
class PooledRateResult:
    """Rule 4 of the module doc for one rate metric."""

    n_tasks: int
    events_a: int
    turns_a: int
    events_b: int
    turns_b: int
    rate_a: float | None
    rate_b: float | None
    diff: float | None
    p: float
    method: str


def rank_biserial(diffs: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped; 0.0 if none left)."""
    d = np.asarray([x for x in diffs if x != 0], dtype=float)
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    plus, minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    return (plus - minus) / (plus + minus)


def hodges_lehmann(diffs: Sequence[float]) -> float | None:
    """One-sample Hodges–Lehmann estimate: the median of all Walsh averages (d_i + d_j)/2, i <= j."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return None
    i, j = np.triu_indices(d.size)
    return float(np.median((d[i] + d[j]) / 2))


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of a − b with effect sizes (module doc, rules 2-3)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    nz = d[d != 0]
    hl = hodges_lehmann(d)
    if nz.size == 0:
        return WilcoxonResult(int(d.size), 0, 1.0, "no non-zero difference", 0.0, hl, None)
    tied = np.unique(np.abs(nz)).size < nz.size
    if not tied:
        method, label = "exact", "exact"
    elif nz.size <= EXACT_MAX:
        method, label = stats.PermutationMethod(n_resamples=2**EXACT_MAX), "exact (permutation, ties)"
    else:
        method, label = "asymptotic", "normal approximation (tie-corrected)"
    res = stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided", method=method)
    return WilcoxonResult(int(d.size), int(nz.size), float(min(1.0, res.pvalue)), label, rank_biserial(nz), hl,
                          float(res.statistic))


def pooled_rate_test(events_a: Sequence[int], turns_a: Sequence[int], events_b: Sequence[int],
                     turns_b: Sequence[int], *, n_resamples: int = MC_RESAMPLES, seed: int = 0) -> PooledRateResult:
    """Cluster-aware permutation test of pooled rate a − pooled rate b over tasks (module doc, rule 4)."""
    ea, ta, eb, tb = (np.asarray(x, dtype=float) for x in (events_a, turns_a, events_b, turns_b))
    k = ea.size
    if not (ta.size == eb.size == tb.size == k):
        raise ValueError("events and turns must have one entry per task for both runs")
    if np.any(ea > ta) or np.any(eb > tb) or np.any(np.concatenate([ea, eb, ta, tb]) < 0):
        raise ValueError("events must lie between 0 and the task's turns")
    sa, sb = int(ta.sum()), int(tb.sum())
    rate_a = float(ea.sum() / sa) if sa else None
    rate_b = float(eb.sum() / sb) if sb else None
    diff = None if rate_a is None or rate_b is None else rate_a - rate_b
    base = dict(n_tasks=k, events_a=int(ea.sum()), turns_a=sa, events_b=int(eb.sum()), turns_b=sb,
                rate_a=rate_a, rate_b=rate_b, diff=diff)
    if k == 0 or diff is None:
        return PooledRateResult(**base, p=1.0, method="no data")
    if k == 1:  # the one swap only flips the sign (scipy needs two observations)
        return PooledRateResult(**base, p=1.0, method="exact (2 task swaps)")
    events = np.concatenate([ea, eb])
    turns = np.concatenate([ta, tb])

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        # x, y hold indices into (events, turns): a task's swap exchanges its two runs' rows
        x, y = x.astype(int), y.astype(int)
        rx = events[x].sum(axis=axis) / np.maximum(turns[x].sum(axis=axis), 1)
        ry = events[y].sum(axis=axis) / np.maximum(turns[y].sum(axis=axis), 1)
        return rx - ry

    exact = k <= EXACT_MAX
    res = stats.permutation_test(
        (np.arange(k), np.arange(k, 2 * k)), statistic, permutation_type="samples", vectorized=True,
        n_resamples=2**k if exact else n_resamples, alternative="two-sided", batch=4096,
        rng=np.random.default_rng(seed),
    )
    method = f"exact ({2 ** k} task swaps)" if exact else f"monte carlo ({n_resamples} resamples, seed {seed})"
    return PooledRateResult(**base, p=float(min(1.0, res.pvalue)), method=method)
