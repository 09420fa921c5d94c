"""``ablbench plan`` from its options: the rate model, the table, and the table as markdown or JSON.

Rules, in order:

1. The base comes from exactly one of --base-rate, --base-solved (``3/89``) or --pilot (a run
   folder analyze can read; its per-task rates over scored trials, errors left out).
2. --tasks defaults to the denominator of --base-solved or the pilot's task count.
3. --attempts is a comma list of positive k, each simulated with ``plan.plan_table`` (seeded).
4. The printed table is markdown (it pastes into a README); the JSON holds the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

from ablbench.errors import AblbenchError
from harness.analysis import plan
from harness.analysis.options import PlanOptions


def _fraction(text: str) -> tuple[int, int]:
    try:
        num, den = (int(x) for x in text.split("/"))
    except ValueError:
        raise AblbenchError(f"--base-solved {text!r} is not a fraction; write it like 3/89") from None
    if not 0 < num < den:
        raise AblbenchError(f"--base-solved {text}: need 0 < solved < tasks")
    return num, den


def _ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise AblbenchError(f"--attempts {text!r}: give whole numbers separated by commas, like 1,3,5,10") from None
    if not ks or min(ks) < 1:
        raise AblbenchError(f"--attempts {text!r}: give at least one k >= 1, like 1,3,5,10")
    return sorted(set(ks))


def _pilot_counts(o: PlanOptions) -> tuple[list[int], list[int], str]:
    from harness.analysis import load_run
    from harness.analysis.compare import ERROR_OUTCOMES

    assert o.pilot is not None
    run = load_run(o.pilot)
    successes, attempts = [], []
    for trials in run.by_task().values():
        scored = [t for t in trials if t.outcome not in ERROR_OUTCOMES]
        if scored:
            successes.append(sum(t.solved for t in scored))
            attempts.append(len(scored))
    if not attempts:
        raise AblbenchError(f"the pilot {o.pilot} has no scored trial; give --base-rate or --base-solved instead")
    return successes, attempts, f"the pilot {run.name}"


def rate_model(o: PlanOptions) -> tuple[plan.RateModel, int]:
    """The rate model and the number of tasks (rules 1-2)."""
    given = [x for x in (o.base_rate, o.base_solved, o.pilot) if x is not None]
    if len(given) != 1:
        raise AblbenchError("give exactly one of --base-rate 0.034, --base-solved 3/89 or --pilot RESULTS_FOLDER")
    if o.model not in plan.MODELS:
        raise AblbenchError(f"unknown --model {o.model!r}; use one of {', '.join(plan.MODELS)}")
    if o.pilot is not None:
        successes, attempts, source = _pilot_counts(o)
        model = plan.model_from_counts(successes, attempts, kind=o.model, concentration=o.concentration,
                                       source=source)
        tasks = o.tasks or len(attempts)
    else:
        if o.model == "pilot":
            raise AblbenchError("--model pilot needs --pilot RESULTS_FOLDER")
        if o.base_solved is not None:
            num, den = _fraction(o.base_solved)
            rate, tasks, source = num / den, o.tasks or den, f"base {o.base_solved}"
        else:
            rate, tasks, source = float(o.base_rate), o.tasks, f"base rate {o.base_rate:g}"  # type: ignore[arg-type]
        if tasks is None:
            raise AblbenchError("--base-rate needs --tasks N (how many tasks the study runs)")
        a, b = plan.beta_from_mean(rate, o.concentration)
        model = plan.RateModel("beta", a, b, None, f"{source}, concentration {o.concentration:g} given")
    return model, tasks


def make_plan(o: PlanOptions, progress: Callable[[str], None] | None = None) -> dict:
    """The plan as a JSON-ready dict (rules 1-3)."""
    for name, value, lo, hi in (("--alpha", o.alpha, 0.0, 1.0), ("--power", o.power, 0.0, 1.0)):
        if not lo < value < hi:
            raise AblbenchError(f"{name} {value:g} must lie strictly between {lo:g} and {hi:g}")
    if o.effect <= 0:
        raise AblbenchError(f"--effect {o.effect:g} must be > 0 (percentage points)")
    if o.studies < 100:
        raise AblbenchError(f"--studies {o.studies} is too few for a power estimate; use at least 100")
    if o.trial_minutes is not None and o.trial_minutes <= 0:
        raise AblbenchError(f"--trial-minutes {o.trial_minutes:g} must be > 0")
    model, tasks = rate_model(o)
    ks = _ks(o.attempts)
    rows = plan.plan_table(model, tasks, ks, o.effect / 100, alpha=o.alpha, target=o.power, studies=o.studies,
                           seed=o.seed, trial_minutes=o.trial_minutes, progress=progress)
    return {
        "tasks": tasks, "effect_pp": o.effect, "alpha": o.alpha, "target_power": o.power, "studies": o.studies,
        "seed": o.seed, "trial_minutes": o.trial_minutes, "model": model.describe(), "base_mean": model.mean,
        "repeat_solve": repeat_solve(model),
        "rows": [asdict(r) for r in rows],
    }


def repeat_solve(model: plan.RateModel) -> float:
    """P(a task solved in one attempt is solved in another) = E[p^2] / E[p]: how repeatable successes are."""
    rates = model.quadrature()
    return float((rates**2).mean() / rates.mean())


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def to_markdown(res: dict) -> str:
    """The plan table and the sentences that say what it assumed."""
    from harness.analysis.markdown import md_table

    eff = f"+{res['effect_pp']:g} pp"
    header = ["k", f"power at {eff}", f"detectable at {100 * res['target_power']:.0f}% power",
              "McNemar power (k = 1)", "trials (both arms)", "GPU-hours"]
    rows = []
    for r in res["rows"]:
        mc = "—" if r["mcnemar_power"] is None else (f"{_pct(r['mcnemar_power'])} (exact {_pct(r['mcnemar_exact'])})")
        se = 100 * plan.monte_carlo_se(r["power"], res["studies"])
        rows.append([r["k"], f"{_pct(r['power'])} ± {se:.1f}", "not reachable" if r["mde"] is None
                     else f"+{100 * r['mde']:.1f} pp", mc, r["trials"],
                     "—" if r["gpu_hours"] is None else f"{r['gpu_hours']:.1f}"])
    lines = [f"Plan: {res['tasks']} tasks, base mean {_pct(res['base_mean'], 2)}, effect {eff} in mean-of-k accuracy, "
             f"two-sided α = {res['alpha']:g}, {res['studies']} simulated studies per k (seed {res['seed']}).",
             f"Rate model: {res['model']}; a task solved once is solved again with probability "
             f"{_pct(res['repeat_solve'])}. The effect is one logit shift for every task.",
             "Test: the mean-of-k test (paired sign-flip permutation over tasks, exact p in every study); at k = 1 it "
             "is the exact McNemar test. Power ± its Monte Carlo standard error.", ""]
    lines += md_table(header, rows)
    if res["trial_minutes"] is None:
        lines.append("GPU-hours: give --trial-minutes (GPU time per trial) to fill that column.")
    else:
        lines.append(f"GPU-hours = trials × {res['trial_minutes']:g} min / 60 (both arms).")
    return "\n".join(lines).rstrip() + "\n"


def to_json(res: dict) -> str:
    """The plan as JSON."""
    return json.dumps(res, indent=2) + "\n"
