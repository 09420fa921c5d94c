"""Statistics for refusal figures, from scipy and statsmodels (never hand-rolled).

1. Every refusal rate is reported with its Wilson score interval (95% by default, the one
   :func:`ablbench.stats.wilson`): a rate from 15 prompts is a wide range, and the interval says so.
2. Agreement between the LLM judge and the labelled set is Cohen's kappa on the contingency
   table of (gold label, judge label); categories absent from both are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from ablbench.stats import wilson as wilson  # re-exported for the steps


def rate_with_ci(flags: Sequence[bool], alpha: float = 0.05) -> dict:
    """``{"rate", "k", "n", "ci": [lo, hi], "ci_level"}`` for a list of yes/no outcomes."""
    n, k = len(flags), int(sum(bool(f) for f in flags))
    lo, hi = wilson(k, n, 1 - alpha)
    return {"rate": k / n if n else 0.0, "k": k, "n": n, "ci": [lo, hi], "ci_level": 1 - alpha}


def contingency(gold: Sequence[str], other: Sequence[str], categories: Sequence[str] | None = None):
    """Square count table [gold category, other category] (numpy int array) and its categories."""
    import numpy as np

    if len(gold) != len(other):
        raise ValueError(f"label lists differ in length ({len(gold)} vs {len(other)})")
    cats = list(categories) if categories is not None else sorted(set(gold) | set(other))
    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(cats), len(cats)), dtype=int)
    for g, o in zip(gold, other, strict=True):
        table[index[g], index[o]] += 1
    return table, cats


def cohens_kappa(gold: Sequence[str], other: Sequence[str]) -> float:
    """Cohen's kappa of two raters' labels (statsmodels); 1.0 when both agree on a single category."""
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    table, cats = contingency(gold, other)
    if len(cats) < 2:
        return 1.0  # one category used by both raters: perfect, chance-corrected agreement is undefined
    return float(sm_kappa(table, return_results=False))
