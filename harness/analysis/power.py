"""What a paired comparison of n tasks can resolve: power of the exact McNemar test.

Computed by exact enumeration (no simulation) under a stated model of how the two runs'
per-task outcomes are joined, since the marginal pass rates alone do not fix the number
of discordant tasks:

- ``nested``: maximal overlap. The weaker run solves only tasks the stronger one also
  solves (p10 = max(pa - pb, 0), p01 = max(pb - pa, 0)). Best case for a paired test.
- ``independent``: a task's outcome in one run says nothing about the other
  (p10 = pa(1 - pb), p01 = pb(1 - pa)). No benefit from pairing; a pessimistic case.

Tasks are treated as independent draws with these probabilities. The number of
discordant tasks is Binomial(n, p10 + p01); given m discordant tasks the split is
Binomial(m, p10 / (p10 + p01)); the test rejects where its two-sided exact p <= alpha.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import stats

MODELS = ("nested", "independent")


def discordance(pa: float, pb: float, model: str) -> tuple[float, float]:
    """(P(a solves, b fails), P(b solves, a fails)) per task under ``model``."""
    if model == "nested":
        return max(pa - pb, 0.0), max(pb - pa, 0.0)
    if model == "independent":
        return pa * (1 - pb), pb * (1 - pa)
    raise ValueError(f"unknown power model {model!r}; use one of {MODELS}")


@lru_cache(maxsize=256)
def _lower_cut(n: int, alpha: float) -> np.ndarray:
    """For m = 0..n discordant tasks: the largest b whose two-sided exact p <= alpha (-1 if none).

    The exact test at p = 1/2 is symmetric, so it rejects for b <= cut or b >= m - cut.
    """
    cuts = np.full(n + 1, -1, dtype=np.int64)
    for m in range(1, n + 1):
        b = np.arange(m // 2 + 1)
        ok = np.nonzero(2 * stats.binom.cdf(b, m, 0.5) <= alpha + 1e-12)[0]
        if ok.size:
            cuts[m] = ok[-1]
    return cuts


def mcnemar_power(n: int, pa: float, pb: float, *, model: str = "nested", alpha: float = 0.05) -> float:
    """Probability that the two-sided exact McNemar test at ``alpha`` rejects on n paired tasks."""
    p10, p01 = discordance(pa, pb, model)
    pd = p10 + p01
    if pd <= 0 or n <= 0:
        return 0.0
    share = p10 / pd
    m = np.arange(n + 1)
    cut = _lower_cut(n, alpha)
    live = cut >= 0
    m, cut = m[live], cut[live]
    reject = stats.binom.cdf(cut, m, share) + stats.binom.sf(m - cut - 1, m, share)
    return float(np.sum(stats.binom.pmf(m, n, pd) * np.minimum(reject, 1.0)))


def smallest_detectable_increase(n: int, baseline: float, *, model: str = "nested", power: float = 0.8,
                                 alpha: float = 0.05, step: float = 0.0025) -> float | None:
    """Smallest increase d over ``baseline`` with mcnemar_power(n, baseline + d, baseline) >= power.

    Grid scan in ``step`` then bisection inside the first bracket (power of exact tests
    can saw-tooth, so the grid finds the first crossing). None if even baseline -> 1 falls short.
    """
    prev = 0.0
    d = step
    while baseline + d <= 1.0 + 1e-12:
        if mcnemar_power(n, min(1.0, baseline + d), baseline, model=model, alpha=alpha) >= power:
            lo, hi = prev, d
            for _ in range(30):
                mid = (lo + hi) / 2
                if mcnemar_power(n, baseline + mid, baseline, model=model, alpha=alpha) >= power:
                    hi = mid
                else:
                    lo = mid
            return hi
        prev = d
        d += step
    return None
