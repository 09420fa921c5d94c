"""Power before the run (``ablbench plan``): what n tasks x k attempts per arm can detect.

Rules, in order:

1. Per-task rates are heterogeneous, never one pooled rate. Model ``beta``: in every simulated
   study each task's base rate is drawn afresh from Beta(a, b) with mean = the base rate and
   a + b = the concentration (tasks are a sample). With a pilot run of at least 2 attempts per
   task, a and b are its beta-binomial maximum-likelihood fit; with 1 attempt the pilot gives the
   mean only and the concentration is the option's. Model ``pilot``: the pilot's own tasks, each
   at its empirical-Bayes rate (c + a) / (n + a + b) under that fit, fixed in every study
   (conditional on this task set).
2. The effect is a shift on the logit scale, the same for every task, chosen so that the mean
   rate rises by the effect (percentage points) over the model's tasks: hard tasks stay hard,
   near-solved ones saturate. Within a task, attempts are independent given its rate.
3. The test is analyze's mean-of-k test (``mean_of_k``): the two-sided paired sign-flip
   permutation test of per-task rate differences. Its p-value is computed exactly in every
   simulated study (the sign-flip distribution of integer differences, by FFT of its
   characteristic function), so the power has Monte Carlo error from the studies only. At k = 1
   it is the exact McNemar test; the McNemar column is the exact McNemar test on attempt 1
   (simulated with the same draws), with its exact power beside it (``exact_mcnemar_power``).
4. Studies share their random numbers across effects (common random numbers), so power grows
   smoothly with the effect; the minimum detectable effect is the smallest effect whose power
   reaches the target, found by bisection. Everything is seeded.
5. Trials count both arms: 2 x tasks x k. GPU-hours = trials x per-trial minutes / 60.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from ablbench.errors import AblbenchError
from harness.analysis import power as mcnemar_power

MODELS = ("beta", "pilot")
QUAD_POINTS = 20_000
MAX_SHIFT = 40.0  # logit units: beyond this every task with a non-zero rate is solved


@dataclass(frozen=True)
class RateModel:
    """Where per-task base rates come from (module doc, rule 1)."""

    kind: str  # "beta" or "pilot"
    a: float
    b: float
    rates: tuple[float, ...] | None = None  # the pilot's fixed rates (kind "pilot")
    source: str = ""

    @property
    def mean(self) -> float:
        return float(np.mean(self.rates)) if self.rates is not None else self.a / (self.a + self.b)

    def describe(self) -> str:
        """One sentence naming the model and its numbers."""
        if self.kind == "pilot":
            return (f"per-task rates fixed at the pilot's empirical-Bayes rates ({len(self.rates or ())} tasks, "
                    f"mean {100 * self.mean:.2f}%; prior Beta({self.a:.3g}, {self.b:.3g}), {self.source})")
        return (f"per-task base rates drawn from Beta({self.a:.3g}, {self.b:.3g}) in every study: mean "
                f"{100 * self.mean:.2f}%, concentration a+b = {self.a + self.b:.3g} ({self.source})")

    def quadrature(self) -> np.ndarray:
        """Rates whose plain mean stands for the model's expectation (rule 2's effect is set on these)."""
        if self.rates is not None:
            return np.asarray(self.rates, dtype=float)
        u = (np.arange(QUAD_POINTS) + 0.5) / QUAD_POINTS
        return stats.beta.ppf(u, self.a, self.b)

    def draw(self, rng: np.random.Generator, studies: int, tasks: int) -> np.ndarray:
        """Base rates, studies x tasks."""
        if self.rates is not None:
            return np.broadcast_to(np.asarray(self.rates, dtype=float), (studies, len(self.rates))).copy()
        return rng.beta(self.a, self.b, size=(studies, tasks))


def beta_from_mean(mean: float, concentration: float) -> tuple[float, float]:
    """Beta(a, b) with this mean and a + b = concentration."""
    if not 0 < mean < 1:
        raise AblbenchError(f"base rate {mean:g} must lie strictly between 0 and 1; give e.g. --base-solved 3/89")
    if concentration <= 0:
        raise AblbenchError(f"--concentration {concentration:g} must be > 0 (a + b of the Beta of per-task rates)")
    return mean * concentration, (1 - mean) * concentration


def fit_beta_binomial(successes: Sequence[int], attempts: Sequence[int]) -> tuple[float, float]:
    """Maximum-likelihood Beta(a, b) of per-task rates from per-task (successes, attempts); a + b is capped
    at 1e4 (no sign of heterogeneity beyond attempt noise)."""
    c, n = np.asarray(successes, dtype=float), np.asarray(attempts, dtype=float)
    if c.sum() <= 0 or c.sum() >= n.sum():
        raise AblbenchError("the pilot has no success (or no failure) at all: a rate model cannot be fitted; "
                            "give --base-rate and --concentration instead")

    def nll(theta: np.ndarray) -> float:
        mu, kappa = special.expit(theta[0]), min(np.exp(theta[1]), 1e4)
        return -float(np.sum(stats.betabinom.logpmf(c, n, mu * kappa, (1 - mu) * kappa)))

    start = np.array([special.logit(c.sum() / n.sum()), 0.0])
    res = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
    mu, kappa = float(special.expit(res.x[0])), float(min(np.exp(res.x[1]), 1e4))
    return mu * kappa, (1 - mu) * kappa


def shift_for_effect(rates: np.ndarray, effect: float) -> float:
    """The logit shift that raises the mean of ``rates`` by ``effect`` (rule 2)."""
    base = float(np.mean(rates))
    logit = special.logit(np.clip(rates, 0.0, 1.0))

    def gain(shift: float) -> float:
        return float(np.mean(special.expit(logit + shift))) - base - effect

    if effect <= 0:
        return 0.0
    if gain(MAX_SHIFT) < 0:
        raise AblbenchError(f"an effect of {100 * effect:.2f} pp is beyond reach from a mean rate of "
                            f"{100 * base:.2f}% under this rate model")
    return float(optimize.brentq(gain, 0.0, MAX_SHIFT, xtol=1e-10))


def max_effect(rates: np.ndarray) -> float:
    """The largest mean gain a logit shift can give (tasks at rate 0 stay at 0)."""
    logit = special.logit(np.clip(rates, 0.0, 1.0))
    return float(np.mean(special.expit(logit + MAX_SHIFT)) - np.mean(rates))


def signflip_pvalues(diffs: np.ndarray, k: int) -> np.ndarray:
    """Exact two-sided sign-flip p-values, one per row of integer per-task differences in [-k, k].

    The null distribution of T = sum_i s_i |d_i| has characteristic function prod_j cos(j w)^{c_j}
    (c_j: tasks with |d| = j); its inverse FFT on a grid wider than the support is the exact pmf.
    """
    d = np.asarray(diffs, dtype=np.int64)
    studies = d.shape[0]
    counts = np.stack([(np.abs(d) == j).sum(axis=1) for j in range(1, k + 1)], axis=1)  # studies x k
    observed = np.abs(d.sum(axis=1))
    spans = np.abs(d).sum(axis=1)  # the support of T is [-span, span]
    out = np.empty(studies)
    order = np.argsort(spans, kind="stable")  # chunks of similar span share one FFT size
    for start in range(0, studies, 256):
        rows = order[start:start + 256]
        span = int(spans[rows].max())
        size = 1 << int(np.ceil(np.log2(2 * span + 2)))
        slot = np.arange(size)
        value = np.where(slot <= span, slot, slot - size)  # the T each pmf slot stands for (mod size)
        valid = (slot <= span) | (slot >= size - span)
        cos = np.cos(np.arange(1, k + 1)[:, None] * (2 * np.pi * slot / size)[None, :])  # k x size, never 0
        c = counts[rows].astype(float)
        phi = np.exp(c @ np.log(np.abs(cos))) * (1 - 2 * ((c @ (cos < 0)) % 2))
        pmf = np.fft.ifft(phi, axis=1).real
        tail = (np.abs(value)[None, :] >= observed[rows, None]) & valid[None, :]
        out[rows] = np.clip((pmf * tail).sum(axis=1), 0.0, 1.0)
    return out


def mcnemar_rejects(a_only: np.ndarray, b_only: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Whether the two-sided exact McNemar test rejects, per study (vectorized with power.py's cut table)."""
    cut = mcnemar_power._lower_cut(n, alpha)
    m = a_only + b_only
    return np.minimum(a_only, b_only) <= cut[m]


@dataclass
class _Studies:
    """Common random numbers for one (tasks, k): base rates and the uniforms behind every attempt."""

    base: np.ndarray  # studies x tasks
    logit: np.ndarray
    ua: np.ndarray  # studies x tasks x k (arm a: the edited model)
    ub: np.ndarray
    successes_b: np.ndarray  # studies x tasks


def _studies(model: RateModel, tasks: int, k: int, studies: int, seed: int) -> _Studies:
    rng = np.random.default_rng([seed, k])
    base = model.draw(rng, studies, tasks)
    ua = rng.random((studies, tasks, k))
    ub = rng.random((studies, tasks, k))
    return _Studies(base, special.logit(base), ua, ub, (ub < base[:, :, None]).sum(axis=2))


def _power(st: _Studies, shift: float, k: int, alpha: float, with_mcnemar: bool) -> tuple[float, float | None]:
    treated = special.expit(st.logit + shift)
    sa = (st.ua < treated[:, :, None]).sum(axis=2)
    p = signflip_pvalues(sa - st.successes_b, k)
    test = float(np.mean(p <= alpha + 1e-9))
    if not with_mcnemar:
        return test, None
    a1 = st.ua[:, :, 0] < treated
    b1 = st.ub[:, :, 0] < st.base
    rej = mcnemar_rejects((a1 & ~b1).sum(axis=1), (b1 & ~a1).sum(axis=1), st.base.shape[1], alpha)
    return test, float(np.mean(rej))


def exact_mcnemar_power(model: RateModel, tasks: int, effect: float, alpha: float) -> float:
    """Exact power of McNemar at k = 1 under the model (no simulation): with Beta-drawn rates the tasks'
    discordance cells are i.i.d. with probabilities E[q(1-p)] and E[p(1-q)]; with fixed rates the
    discordant counts are convolved task by task."""
    rates = model.quadrature()
    q = special.expit(special.logit(rates) + shift_for_effect(rates, effect))
    if model.rates is None:
        return mcnemar_power.power_of_cells(tasks, float(np.mean(q * (1 - rates))), float(np.mean(rates * (1 - q))),
                                            alpha)
    return fixed_rates_mcnemar_power(rates, q, alpha)


def fixed_rates_mcnemar_power(p: np.ndarray, q: np.ndarray, alpha: float) -> float:
    """Exact McNemar power when task i's arms solve with fixed probabilities q_i (a) and p_i (b)."""
    n = len(p)
    dist = np.zeros((n + 1, n + 1))  # [a_only, b_only]
    dist[0, 0] = 1.0
    for pi, qi in zip(p, q, strict=True):
        a_only, b_only = qi * (1 - pi), pi * (1 - qi)
        new = dist * (1 - a_only - b_only)
        new[1:, :] += dist[:-1, :] * a_only
        new[:, 1:] += dist[:, :-1] * b_only
        dist = new
    aa, bb = np.indices(dist.shape)
    m = aa + bb
    ok = m <= n
    rej = np.zeros_like(dist, dtype=bool)
    rej[ok] = mcnemar_rejects(aa[ok], bb[ok], n, alpha)
    return float(dist[rej].sum())


@dataclass(frozen=True)
class PlanRow:
    """One line of the plan table."""

    k: int
    power: float  # the mean-of-k test at the planned effect
    mde: float | None  # smallest effect with power >= target (None: out of reach)
    mcnemar_power: float | None  # k = 1 only: simulated, attempt 1
    mcnemar_exact: float | None  # k = 1 only: exact
    mcnemar_mde: float | None
    trials: int
    gpu_hours: float | None


def _mde(st: _Studies, rates: np.ndarray, k: int, alpha: float, target: float) -> float | None:
    top = max_effect(rates) * 0.999

    def pw(effect: float) -> float:
        return _power(st, shift_for_effect(rates, effect), k, alpha, False)[0]

    lo, hi = 0.0, min(0.01, top)
    while pw(hi) < target:  # double until the power is reached, then bisect inside the bracket
        if hi >= top:
            return None
        lo, hi = hi, min(2 * hi, top)
    for _ in range(9):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if pw(mid) >= target else (mid, hi)
    return hi


def plan_table(model: RateModel, tasks: int, ks: Sequence[int], effect: float, *, alpha: float = 0.05,
               target: float = 0.8, studies: int = 2000, seed: int = 0, trial_minutes: float | None = None,
               progress: Callable[[str], None] | None = None) -> list[PlanRow]:
    """Rows of the plan table (module doc, rules 1-5)."""
    if tasks < 2:
        raise AblbenchError(f"--tasks {tasks}: a paired comparison needs at least 2 tasks")
    if model.rates is not None and len(model.rates) != tasks:
        raise AblbenchError(f"--tasks {tasks} differs from the pilot's {len(model.rates)} tasks under --model pilot; "
                            "leave --tasks out or use --model beta")
    rates = model.quadrature()
    shift = shift_for_effect(rates, effect)
    rows = []
    for k in ks:
        st = _studies(model, tasks, k, studies, seed)
        test, mc = _power(st, shift, k, alpha, k == 1)
        mde = _mde(st, rates, k, alpha, target)
        mc_mde = mde if k == 1 else None  # at k = 1 the two tests are the same test (module doc, rule 3)
        exact = exact_mcnemar_power(model, tasks, effect, alpha) if k == 1 else None
        trials = 2 * tasks * k
        rows.append(PlanRow(k, test, mde, mc, exact, mc_mde, trials,
                            None if trial_minutes is None else trials * trial_minutes / 60))
        if progress is not None:
            progress(f"k = {k}: power {100 * test:.1f}%")
    return rows


def monte_carlo_se(power: float, studies: int) -> float:
    """Standard error of a simulated power."""
    return float(np.sqrt(max(power * (1 - power), 1e-12) / studies))


def design_mde(model: RateModel, tasks: int, k: int, *, alpha: float = 0.05, target: float = 0.8,
               studies: int = 1000, seed: int = 0) -> float | None:
    """Minimum detectable effect of the mean-of-k test for tasks x k attempts under ``model`` (rules 1-4)."""
    return _mde(_studies(model, tasks, k, studies, seed), model.quadrature(), k, alpha, target)


def model_from_counts(successes: Sequence[int], attempts: Sequence[int], *, kind: str = "beta",
                      concentration: float | None = None, source: str = "") -> RateModel:
    """The rate model of a pilot's per-task (successes, attempts) (rule 1)."""
    if kind not in MODELS:
        raise AblbenchError(f"unknown --model {kind!r}; use one of {', '.join(MODELS)}")
    c, n = np.asarray(successes, dtype=float), np.asarray(attempts, dtype=float)
    if n.size == 0 or n.min() < 1:
        raise AblbenchError("the pilot has a task without a scored attempt; rerun it or drop the task")
    if n.max() >= 2:
        a, b = fit_beta_binomial(c, n)
        how = (f"beta-binomial fit to {source or 'the pilot'}: {int(c.sum())}/{int(n.sum())} trials passed, "
               f"{n.size} per-task rates")
    else:
        if concentration is None:
            raise AblbenchError("a pilot with one attempt per task cannot show how much tasks differ; give "
                                "--concentration (a + b of the Beta of per-task rates)")
        a, b = beta_from_mean(c.sum() / n.sum(), concentration)
        how = (f"mean from {source or 'the pilot'} ({int(c.sum())}/{int(n.sum())}, one attempt per task), "
               f"concentration {concentration:g} given")
    if kind == "pilot":
        return RateModel("pilot", a, b, tuple(float(x) for x in (c + a) / (n + a + b)), how)
    return RateModel("beta", a, b, None, how)
