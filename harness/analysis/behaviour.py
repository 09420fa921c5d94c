"""Behaviour of runs, not only pass counts: per-trial metrics, per-run summaries, paired tests.

Rules, in order:

1. Per trial, the metrics of :mod:`harness.trial_behaviour` are read from the trial's trajectory
   (``trace.jsonl`` or ATIF ``trajectory.json``) where its folder has one, so the numbers, the
   refusal table and the current marker list agree; otherwise from the behaviour columns of
   ``master_summary.csv``; a trial with neither has no behaviour values.
2. Trials that ended in ``infra_error`` are left out: the agent never really ran.
3. Per-trial values (:data:`METRICS`): turns; the parse_fail, no_cmd, cut-off and refusal
   rates (events / turns, undefined for 0 turns); commands and distinct commands; false
   completion (claimed ``task_complete``, then graded as not passed); prompt and completion
   tokens; seconds to the first executed command (undefined when none ran).
4. Per task and run, the mean over its attempts; pairs are compared on the tasks every run
   shares (the analysis's task set), per metric on those where both runs have a value.
5. Per pair and metric: the Wilcoxon signed-rank test with rank-biserial r and the
   Hodges–Lehmann shift (:mod:`harness.analysis.paired_stats`), Holm-adjusted across the
   metrics; for rates also the pooled rate over turns with the task-level (cluster-aware)
   permutation test, Holm-adjusted across the rate metrics. One sentence per metric says it.
6. Every turn where a refusal marker fired is listed (run, task, attempt, turn, markers,
   excerpt) for checking by eye; an LLM judge can add its verdict (``--judge``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from ablbench.results import BEHAVIOUR_COLUMNS, false_completion
from harness.analysis.model import Run, Trial
from harness.analysis.paired_stats import pooled_rate_test, wilcoxon_paired
from harness.analysis.stats import holm
from harness.trial_behaviour import find_trajectory, metrics, read_turns, refusal_turns

ALPHA = 0.05
#: characters of a flagged reply kept in the JSON (for the judge and for reading)
REPLY_CHARS = 1000


@dataclass(frozen=True)
class Metric:
    """One behaviour metric: how it is computed per trial and how a sentence says it."""

    key: str
    label: str
    kind: str  # "rate" (events per turn) | "mean" (a number per trial) | "share" (0/1 per trial)
    says: str  # "{a} ... {va} ... {vb} ... {b}"
    events: str | None = None  # rate: the trial counter that is the numerator
    unit: str = ""


METRICS: tuple[Metric, ...] = (
    Metric("turns", "turns used", "mean", "{a} used {va} turns per trial vs {vb} for {b}"),
    Metric("parse_fail_rate", "parse_fail rate", "rate", "{a}'s replies could not be parsed in {va} of turns "
           "vs {vb} for {b}", events="parse_fail"),
    Metric("no_cmd_rate", "no_cmd rate", "rate", "{a} parsed but ran no command in {va} of turns vs {vb} for {b}",
           events="no_cmd"),
    Metric("cut_off_rate", "cut-off rate", "rate", "{a}'s replies were cut off at the token limit in {va} of turns "
           "vs {vb} for {b}", events="cut_off"),
    Metric("refusal_rate", "refusal-marker rate", "rate", "{a} refused (a refusal marker in the reply) in {va} of "
           "turns vs {vb} for {b}", events="refusal_turns"),
    Metric("commands", "commands executed", "mean", "{a} executed {va} commands per trial vs {vb} for {b}"),
    Metric("distinct_commands", "distinct commands", "mean", "{a} executed {va} distinct commands per trial vs {vb} "
           "for {b}"),
    Metric("false_completion", "false completion", "share", "{a} claimed task_complete on a trial it then failed "
           "in {va} of trials vs {vb} for {b}"),
    Metric("tokens_in", "prompt tokens", "mean", "{a} used {va} prompt tokens per trial vs {vb} for {b}"),
    Metric("tokens_out", "completion tokens", "mean", "{a} generated {va} completion tokens per trial vs {vb} "
           "for {b}"),
    Metric("first_cmd_s", "seconds to first command", "mean", "{a} ran its first command {va} after its start vs "
           "{vb} for {b}", unit="s"),
)
BY_KEY = {m.key: m for m in METRICS}
RULES = [
    "Per trial from its trajectory (trace.jsonl or ATIF trajectory.json) where the trial folder has one, else from "
    "the behaviour columns of master_summary.csv; infra_error trials are left out (the agent never ran).",
    "Rates are events per turn; each task's value is the mean over its attempts; pairs use the shared tasks where "
    "both runs have a value.",
    "Per metric: two-sided Wilcoxon signed-rank test on the per-task differences (a − b), rank-biserial r "
    "(+1: a higher on every task that differs), Hodges–Lehmann shift; Holm-adjusted across the metrics.",
    "Rates pooled over turns are tested with a permutation test that swaps the two runs' turns task by task "
    "(turns of one task are not independent), Holm-adjusted across the rate metrics.",
    "Refusal = a marker of abliterate.evaluate.markers in the reply outside reasoning blocks: keyword matches, listed below "
    "for checking by eye.",
]


@dataclass
class TrialBehaviour:
    """One trial's behaviour: counters (:func:`harness.trial_behaviour.metrics`), values, refusal hits."""

    task: str
    attempt: int
    outcome: str
    source: str  # "trace" | "atif" | "summary"
    counts: dict[str, Any]
    values: dict[str, float | None] = field(default_factory=dict)
    refusals: list[dict] = field(default_factory=list)


def _num(text: Any) -> float | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


_SUMMARY_COUNTS = ("turns", "parse_fail", "no_cmd", "cut_off", "refusal_turns", "commands", "distinct_commands",
                   "task_complete_claimed", "tokens_in", "tokens_out", "first_cmd_s")


def _counts_from_columns(columns: dict[str, str]) -> dict[str, Any] | None:
    """Trial counters from a summary row; None when the row has no behaviour column at all."""
    if not any(_num(columns.get(c)) is not None for c in (*BEHAVIOUR_COLUMNS, "turns")):
        return None
    return {k: _num(columns.get(k)) for k in _SUMMARY_COUNTS}


def trial_values(counts: dict[str, Any], outcome: str) -> dict[str, float | None]:
    """The per-trial value of every metric (module doc, rule 3); None where undefined or unknown."""
    turns = counts.get("turns")
    out: dict[str, float | None] = {}
    for m in METRICS:
        if m.kind == "rate":
            events = counts.get(m.events or "")
            out[m.key] = None if events is None or not turns else float(events) / float(turns)
        elif m.key == "false_completion":
            claimed = counts.get("task_complete_claimed")
            fc = false_completion(None if claimed is None else bool(claimed), outcome)
            out[m.key] = None if fc is None else float(fc)
        else:
            v = counts.get(m.key)
            out[m.key] = None if v is None else float(v)
    return out


def trial_behaviour(trial: Trial) -> TrialBehaviour | None:
    """A trial's behaviour from its trajectory, else its summary row (rule 1); None without either."""
    path = find_trajectory(trial.trial_dir) if trial.trial_dir is not None else None
    if path is not None:
        turns = read_turns(path)
        counts = metrics(turns)
        hits = [{"turn": h.turn, "markers": list(h.markers), "excerpt": h.excerpt, "reply": h.reply[:REPLY_CHARS]}
                for h in refusal_turns(turns)]
        source = "trace" if path.suffix == ".jsonl" else "atif"
    else:
        counts = _counts_from_columns(trial.columns or {})
        if counts is None:
            return None
        hits, source = [], "summary"
    return TrialBehaviour(trial.task, trial.attempt, trial.outcome, source, counts,
                          trial_values(counts, trial.outcome), hits)


def format_value(m: Metric, value: float | None, events: int | None = None, total: int | None = None) -> str:
    """A metric value for people: a percentage (with events/total when given), seconds, or a number."""
    if value is None:
        return "—"
    if m.kind in ("rate", "share"):
        text = f"{100 * value:.1f} %"
        return f"{text} ({events}/{total})" if events is not None and total is not None else text
    if m.unit == "s":
        return f"{value:.1f} s"
    return f"{value:.1f}" if abs(value) < 100 else f"{value:,.0f}"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def sentence(m: Metric, row: dict) -> str:
    """One plain sentence for a metric of a pair (module doc, rule 5)."""
    a, b = row["a"], row["b"]
    if row["n"] == 0:
        return (f"{m.label}: no shared task has a value in both runs ({a} on {row['tasks_a']}, {b} on "
                f"{row['tasks_b']} task(s)).")
    pooled = row.get("pooled")
    if pooled is not None:
        va = format_value(m, pooled["rate_a"], pooled["events_a"], pooled["turns_a"])
        vb = format_value(m, pooled["rate_b"], pooled["events_b"], pooled["turns_b"])
        p, adj = pooled["p"], pooled["holm_p"]
        test = (f"p = {_p(p)} (permutation over {pooled['n_tasks']} tasks, Holm {_p(adj)}; "
                f"Wilcoxon on per-task rates p = {_p(row['wilcoxon_p'])})")
    else:
        if m.kind == "share":
            va = format_value(m, row["mean_a"], round(row["mean_a"] * row["n"]) if row["n_single"] else None,
                            row["n"] if row["n_single"] else None)
            vb = format_value(m, row["mean_b"], round(row["mean_b"] * row["n"]) if row["n_single"] else None,
                            row["n"] if row["n_single"] else None)
        else:
            va, vb = format_value(m, row["mean_a"]), format_value(m, row["mean_b"])
        p, adj = row["wilcoxon_p"], row["wilcoxon_holm_p"]
        test = (f"p = {_p(p)} (Wilcoxon signed-rank over {row['n']} tasks, Holm {_p(adj)}), "
                f"rank-biserial r = {row['rank_biserial']:+.2f}")
    verdict = "a difference at α = 0.05 after Holm" if adj <= ALPHA else "not a significant difference"
    return m.says.format(a=a, b=b, va=va, vb=vb) + f"; {test}: {verdict}."


def _per_task(rows: Sequence[TrialBehaviour], key: str) -> dict[str, float]:
    """Per task, the mean of the trials' values of ``key`` (trials without a value ignored)."""
    acc: dict[str, list[float]] = {}
    for r in rows:
        v = r.values.get(key)
        if v is not None:
            acc.setdefault(r.task, []).append(v)
    return {t: float(np.mean(vs)) for t, vs in acc.items()}


def _per_task_counts(rows: Sequence[TrialBehaviour], events: str) -> dict[str, tuple[int, int]]:
    """Per task, (events, turns) summed over its trials with at least one turn."""
    acc: dict[str, tuple[int, int]] = {}
    for r in rows:
        e, n = r.counts.get(events), r.counts.get("turns")
        if e is None or not n:
            continue
        pe, pn = acc.get(r.task, (0, 0))
        acc[r.task] = (pe + int(e), pn + int(n))
    return acc


def _compare(a: str, b: str, ra: list[TrialBehaviour], rb: list[TrialBehaviour], tasks: list[str]) -> dict:
    single = all(Counter(r.task for r in rows).most_common(1)[0][1] == 1 for rows in (ra, rb) if rows)
    rows: list[dict] = []
    for m in METRICS:
        ta, tb = _per_task(ra, m.key), _per_task(rb, m.key)
        common = [t for t in tasks if t in ta and t in tb]
        xa, xb = [ta[t] for t in common], [tb[t] for t in common]
        w = wilcoxon_paired(xa, xb)
        diffs = {t: ta[t] - tb[t] for t in common}
        row: dict[str, Any] = {
            "key": m.key, "label": m.label, "kind": m.kind, "a": a, "b": b, "n": len(common), "n_single": single,
            "tasks_a": sum(t in ta for t in tasks), "tasks_b": sum(t in tb for t in tasks),
            "mean_a": float(np.mean(xa)) if xa else None, "mean_b": float(np.mean(xb)) if xb else None,
            "mean_diff": float(np.mean(list(diffs.values()))) if diffs else None,
            "median_diff": float(np.median(list(diffs.values()))) if diffs else None,
            "hodges_lehmann": w.hodges_lehmann, "wilcoxon_p": w.p, "wilcoxon_method": w.method,
            "wilcoxon_nonzero": w.n_nonzero, "rank_biserial": w.rank_biserial, "per_task_diff": diffs,
        }
        if m.kind == "rate":
            ca, cb = _per_task_counts(ra, m.events or ""), _per_task_counts(rb, m.events or "")
            both = [t for t in tasks if t in ca and t in cb]
            res = pooled_rate_test([ca[t][0] for t in both], [ca[t][1] for t in both],
                                   [cb[t][0] for t in both], [cb[t][1] for t in both])
            row["pooled"] = {"n_tasks": res.n_tasks, "events_a": res.events_a, "turns_a": res.turns_a,
                             "events_b": res.events_b, "turns_b": res.turns_b, "rate_a": res.rate_a,
                             "rate_b": res.rate_b, "diff": res.diff, "p": res.p, "method": res.method}
        rows.append(row)
    for row, adj in zip(rows, holm([r["wilcoxon_p"] for r in rows]), strict=True):
        row["wilcoxon_holm_p"] = adj
    rates = [r for r in rows if "pooled" in r]
    for row, adj in zip(rates, holm([r["pooled"]["p"] for r in rates]), strict=True):
        row["pooled"]["holm_p"] = adj
    for row in rows:
        row["sentence"] = sentence(BY_KEY[row["key"]], row)
    # descending attempts: the dict keeps the last written, i.e. each task's first attempt
    first_a = {r.task: r.outcome for r in sorted(ra, key=lambda r: -r.attempt)}
    first_b = {r.task: r.outcome for r in sorted(rb, key=lambda r: -r.attempt)}
    both_tasks = [t for t in tasks if t in first_a and t in first_b]
    changed = [{"task": t, "a": first_a[t], "b": first_b[t]} for t in both_tasks if first_a[t] != first_b[t]]
    return {"a": a, "b": b, "n_tasks": len(both_tasks), "metrics": rows,
            "outcome_changes": {"same": len(both_tasks) - len(changed), "changed": changed}}


def _run_summary(name: str, rows: list[TrialBehaviour], excluded: int, trials: int) -> dict:
    per_metric: dict[str, dict] = {}
    for m in METRICS:
        vals = [r.values[m.key] for r in rows if r.values.get(m.key) is not None]
        entry: dict[str, Any] = {"n": len(vals), "mean": float(np.mean(vals)) if vals else None,
                                 "median": float(np.median(vals)) if vals else None}
        if m.kind == "rate":
            pairs = [(r.counts.get(m.events or ""), r.counts.get("turns")) for r in rows]
            pairs = [(int(e), int(n)) for e, n in pairs if e is not None and n]
            events, turns = sum(e for e, _ in pairs), sum(n for _, n in pairs)
            entry.update({"events": events, "turns": turns, "pooled": events / turns if turns else None})
        per_metric[m.key] = entry
    return {
        "name": name, "trials": trials, "with_behaviour": len(rows), "excluded_infra_error": excluded,
        "sources": dict(Counter(r.source for r in rows)), "outcomes": dict(Counter(r.outcome for r in rows)),
        "metrics": per_metric,
        "per_trial": [{"task": r.task, "attempt": r.attempt, "outcome": r.outcome, "source": r.source, **r.values}
                      for r in rows],
    }


def analyze_behaviour(runs: Sequence[Run], tasks: Sequence[str] | None = None) -> dict:
    """The ``behaviour`` section of an analysis (module doc) for ``runs`` on ``tasks`` (default: shared).

    Keys: ``available`` (any behaviour data at all), ``rules`` (sentences), ``alpha``, ``metrics``
    (key, label, kind of each :data:`METRICS`); ``runs[]``: name, trials, with_behaviour,
    excluded_infra_error, sources, outcomes, ``metrics[key]`` (n, mean, median; rates also events,
    turns, pooled) and ``per_trial[]`` (task, attempt, outcome, source, one value per metric);
    ``pairs[]``: a, b, n_tasks, outcome_changes, ``metrics[]`` (n, mean_a, mean_b, mean_diff,
    median_diff, hodges_lehmann, wilcoxon_p / _method / _nonzero / _holm_p, rank_biserial,
    per_task_diff, sentence; rates also ``pooled``: events/turns/rate per run, diff, p, method,
    holm_p); ``refusals[]``: run, task, attempt, turn, markers, excerpt, reply (+ ``judge`` with
    ``--judge``, and a top-level ``judge`` count).
    """
    if tasks is None:
        tasks = sorted(set.intersection(*(r.tasks() for r in runs))) if runs else []
    keep = set(tasks)
    data: dict[str, list[TrialBehaviour]] = {}
    summaries = []
    refusals: list[dict] = []
    for run in runs:
        trials = [t for t in run.trials if t.task in keep]
        excluded = sum(t.outcome == "infra_error" for t in trials)
        rows = [b for b in (trial_behaviour(t) for t in trials if t.outcome != "infra_error") if b is not None]
        data[run.name] = rows
        summaries.append(_run_summary(run.name, rows, excluded, len(trials)))
        for r in sorted(rows, key=lambda r: (r.task, r.attempt)):
            refusals += [{"run": run.name, "task": r.task, "attempt": r.attempt, **h} for h in r.refusals]
    available = any(data.values())
    pairs = [_compare(a.name, b.name, data[a.name], data[b.name], list(tasks))
             for a, b in combinations(runs, 2) if data[a.name] and data[b.name]]
    return {"available": available, "rules": RULES, "alpha": ALPHA,
            "metrics": [{"key": m.key, "label": m.label, "kind": m.kind} for m in METRICS],
            "runs": summaries, "pairs": pairs, "refusals": refusals}
