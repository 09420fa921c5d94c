"""The ``## Behaviour`` section of the markdown report, from ``analysis["behaviour"]``.

Order: the rules, one sentence per metric and pair, a per-run table of metric means (pooled
rates for the rate metrics), the paired statistics table per pair, then every turn where a
refusal marker fired (with the judge's verdict when one was asked).
"""

from __future__ import annotations

from harness.analysis.behaviour import BY_KEY, METRICS, format_value
from harness.analysis.markdown import fmt_p, md_table

#: rows of the refusal table shown in markdown (the JSON holds every one)
MAX_REFUSAL_ROWS = 100


def _value(key: str, entry: dict) -> str:
    m = BY_KEY[key]
    if m.kind == "rate":
        if entry.get("pooled") is None:
            return "—"
        return f"{100 * entry['pooled']:.1f}% ({entry['events']}/{entry['turns']})"
    if entry.get("mean") is None:
        return "—"
    if m.kind == "share":
        return f"{100 * entry['mean']:.1f}%"
    return format_value(m, entry["mean"])


def _num(x: float | None, pct: bool) -> str:
    if x is None:
        return "—"
    return f"{100 * x:+.1f} pp" if pct else f"{x:+.2f}"


def section(beh: dict) -> list[str]:
    """The markdown lines of the behaviour section."""
    lines = ["## Behaviour in the trajectories", ""]
    if not beh.get("available"):
        names = ", ".join(r["name"] for r in beh.get("runs", []))
        return lines + [f"No trajectory (trace.jsonl, ATIF trajectory.json) and no behaviour column in: {names}.", ""]
    lines += [f"- {rule}" for rule in beh["rules"]] + [""]
    for pair in beh["pairs"]:
        lines += [f"**{pair['a']} vs {pair['b']}** ({pair['n_tasks']} shared tasks with trajectories):", ""]
        lines += [f"- {m['sentence']}" for m in pair["metrics"]]
        oc = pair["outcome_changes"]
        changed = ", ".join(f"{c['task']} ({c['a']} → {c['b']})" for c in oc["changed"]) or "none"
        lines += [f"- Outcome class (first attempt) the same on {oc['same']} task(s); changed on "
                  f"{len(oc['changed'])}: {changed}.", ""]
    runs = beh["runs"]
    header = ["metric", *(r["name"] for r in runs)]
    rows = [[m.label + (" (pooled over turns)" if m.kind == "rate" else " (mean per trial)"),
             *(_value(m.key, r["metrics"][m.key]) for r in runs)] for m in METRICS]
    rows.append(["trials with behaviour (infra errors left out)",
                 *(f"{r['with_behaviour']} of {r['trials']}" for r in runs)])
    lines += ["Per run:", "", *md_table(header, rows, "l" + "r" * len(runs))]
    for pair in beh["pairs"]:
        prow = []
        for m in pair["metrics"]:
            pct = m["kind"] in ("rate", "share")
            pooled = m.get("pooled")
            prow.append([m["label"], m["n"], _num(m["mean_diff"], pct), _num(m["hodges_lehmann"], pct),
                         f"{m['rank_biserial']:+.2f}", fmt_p(m["wilcoxon_p"]), fmt_p(m["wilcoxon_holm_p"]),
                         _num(pooled["diff"], True) if pooled else "", fmt_p(pooled["p"]) if pooled else "",
                         fmt_p(pooled["holm_p"]) if pooled else ""])
        lines += [f"Paired, {pair['a']} − {pair['b']} per task:", ""]
        lines += md_table(["metric", "tasks", "mean difference", "Hodges–Lehmann", "rank-biserial r", "Wilcoxon p",
                         "Holm (Wilcoxon)", "pooled difference", "permutation p (tasks)", "Holm (permutation)"], prow, "lrrrrrrrrr")
    lines += _refusals(beh)
    return lines


def _refusals(beh: dict) -> list[str]:
    hits = beh["refusals"]
    lines = ["### Turns with a refusal marker", ""]
    if not hits:
        return lines + ["No reply in any trajectory carries a refusal marker.", ""]
    judged = "judge" in beh
    lines.append(f"{len(hits)} turn(s); the markers are keyword matches, so read the excerpts"
                 + (f"; judge: {beh['judge']['model']} at {beh['judge']['url']}." if judged else
                    " (or pass `--judge URL MODEL` for an LLM judge's verdict)."))
    lines.append("")
    header = ["run", "task", "attempt", "turn", "markers", "excerpt"] + (["judge"] if judged else [])
    rows = [[h["run"], h["task"], h["attempt"], h["turn"], ", ".join(h["markers"]), h["excerpt"]]
            + ([h.get("judge", {}).get("verdict", "—")] if judged else []) for h in hits[:MAX_REFUSAL_ROWS]]
    lines += md_table(header, rows, "llrrll" + ("l" if judged else ""))
    if len(hits) > MAX_REFUSAL_ROWS:
        lines += [f"({len(hits) - MAX_REFUSAL_ROWS} more in the JSON report.)", ""]
    if judged:
        j = beh["judge"]
        lines += [f"Judge: {j['refusals']} of {j['judged']} flagged turn(s) judged refusals, {j['errors']} "
                  "unanswered.", ""]
    return lines
