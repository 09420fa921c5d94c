"""Intervals shared by every layer (the harness's analysis and abliterate's refusal figures).

Rules, in order:
1. Computed by scipy, never hand-rolled.
2. A Wilson interval with no trials is (0, 1); with no successes its lower end is exactly 0,
   with all successes its upper end is exactly 1.
"""

from __future__ import annotations


def wilson(successes: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``successes / n`` at confidence ``conf`` (Wilson 1927), from scipy."""
    from scipy.stats import binomtest  # scipy.stats takes a moment to import: only when asked

    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} outside 0..{n}")
    ci = binomtest(successes, n).proportion_ci(confidence_level=conf, method="wilson")
    lo = 0.0 if successes == 0 else max(0.0, float(ci.low))
    hi = 1.0 if successes == n else min(1.0, float(ci.high))
    return (lo, hi)
