"""Statistical tests and intervals for comparing agent runs on the same tasks.

Everything that has a distribution comes from scipy; the rest are closed-form formulas
with their source named next to them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from ablbench.stats import wilson as wilson  # re-exported: the one Wilson interval
from harness.analysis.mean_of_k import permutation_p

Z95 = 1.959963984540054  # two-sided 95% standard normal quantile


def fisher(a_pass: int, a_n: int, b_pass: int, b_n: int) -> tuple[float, float]:
    """Fisher's exact test on two independent samples (UNPAIRED).

    Returns (two-sided p, one-sided p for "a's rate greater than b's").
    """
    table = [[a_pass, a_n - a_pass], [b_pass, b_n - b_pass]]
    two = stats.fisher_exact(table, alternative="two-sided").pvalue
    greater = stats.fisher_exact(table, alternative="greater").pvalue
    return float(two), float(greater)


def mcnemar_exact(a_only: int, b_only: int) -> tuple[float, float]:
    """Exact McNemar test: a binomial test on the discordant pairs only.

    Returns (two-sided exact p, two-sided mid-p). The mid-p subtracts half the
    probability of the observed split from each tail (less conservative companion).
    """
    m = a_only + b_only
    if m == 0:
        return 1.0, 1.0
    exact = float(stats.binomtest(a_only, m, 0.5, alternative="two-sided").pvalue)
    low = min(a_only, b_only)
    midp = 2 * (float(stats.binom.cdf(low, m, 0.5)) - 0.5 * float(stats.binom.pmf(low, m, 0.5)))
    return exact, min(1.0, midp)


def newcombe_paired(both: int, a_only: int, b_only: int, neither: int,
                    conf: float = 0.95) -> tuple[float, float, float]:
    """Difference of paired proportions p_a - p_b with Newcombe's (1998) method 10 interval.

    Square-and-add of the two marginal Wilson intervals, with the correlation term phi
    (continuity-corrected when ad > bc, as in the paper). Returns (diff, lo, hi).
    """
    a, b, c, d = both, a_only, b_only, neither
    n = a + b + c + d
    if n == 0:
        raise ValueError("empty paired table")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, conf)
    l2, u2 = wilson(a + c, n, conf)
    marg = (a + b) * (c + d) * (a + c) * (b + d)
    if marg == 0:
        phi = 0.0
    else:
        num = a * d - b * c
        if num > 0:
            num = max(num - n / 2, 0.0)
        phi = num / math.sqrt(marg)
    diff = p1 - p2
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return diff, max(-1.0, diff - delta), min(1.0, diff + eps)


def cochran_q(matrix: np.ndarray) -> tuple[float, int, float]:
    """Cochran's Q for a tasks x runs 0/1 matrix. Returns (Q, df, p) from chi-square(k-1)."""
    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("Cochran's Q needs a tasks x runs matrix with at least 2 runs")
    k = x.shape[1]
    col = x.sum(axis=0)
    row = x.sum(axis=1)
    total = row.sum()
    denom = k * total - float((row**2).sum())
    df = k - 1
    if denom == 0:  # every task solved by all runs or by none: no evidence of a difference
        return 0.0, df, 1.0
    q = (k - 1) * (k * float((col**2).sum()) - total**2) / denom
    return float(q), df, float(stats.chi2.sf(q, df))


#: the exact distribution is tabulated over column sums while it has at most this many cells
EXACT_COCHRAN_MAX_CELLS = 4_000_000


def cochran_q_exact(matrix: np.ndarray, n_resamples: int = 20000, seed: int = 0) -> tuple[float, str]:
    """Exact conditional (permutation) p-value of Cochran's Q for a tasks x runs 0/1 matrix.

    Under H0 the runs are exchangeable within each task: given a task's number of solving runs
    r, each of the C(k, r) ways to place its successes is equally likely, independently across
    tasks. With the row totals fixed, Q grows with the sum of squared column totals, so
    p = P(sum of squared column totals >= observed). The distribution of the column totals is
    built exactly, task by task, over the first k - 1 columns (the last is implied); beyond
    ``EXACT_COCHRAN_MAX_CELLS`` cells it is estimated by Monte Carlo with a fixed seed.
    Returns (p, method).
    """
    x = (np.asarray(matrix, dtype=float) > 0).astype(np.int64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("Cochran's Q needs a tasks x runs matrix with at least 2 runs")
    k = x.shape[1]
    rows = x.sum(axis=1)
    live = x[(rows > 0) & (rows < k)]  # tasks solved by all runs or by none cannot move any column total
    if live.shape[0] == 0:
        return 1.0, "exact"
    observed = float((live.sum(axis=0) ** 2).sum())
    tol = 1e-9 * max(1.0, observed)
    m = live.shape[0]
    total = int(live.sum())
    if (m + 1) ** (k - 1) <= EXACT_COCHRAN_MAX_CELLS:
        from itertools import combinations

        dist = np.zeros((m + 1,) * (k - 1))
        dist[(0,) * (k - 1)] = 1.0
        for r in live.sum(axis=1):
            placements = list(combinations(range(k), int(r)))
            new = np.zeros_like(dist)
            for cols in placements:
                shift = [1 if c in cols else 0 for c in range(k - 1)]
                src = tuple(slice(0, m + 1 - s) for s in shift)
                dst = tuple(slice(s, m + 1) for s in shift)
                new[dst] += dist[src]
            dist = new / len(placements)
        grids = np.indices(dist.shape)
        last = total - grids.sum(axis=0)
        stat = (grids**2).sum(axis=0) + last**2
        valid = (last >= 0) & (last <= m)
        return float(min(1.0, dist[valid & (stat >= observed - tol)].sum())), "exact"
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_resamples):
        perm = rng.permuted(live, axis=1)
        hits += float((perm.sum(axis=0) ** 2).sum()) >= observed - tol
    return (1 + hits) / (1 + n_resamples), f"monte carlo ({n_resamples} resamples, seed {seed})"


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), monotone and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n attempts with c successes: 1 - C(n-c, k)/C(n, k) (Chen et al. 2021)."""
    _check_nck(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased pass^k (all k of k attempts succeed) from n attempts with c successes: C(c, k)/C(n, k)."""
    _check_nck(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def _check_nck(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")


def sign_flip_test(diffs: Sequence[float], n_resamples: int = 20000, seed: int = 0) -> tuple[float, str]:
    """Paired sign-flip permutation test of mean(diffs) == 0, two-sided: the mean-of-k test
    (:func:`harness.analysis.mean_of_k.permutation_p`) of the differences against zero.

    Exact enumeration of all 2^m sign patterns when at most 16 differences are non-zero,
    otherwise a Monte Carlo estimate with a fixed seed (p = (1 + hits)/(1 + resamples)).
    Returns (p, "exact" or "monte carlo (...)").
    """
    d = np.asarray(diffs, dtype=float)
    p, method = permutation_p(d, np.zeros_like(d), n_resamples=n_resamples, seed=seed)
    return p, "exact" if method.startswith("exact") else method


def leaderboard_ci(per_task_rates: Sequence[float], per_task_attempts: Sequence[int]) -> float | None:
    """Half-width of TB2's leaderboard 95% interval, conditional on the fixed task set.

    1.96 / T * sqrt(sum_t p_t (1 - p_t) / (n_t - 1)); None when some task has fewer than 2 attempts.
    """
    if not per_task_rates or min(per_task_attempts) < 2:
        return None
    t = len(per_task_rates)
    var = sum(p * (1 - p) / (n - 1) for p, n in zip(per_task_rates, per_task_attempts, strict=True))
    return Z95 / t * math.sqrt(var)


def task_resampling_ci(per_task_rates: Sequence[float]) -> float | None:
    """Half-width of a normal 95% interval for the mean that also treats tasks as sampled.

    Uses the between-task variance of per-task rates (which includes attempt noise): 1.96 * sd / sqrt(T).
    """
    t = len(per_task_rates)
    if t < 2:
        return None
    return Z95 * float(np.std(per_task_rates, ddof=1)) / math.sqrt(t)
