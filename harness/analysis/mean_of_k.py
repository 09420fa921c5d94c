"""The paired comparison that uses every attempt: per-task mean-of-k rates, tasks as the unit.

Rules, in order:

1. Each task gives one number per run, its success rate over its attempts (mean-of-k); the
   paired difference of a task is rate a − rate b, and the effect is the mean of those
   differences (the difference in mean-of-k accuracy).
2. The test is a two-sided paired permutation test over tasks (cluster-aware: a task's attempts
   move together, never one by one): under "no difference" the two runs' rates of a task are
   exchangeable, so each task's difference may flip its sign. scipy's ``permutation_test``
   (``permutation_type="samples"``) does it: exact enumeration of all 2^m sign patterns when at
   most ``EXACT_MAX`` differences are non-zero (zero differences cannot move the statistic and
   are left out of the enumeration), otherwise a seeded Monte Carlo estimate,
   p = (1 + hits) / (1 + resamples).
3. The interval is a paired bootstrap over tasks (scipy's ``bootstrap``, ``paired=True``,
   percentile method, seeded): it resamples tasks, so it also treats the task set as a sample.
   With a handful of successes it is anti-conservative; the test of rule 2 is the primary result.
4. With one attempt per task this is exactly the sign test on the discordant tasks, i.e. the
   exact McNemar test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: exact enumeration of sign flips up to this many non-zero differences
EXACT_MAX = 16
PERMUTATIONS = 20_000
BOOTSTRAPS = 10_000


@dataclass(frozen=True)
class MeanOfKResult:
    """Rules 1-3 of the module doc for one pair of runs."""

    n: int  # tasks in the test
    n_nonzero: int  # tasks whose rates differ
    diff: float | None  # mean of per-task differences (a − b)
    p: float
    method: str
    ci95: tuple[float, float] | None  # paired bootstrap percentile interval of ``diff``
    ci_method: str


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def permutation_p(a: Sequence[float], b: Sequence[float], *, n_resamples: int = PERMUTATIONS,
                  seed: int = 0) -> tuple[float, str]:
    """Two-sided paired permutation p of mean(a − b) == 0 (module doc, rule 2). Returns (p, method)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    keep = x != y
    x, y = x[keep], y[keep]
    m = int(x.size)
    if m == 0:
        return 1.0, "exact (no task differs)"
    if m == 1:  # the one flip only changes the sign (scipy needs two observations)
        return 1.0, "exact (2 sign patterns)"
    exact = m <= EXACT_MAX
    res = stats.permutation_test(
        (x, y), _mean_diff, permutation_type="samples", vectorized=True, alternative="two-sided",
        n_resamples=2**m if exact else n_resamples, batch=8192, rng=np.random.default_rng(seed),
    )
    method = f"exact ({2 ** m} sign patterns)" if exact else f"monte carlo ({n_resamples} sign flips, seed {seed})"
    return float(min(1.0, res.pvalue)), method


def bootstrap_ci(a: Sequence[float], b: Sequence[float], *, n_resamples: int = BOOTSTRAPS, seed: int = 0,
                 conf: float = 0.95) -> tuple[float, float] | None:
    """Paired bootstrap percentile interval of mean(a − b) over tasks (module doc, rule 3); None below 2 tasks."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2:
        return None
    if np.all(x - y == (x - y)[0]):  # every resample gives the same mean
        d = float((x - y)[0])
        return d, d
    res = stats.bootstrap((x, y), _mean_diff, paired=True, vectorized=True, method="percentile",
                          n_resamples=n_resamples, confidence_level=conf, rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def mean_of_k_test(a: Sequence[float], b: Sequence[float], *, seed: int = 0, n_resamples: int = PERMUTATIONS,
                   n_boot: int = BOOTSTRAPS) -> MeanOfKResult:
    """Rules 1-3 of the module doc: per-task rates ``a`` and ``b`` (same task order) → test and interval."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    p, method = permutation_p(x, y, n_resamples=n_resamples, seed=seed)
    ci = bootstrap_ci(x, y, n_resamples=n_boot, seed=seed)
    return MeanOfKResult(
        n=int(x.size), n_nonzero=int(np.sum(x != y)), diff=float(np.mean(x - y)) if x.size else None, p=p,
        method=method, ci95=ci,
        ci_method=f"paired bootstrap over tasks, percentile, {n_boot} resamples, seed {seed}" if ci else "—",
    )
