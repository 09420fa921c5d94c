"""Compare runs on their shared tasks: the whole analysis as one JSON-ready dict.

Rules, in order:

1. Only tasks every run attempted are analysed (the others are listed as dropped).
2. Pass rates count errored trials as failures with reward 0 (the TB2 leaderboard rule).
3. Paired tests (McNemar, Newcombe, Fisher for continuity, the sign-flip test) and Cochran's Q
   leave out a task where a run it compares has an infra, LLM or verifier error in the trials
   that decide the task's 0/1 (attempt 1 under ``--solved first``, any attempt otherwise): such
   an outcome says nothing about the agent, and counting it as a failure biases the test
   against the run with more infrastructure trouble. Each pair states how many tasks left and
   why. ``errors_as_failures=True`` (``--errors-as-failures``) restores the rule of 2.
4. Cochran's Q comes with its asymptotic (chi-square) and its exact conditional p-value.
5. What the design can resolve is the minimum detectable effect at 80 % power (power.py), not
   power at the observed rates. With several attempts per task it is stated for the design as
   run (tasks x attempts) by ``plan``'s simulation, with per-task rates from a beta-binomial fit
   to the pair's own trials.
6. With several attempts per task every attempt counts (``--solved mean``, the default): the
   headline test of a pair is the mean-of-k test (``mean_of_k``), the paired permutation test of
   per-task success rates with a paired bootstrap interval; a task's rate is taken over its
   scored trials (errors leave the rate, not the task, unless ``--errors-as-failures``), and a
   task leaves the test only when a run has no scored trial there. The per-task 0/1 views
   (solved counts, McNemar, overlap, Cochran's Q) then use attempt 1. With ``--solved
   first|any|majority`` the headline is McNemar on that 0/1 rule, and the mean-of-k test is shown
   beside it. With one attempt per task every rule gives the same answer and McNemar is the
   headline (the mean-of-k test is then the same test).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from ablbench.errors import AblbenchError
from harness.analysis import mean_of_k, plan, power, stats
from harness.analysis.behaviour import analyze_behaviour
from harness.analysis.model import Run, Trial
from harness.analysis.options import AnalyzeOptions
from harness.analysis.overlap import regions, unsolved_by_all

SOLVED_RULES = {
    "mean": "every attempt counts: the headline test compares per-task success rates (mean-of-k); for the "
            "per-task 0/1 views (solved counts, McNemar, overlap) a task counts as solved in attempt 1",
    "first": "solved in attempt 1 (the lowest-numbered attempt); keeps the paired tests exactly the "
             "single-attempt design and is unaffected by runs having different numbers of attempts",
    "any": "solved in at least one attempt (the pass@k set)",
    "majority": "solved in more than half of its attempts",
}
UNUSUAL_RULE = ("a task is flagged when its mean count per trial is above the run's upper Tukey fence "
                "(Q3 + 1.5 x IQR of the per-task means) and at least 2")
#: outcomes that say nothing about the agent: their tasks leave the paired tests (rule 3)
ERROR_OUTCOMES = ("infra_error", "llm_error", "verifier_error")
ERRORS_RULE = {
    False: "a task where either run of a pair has an infra, LLM or verifier error (in the trials that decide the "
           "task) leaves that pair's paired test, and the all-runs test when any run has one: such an outcome "
           "says nothing about the agent",
    True: "errored trials count as failures with reward 0 in the paired tests too (--errors-as-failures)",
}
OUTCOME_ORDER = ["passed", "failed", "agent_timeout", "context_exceeded", "parse_fail_exhausted",
                 "verifier_error", "llm_error", "infra_error"]


def _solved(trials: list[Trial], rule: str) -> bool:
    if rule in ("first", "mean"):
        return trials[0].solved
    if rule == "any":
        return any(t.solved for t in trials)
    return sum(t.solved for t in trials) * 2 > len(trials)


def _error_of(trials: list[Trial], rule: str) -> str | None:
    """The error outcome that takes this task out of the paired tests, or None (rule 3)."""
    used = trials[:1] if rule in ("first", "mean") else trials
    return next((t.outcome for t in used if t.outcome in ERROR_OUTCOMES), None)


def _unusual(per_task: dict[str, float]) -> list[dict]:
    if len(per_task) < 4:
        return []
    values = np.array(list(per_task.values()))
    q1, q3 = np.percentile(values, [25, 75])
    fence = q3 + 1.5 * (q3 - q1)
    hits = [(t, v) for t, v in per_task.items() if v > fence and v >= 2]
    return [{"task": t, "mean": round(v, 3)} for t, v in sorted(hits, key=lambda x: (-x[1], x[0]))]


def _failure_stats(grouped: dict[str, list[Trial]]) -> dict:
    trials = [t for ts in grouped.values() for t in ts]
    counts = Counter(t.outcome for t in trials)
    ordered = {k: counts[k] for k in OUTCOME_ORDER if counts[k]}
    ordered.update({k: v for k, v in sorted(counts.items()) if k not in ordered})
    out: dict = {"outcomes": ordered}
    for col in ("parse_fail", "no_cmd"):
        vals = [getattr(t, col) for t in trials]
        if all(v is None for v in vals):
            continue
        out[f"{col}_mean"] = float(np.mean([v or 0.0 for v in vals]))
        per_task = {task: float(np.mean([getattr(t, col) or 0.0 for t in ts])) for task, ts in grouped.items()}
        out[f"unusual_{col}"] = _unusual(per_task)
    return out


def _run_summary(run: Run, grouped: dict[str, list[Trial]], solved: set[str], dropped: list[str]) -> dict:
    n = len(grouped)
    passes = len(solved)
    lo, hi = stats.wilson(passes, n)
    attempts = [len(ts) for ts in grouped.values()]
    rates = {task: sum(t.reward for t in ts) / len(ts) for task, ts in grouped.items()}
    n_trials = sum(attempts)
    summary: dict = {
        "name": run.name, "n": n, "passes": passes, "rate": passes / n if n else 0.0, "wilson95": [lo, hi],
        "source": str(run.source), "kind": run.kind, "tasks_in_run": len(run.tasks()), "dropped_tasks": dropped,
        "attempts_min": min(attempts), "attempts_max": max(attempts), "trials": n_trials,
        "trial_passes": sum(t.solved for ts in grouped.values() for t in ts),
        # the TB2 leaderboard score: mean reward over all trials, errors counted as 0
        "mean_pass_at_1": sum(t.reward for ts in grouped.values() for t in ts) / n_trials,
        "mean_of_task_rates": float(np.mean(list(rates.values()))),
    }
    # the TB2 leaderboard's own figure: mean over trials +- 1.96 SE (None with one attempt per task)
    summary["leaderboard"] = {"mean": summary["mean_pass_at_1"],
                              "half_width": stats.leaderboard_ci(list(rates.values()), attempts)}
    kmin = min(attempts)
    if max(attempts) > 1:
        summary["ci95_fixed_tasks"] = stats.leaderboard_ci(list(rates.values()), attempts)
        summary["ci95_tasks_resampled"] = stats.task_resampling_ci(list(rates.values()))
        summary["pass_at_k"] = {str(k): float(np.mean([stats.pass_at_k(len(ts), sum(t.solved for t in ts), k)
                                                         for ts in grouped.values()])) for k in range(1, kmin + 1)}
        summary["pass_hat_k"] = {str(k): float(np.mean([stats.pass_hat_k(len(ts), sum(t.solved for t in ts), k)
                                                          for ts in grouped.values()])) for k in range(1, kmin + 1)}
    summary.update(_failure_stats(grouped))
    summary["per_task_rate"] = dict(sorted(rates.items()))
    return summary


def _pair(a: dict, b: dict, sa: set[str], sb: set[str], shared: list[str],
          errors: dict[str, dict[str, str]]) -> dict:
    ea, eb = errors.get(a["name"], {}), errors.get(b["name"], {})
    excluded = [{"task": t, a["name"]: ea.get(t), b["name"]: eb.get(t)} for t in shared if t in ea or t in eb]
    tasks = [t for t in shared if t not in ea and t not in eb]
    sa, sb = sa & set(tasks), sb & set(tasks)
    both = len(sa & sb)
    a_only, b_only = sorted(sa - sb), sorted(sb - sa)
    n = len(tasks)
    neither = n - both - len(a_only) - len(b_only)
    exact, midp = stats.mcnemar_exact(len(a_only), len(b_only))
    diff, lo, hi = stats.newcombe_paired(both, len(a_only), len(b_only), neither) if n else (None, None, None)
    f2, f1 = stats.fisher(both + len(a_only), n, both + len(b_only), n) if n else (1.0, 1.0)
    discordant = len(a_only) + len(b_only)
    out: dict = {
        "a": a["name"], "b": b["name"], "n": n, "both": both, "a_only": len(a_only), "b_only": len(b_only),
        "neither": neither, "diff": diff, "newcombe95": [lo, hi],
        "mcnemar_exact_p": exact, "mcnemar_midp": midp,
        "fisher_two_sided_p": f2, "fisher_one_sided_p": f1, "fisher_note": "unpaired; one-sided = a greater than b",
        "a_only_tasks": a_only, "b_only_tasks": b_only,
        "excluded_errors": excluded,
        "mde80": {"discordant": discordant, "discordant_share": discordant / n if n else None,
                  "mcnemar": power.mde_mcnemar(n, discordant / n) if n else None},
    }
    return out


def _scored_rate(trials: list[Trial], errors_as_failures: bool) -> tuple[int, int] | None:
    """(successes, scored attempts) of a task (rule 6); None when no attempt was scored."""
    used = trials if errors_as_failures else [t for t in trials if t.outcome not in ERROR_OUTCOMES]
    return (sum(t.solved for t in used), len(used)) if used else None


def _mean_of_k_pair(ga: dict[str, list[Trial]], gb: dict[str, list[Trial]], shared: list[str],
                    errors_as_failures: bool) -> dict:
    """The mean-of-k test of one pair (rule 6) and the detectable effect of its design (rule 5)."""
    counts = {t: (_scored_rate(ga[t], errors_as_failures), _scored_rate(gb[t], errors_as_failures)) for t in shared}
    tasks = [t for t, (ca, cb) in counts.items() if ca is not None and cb is not None]
    left = [t for t in shared if t not in tasks]
    ra = [counts[t][0][0] / counts[t][0][1] for t in tasks]  # type: ignore[index]
    rb = [counts[t][1][0] / counts[t][1][1] for t in tasks]  # type: ignore[index]
    res = mean_of_k.mean_of_k_test(ra, rb)
    out: dict = {"n": res.n, "n_nonzero": res.n_nonzero, "diff": res.diff, "p": res.p, "method": res.method,
                 "ci95": list(res.ci95) if res.ci95 else None, "ci_method": res.ci_method,
                 "left_out_no_scored_trial": left}
    attempts = [counts[t][i][1] for t in tasks for i in (0, 1)]  # type: ignore[index]
    k = min(attempts) if attempts else 0
    successes = [counts[t][i][0] for t in tasks for i in (0, 1)]  # type: ignore[index]
    design: dict = {"tasks": len(tasks), "attempts": k, "mde": None, "model": None}
    if k >= 2 and len(tasks) >= 2:
        try:
            model = plan.model_from_counts(successes, attempts, source="both runs' scored trials")
        except AblbenchError as exc:
            design["model"] = f"no rate model: {exc}"
        else:
            design["model"] = model.describe()
            design["mde"] = plan.design_mde(model, len(tasks), k)
    out["design_mde80"] = design
    return out
    return out


def analyze(runs: Sequence[Run], options: AnalyzeOptions = AnalyzeOptions()) -> dict:
    """Analyse runs on the tasks they all share (the rules in this module's docstring).

    Reads ``options.solved`` and ``options.errors_as_failures``; the other fields are the command's.
    """
    solved_rule, errors_as_failures = options.solved, options.errors_as_failures
    if not runs:
        raise AblbenchError("no runs given; pass at least one results folder")
    if solved_rule not in SOLVED_RULES:
        raise AblbenchError(f"unknown --solved rule {solved_rule!r}; use one of {', '.join(SOLVED_RULES)}")
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AblbenchError(f"run name(s) {', '.join(dupes)} used twice; give distinct names with --names a,b,...")
    shared = set.intersection(*(r.tasks() for r in runs))
    if not shared:
        raise AblbenchError("the runs share no task; compare runs made on the same task set")
    tasks = sorted(shared)
    grouped = {r.name: {t: ts for t, ts in r.by_task().items() if t in shared} for r in runs}
    solved = {r.name: {t for t, ts in grouped[r.name].items() if _solved(ts, solved_rule)} for r in runs}
    summaries = [_run_summary(r, grouped[r.name], solved[r.name], sorted(r.tasks() - shared)) for r in runs]
    multi = any(s["attempts_max"] > 1 for s in summaries)
    errors: dict[str, dict[str, str]] = {} if errors_as_failures else {
        r.name: {t: e for t, ts in grouped[r.name].items() if (e := _error_of(ts, solved_rule))} for r in runs}
    result: dict = {
        "n_tasks": len(tasks),
        "solved_rule": solved_rule,
        "solved_rule_text": SOLVED_RULES[solved_rule] if multi else "one attempt per task: solved = reward 1",
        "multi_attempt": multi,
        # rule 6: which test is the pair's headline
        "headline_test": "mean_of_k" if multi and solved_rule == "mean" else "mcnemar",
        "unusual_rule": UNUSUAL_RULE,
        "errors_as_failures": errors_as_failures,
        "errors_rule": ERRORS_RULE[errors_as_failures],
        "runs": summaries,
        "pairs": [],
    }
    by_name = {s["name"]: s for s in summaries}
    for a, b in combinations(names, 2):
        pair = _pair(by_name[a], by_name[b], solved[a], solved[b], tasks, errors)
        if multi:
            mk = _mean_of_k_pair(grouped[a], grouped[b], tasks, errors_as_failures)
            pair.update({"mean_of_k": mk, "mean_rate_diff": mk["diff"], "sign_flip_p": mk["p"],
                         "sign_flip_method": mk["method"]})
            pair["mde80"]["mean_of_k"] = mk["design_mde80"]["mde"]
        result["pairs"].append(pair)
    if len(runs) >= 3:
        clean = [t for t in tasks if not any(t in errors.get(n, {}) for n in names)]
        matrix = np.array([[t in solved[n] for n in names] for t in clean], dtype=float).reshape(len(clean), len(names))
        q, df, p = stats.cochran_q(matrix) if clean else (0.0, len(names) - 1, 1.0)
        p_exact, method = stats.cochran_q_exact(matrix) if clean else (1.0, "exact")
        result["cochran_q"] = {"q": q, "df": df, "p": p, "p_exact": p_exact, "exact_method": method,
                               "n": len(clean), "excluded_errors": len(tasks) - len(clean)}
        for pair, adj in zip(result["pairs"], stats.holm([p["mcnemar_exact_p"] for p in result["pairs"]]),
                             strict=True):
            pair["mcnemar_holm_p"] = adj
        if multi:
            for pair, adj in zip(result["pairs"], stats.holm([p["mean_of_k"]["p"] for p in result["pairs"]]),
                                 strict=True):
                pair["mean_of_k"]["holm_p"] = adj
    result["overlap"] = [{"runs": list(r.runs), "label": r.label(names), "tasks": list(r.tasks)}
                         for r in regions(solved, names)]
    result["unsolved_by_all"] = len(unsolved_by_all(solved, shared))
    attempts = {(s["attempts_min"], s["attempts_max"]) for s in summaries}
    result["design"] = {"tasks": len(tasks), "attempts_min": min(a for a, _ in attempts),
                        "attempts_max": max(b for _, b in attempts)}
    notes = []
    if solved_rule == "any" and len(attempts) > 1:
        notes.append("runs have different numbers of attempts: with --solved any the run with more attempts "
                     "is favoured; prefer --solved first")
    result["notes"] = notes
    result["behaviour"] = analyze_behaviour(runs, tasks)  # a separate section: harness.analysis.behaviour
    return result
