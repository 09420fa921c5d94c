"""What a paired comparison of n tasks can resolve: power and minimum detectable effects.

Reported (``mde_mcnemar``, ``mde_mean_diff``): the minimum detectable effect at 80 % power
for the design actually run. Power at the observed rates (post-hoc power) is not reported: it
is a function of the observed p-value and adds nothing.

- ``mde_mcnemar``: the exact McNemar test on n tasks whose share of discordant tasks (solved
  by exactly one of the two runs) is the observed one; the effect is the difference of solve
  rates, p10 - p01, which can be at most that share. Computed by exact enumeration.
- ``mde_mean_diff``: with k attempts per task, the paired sign-flip test on per-task mean
  rewards, by the paired t approximation with the observed SD of per-task differences (that
  SD already holds the attempt-to-attempt noise of k attempts). A quick closed form; analyze
  reports the simulated one of ``plan.design_mde`` instead (heterogeneous per-task rates).

``mcnemar_power`` is the planning tool behind the statistics notes: power for two assumed
solve rates under a stated model of how the runs' outcomes are joined, since the marginal
rates alone do not fix the number of discordant tasks:

- ``nested``: maximal overlap. The weaker run solves only tasks the stronger one also
  solves (p10 = max(pa - pb, 0), p01 = max(pb - pa, 0)). Best case for a paired test.
- ``independent``: a task's outcome in one run says nothing about the other
  (p10 = pa(1 - pb), p01 = pb(1 - pa)). No benefit from pairing; a pessimistic case.

Tasks are treated as independent draws. The number of discordant tasks is Binomial(n,
p10 + p01); given m discordant tasks the split is Binomial(m, p10 / (p10 + p01)); the test
rejects where its two-sided exact p <= alpha.
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


def power_of_cells(n: int, p10: float, p01: float, alpha: float = 0.05) -> float:
    """Probability that the two-sided exact McNemar test at ``alpha`` rejects on n tasks with these cell rates."""
    pd = p10 + p01
    if pd <= 0 or n <= 0:
        return 0.0
    share = p10 / pd
    m = np.arange(n + 1)
    cut = _lower_cut(n, alpha)
    live = cut >= 0
    m, cut = m[live], cut[live]
    reject = stats.binom.cdf(cut, m, share) + stats.binom.sf(m - cut - 1, m, share)
    return float(np.sum(stats.binom.pmf(m, n, min(pd, 1.0)) * np.minimum(reject, 1.0)))


def mcnemar_power(n: int, pa: float, pb: float, *, model: str = "nested", alpha: float = 0.05) -> float:
    """Probability that the two-sided exact McNemar test at ``alpha`` rejects on n paired tasks."""
    p10, p01 = discordance(pa, pb, model)
    return power_of_cells(n, p10, p01, alpha)


def mde_mcnemar(n: int, discordant_share: float, *, power: float = 0.8, alpha: float = 0.05,
                step: float = 0.0025) -> float | None:
    """Smallest difference of solve rates (p10 - p01) the exact McNemar test detects with ``power``
    on n tasks whose discordant share p10 + p01 is ``discordant_share``; None if even a difference
    equal to the whole share (every discordant task one way) falls short.

    Grid scan in ``step`` then bisection inside the first bracket (power of exact tests
    can saw-tooth, so the grid finds the first crossing).
    """
    pd = float(discordant_share)
    if n <= 0 or pd <= 0:
        return None

    def ok(delta: float) -> bool:
        return power_of_cells(n, (pd + delta) / 2, (pd - delta) / 2, alpha) >= power

    if not ok(pd):
        return None
    prev, d = 0.0, min(step, pd)
    while not ok(d):
        prev, d = d, min(d + step, pd)
    lo, hi = prev, d
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def mde_mean_diff(diffs: list[float] | np.ndarray, *, power: float = 0.8, alpha: float = 0.05) -> float | None:
    """Smallest mean per-task difference detectable with ``power`` by a two-sided paired test on these
    tasks: (t_{1-alpha/2} + t_{power}) * sd / sqrt(n), t with n - 1 degrees of freedom. None below 2 tasks."""
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n < 2:
        return None
    sd = float(np.std(d, ddof=1))
    t = stats.t(df=n - 1)
    return float((t.ppf(1 - alpha / 2) + t.ppf(power)) * sd / np.sqrt(n))
