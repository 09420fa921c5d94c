"""Write an analysis (the dict from :func:`harness.analysis.compare.analyze`) as markdown or JSON."""

from __future__ import annotations

import json

from ablbench.records import Analysis, check_record
from harness.analysis.behaviour_report import section as behaviour_section
from harness.analysis.markdown import fmt_p as fmt_p  # re-exported (the CLI prints p-values too)
from harness.analysis.markdown import md_table


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def signed_pp(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f} pp"


def _ci(lo: float, hi: float) -> str:
    return f"{pct(lo)} – {pct(hi)}"


def _intro(res: dict) -> list[str]:
    runs = res["runs"]
    names = ", ".join(r["name"] for r in runs)
    lines = [f"# Run comparison: {names}", ""]
    dropped = {r["name"]: r["dropped_tasks"] for r in runs if r["dropped_tasks"]}
    shared = f"{res['n_tasks']} tasks"
    if len(runs) > 1:
        shared += " shared by both runs" if len(runs) == 2 else f" shared by all {len(runs)} runs"
    lines.append(f"Analysed: {shared}; " + ("no task dropped." if not dropped else
                                            "tasks not run by every run were dropped (listed below)."))
    if res["multi_attempt"]:
        att = ", ".join(f"{r['name']} {r['attempts_min']}" + (f"–{r['attempts_max']}" if r['attempts_max']
                        != r['attempts_min'] else "") for r in runs)
        rule = (f"{res['solved_rule_text'][0].upper()}{res['solved_rule_text'][1:]}" if res["solved_rule"] == "mean"
                else f"Per-task 0/1 for rates, paired tests and overlap: {res['solved_rule_text']}")
        lines.append(f"Attempts per task: {att}. {rule} (`--solved {res['solved_rule']}`).")
        if res.get("headline_test") == "mean_of_k":
            lines.append("Headline test: the mean-of-k test, a paired permutation test over tasks of the per-task "
                         "success rates over all attempts, with a paired bootstrap interval (`--solved "
                         "first|any|majority` makes McNemar on that 0/1 rule the headline instead).")
    else:
        lines.append("One attempt per task; a task counts as solved when its reward is 1. The mean-of-k test (every "
                     "attempt, used with several attempts per task) is then the exact McNemar test below.")
    if res.get("errors_as_failures", True):
        lines += ["Errored trials (timeouts, verifier or server errors) count as failures with reward 0, "
                  "as on the TB2 leaderboard, in the paired tests too (`--errors-as-failures`).", ""]
    else:
        lines += ["Pass rates count errored trials as failures with reward 0, as on the TB2 leaderboard. The paired "
                  f"tests do not: {res['errors_rule']}. Each pair says how many tasks left and why "
                  "(`--errors-as-failures` counts them as failures instead).", ""]
    return lines


def _verdict_mean_of_k(p: dict, holm: bool) -> str:
    m = p["mean_of_k"]
    pval = m["holm_p"] if holm else m["p"]
    verdict = "a difference at α = 0.05" if pval <= 0.05 else "not significant at α = 0.05"
    adj = f", Holm-adjusted {fmt_p(m['holm_p'])}" if holm else ""
    ci = f" (95% bootstrap interval {signed_pp(m['ci95'][0])} to {signed_pp(m['ci95'][1])})" if m["ci95"] else ""
    return (f"- **{p['a']} vs {p['b']}**: mean-of-k accuracy differs by {signed_pp(m['diff'])}{ci} over {m['n']} "
            f"tasks; permutation p = {fmt_p(m['p'])} (two-sided{adj}): {verdict}. Attempt 1 alone: {p['a_only']} "
            f"task(s) only {p['a']} solved, {p['b_only']} only {p['b']}, exact McNemar p = "
            f"{fmt_p(p['mcnemar_exact_p'])}.")


def _verdict(p: dict, holm: bool) -> str:
    if "mean_of_k" in p and p.get("headline_test") == "mean_of_k":
        return _verdict_mean_of_k(p, holm)
    pval = p["mcnemar_holm_p"] if holm else p["mcnemar_exact_p"]
    verdict = "a difference at α = 0.05" if pval <= 0.05 else "not significant at α = 0.05"
    adj = f", Holm-adjusted {fmt_p(p['mcnemar_holm_p'])}" if holm else ""
    line = (f"- **{p['a']} vs {p['b']}**: {p['a_only']} task(s) only {p['a']} solved, {p['b_only']} only "
            f"{p['b']} solved; exact McNemar p = {fmt_p(p['mcnemar_exact_p'])} (two-sided{adj}): {verdict}.")
    if "sign_flip_p" in p:
        line += (f" Over all attempts: mean per-task difference {signed_pp(p['mean_rate_diff'])}, sign-flip "
                 f"p = {fmt_p(p['sign_flip_p'])} (unadjusted).")
    return line


def _summary(res: dict) -> list[str]:
    if not res["pairs"]:
        return []
    holm = "cochran_q" in res
    return ["## Summary", "", *(_verdict({**p, "headline_test": res.get("headline_test")}, holm)
                                for p in res["pairs"]), ""]


def _rates(res: dict) -> list[str]:
    lines = ["## Pass rates", ""]
    rows = [[r["name"], f"{r['passes']} / {r['n']}", pct(r["rate"]), _ci(*r["wilson95"]), _leaderboard(r)]
            for r in res["runs"]]
    lines += md_table(["run", "solved / tasks", "rate", "Wilson 95% interval", "leaderboard: mean ± 1.96·SE"], rows)
    lines += ["The leaderboard column is the TB2 leaderboard's own figure: the mean reward over all trials (errors "
              "count 0) ± 1.96·SE with SE = (1/T)·√Σ p_t(1−p_t)/(n_t−1) over the T tasks, p_t a task's rate over "
              "its n_t attempts (attempt noise only, the task set held fixed; it needs at least 2 attempts per "
              "task). Wilson's interval is for the per-task 0/1 count.", ""]
    if not res["multi_attempt"]:
        return lines
    kmax = max(len(r.get("pass_at_k", {})) for r in res["runs"])
    ks = [k for k in ("1", "2", "3", "5", "10", str(kmax)) if int(k) <= kmax]
    ks = list(dict.fromkeys(ks))
    header = ["run", "trials", "mean pass@1", "±95% fixed tasks", "±95% tasks resampled"]
    header += [f"pass@{k}" for k in ks if k != "1"] + [f"pass^{k}" for k in ks if k != "1"]
    rows = []
    for r in res["runs"]:
        pk, ph = r.get("pass_at_k", {}), r.get("pass_hat_k", {})
        rows.append([r["name"], r["trials"], pct(r["mean_pass_at_1"]), pct(r.get("ci95_fixed_tasks")),
                     pct(r.get("ci95_tasks_resampled"))] + [pct(pk.get(k)) for k in ks if k != "1"]
                    + [pct(ph.get(k)) for k in ks if k != "1"])
    lines += ["All attempts: mean pass@1 is the mean reward over every trial (the TB2 leaderboard score). "
              "The fixed-tasks interval is the leaderboard's 1.96/T·√Σ p_t(1−p_t)/(n_t−1), conditional on this "
              "task set; the tasks-resampled one also treats the tasks as a sample (1.96·sd of per-task "
              "rates/√T). pass@k and pass^k are the unbiased estimators from n attempts (— where a task has "
              "fewer than k).", ""]
    lines += md_table(header, rows)
    return lines


def _leaderboard(r: dict) -> str:
    board = r.get("leaderboard") or {}
    if "mean" not in board:
        return "—"
    hw = board.get("half_width")
    return f"{pct(board['mean'])} ± {pct(hw)}" if hw is not None else f"{pct(board['mean'])} ± — (1 attempt)"


def _mean_of_k_rows(res: dict) -> list[str]:
    """The mean-of-k test table (compare.py rule 6)."""
    holm = "cochran_q" in res
    head = "Headline" if res.get("headline_test") == "mean_of_k" else "Beside the headline"
    lines = [f"{head}, using every attempt: the mean-of-k test. Each task's success rate over its scored attempts; "
             "the difference in mean-of-k accuracy (a − b) is tested by a two-sided paired permutation test over "
             "tasks (each task's difference may flip its sign: attempts of a task move together), with a paired "
             "bootstrap 95% interval that resamples tasks (percentile; anti-conservative with a handful of "
             "successes, so the test is the primary result).", ""]
    header = ["a vs b", "tasks", "tasks that differ", "difference (95% bootstrap CI)", "permutation p"]
    header += ["Holm-adjusted p"] if holm else []
    header += ["method"]
    rows = []
    for p in res["pairs"]:
        m = p["mean_of_k"]
        ci = f" ({signed_pp(m['ci95'][0])} to {signed_pp(m['ci95'][1])})" if m["ci95"] else ""
        row = [f"{p['a']} vs {p['b']}", m["n"], m["n_nonzero"], signed_pp(m["diff"]) + ci, fmt_p(m["p"])]
        row += [fmt_p(m.get("holm_p"))] if holm else []
        row += [m["method"]]
        rows.append(row)
    lines += md_table(header, rows, "lrrrr" + ("r" if holm else "") + "l")
    left = [(p, p["mean_of_k"]["left_out_no_scored_trial"]) for p in res["pairs"]
            if p["mean_of_k"]["left_out_no_scored_trial"]]
    for p, tasks in left:
        lines.append(f"- {p['a']} vs {p['b']}: {len(tasks)} task(s) left out of the mean-of-k test (a run has no "
                     f"scored trial there): {', '.join(tasks)}.")
    return lines + ([""] if left else [])


def _pairs(res: dict) -> list[str]:
    if not res["pairs"]:
        return []
    holm = "cochran_q" in res
    lines = ["## Paired comparisons on the same tasks", "",
             "Both runs ran the same tasks, so outcomes are paired: the test is the exact McNemar test, a "
             "binomial test on the tasks only one of the two solved. Difference = rate a − rate b with "
             "Newcombe's paired 95% interval (method 10). Fisher's exact test ignores the pairing and is "
             "shown, labelled unpaired, only to compare with earlier reports; its one-sided p is for "
             "\"a greater than b\".", ""]
    header = ["a vs b", "tasks", "both", "a only", "b only", "neither", "difference (95% CI)",
              "McNemar exact p (two-sided)", "mid-p"]
    header += ["Holm-adjusted p"] if holm else []
    header += ["Fisher two-sided (unpaired)", "Fisher one-sided a>b (unpaired)"]
    rows = []
    for p in res["pairs"]:
        lo, hi = p["newcombe95"]
        row = [f"{p['a']} vs {p['b']}", p["n"], p["both"], p["a_only"], p["b_only"], p["neither"],
               f"{signed_pp(p['diff'])} ({signed_pp(lo)} to {signed_pp(hi)})", fmt_p(p["mcnemar_exact_p"]), fmt_p(p["mcnemar_midp"])]
        row += [fmt_p(p["mcnemar_holm_p"])] if holm else []
        row += [fmt_p(p["fisher_two_sided_p"]), fmt_p(p["fisher_one_sided_p"])]
        rows.append(row)
    lines += md_table(header, rows)
    lines += _excluded(res)
    if res["multi_attempt"] and all("mean_of_k" in p for p in res["pairs"]):
        lines += _mean_of_k_rows(res)
    return lines


def _excluded(res: dict) -> list[str]:
    """Which tasks left each pair's paired test because of errors, and why (compare.py rule 3)."""
    if res.get("errors_as_failures", True):
        return []
    if not any(p.get("excluded_errors") for p in res["pairs"]):
        return ["No task left the paired tests: no run had an infra, LLM or verifier error on a shared task.", ""]
    lines = []
    for p in res["pairs"]:
        ex = p.get("excluded_errors") or []
        if not ex:
            lines.append(f"- {p['a']} vs {p['b']}: no task left out.")
            continue
        why = [f"{e['task']} ({', '.join(f'{run} {e[run]}' for run in (p['a'], p['b']) if e.get(run))})" for e in ex]
        lines.append(f"- {p['a']} vs {p['b']}: {len(ex)} task(s) left out of the paired test because a run had an "
                     f"error there: {', '.join(why)}.")
    return ["Tasks left out of the paired tests (errors say nothing about the agent):", "", *lines, ""]


def _cochran(res: dict) -> list[str]:
    if "cochran_q" not in res:
        return []
    c = res["cochran_q"]
    left = c.get("excluded_errors") or 0
    tasks = f"on {c.get('n', res['n_tasks'])} tasks" + (f" ({left} left out: a run had an infra, LLM or verifier "
                                                         "error there)" if left else "")
    exact = c.get("exact_method", "exact")
    return ["## All runs together: Cochran's Q", "",
            f"Q = {c['q']:.3f}, df = {c['df']} {tasks}: exact p = {fmt_p(c.get('p_exact'))} ({exact} conditional "
            f"distribution: each task's solving runs placed at random among the runs), asymptotic p = "
            f"{fmt_p(c['p'])} (chi-square; unreliable with few discordant tasks). H0: every run has the same solve "
            "probability on these tasks. The pairwise McNemar p-values above carry Holm's adjustment for the "
            "number of pairs.", ""]


def _overlap(res: dict) -> list[str]:
    k = len(res["runs"])
    lines = ["## Overlap of solved tasks", "",
             f"All {2 ** k - 1} regions of the solved-task sets, empty ones included: each task appears in exactly "
             "one region, the one naming exactly the runs that solved it.", ""]
    rows = [[o["label"], len(o["tasks"]), ", ".join(o["tasks"]) or "—"] for o in res["overlap"]]
    rows.append(["solved by none", res["unsolved_by_all"], "—"])
    lines += md_table(["region", "tasks", "names"], rows, "lrl")
    return lines


def _min_discordant(alpha: float) -> int:
    """Fewest discordant tasks for which the two-sided exact McNemar test can reject (all on one side)."""
    m = 1
    while 2 * 0.5**m > alpha:
        m += 1
    return m


def _mde(d: float | None, reach: str) -> str:
    return reach if d is None else f"{100 * d:.1f} pp"


def _power(res: dict) -> list[str]:
    if not res["pairs"]:
        return []
    d = res.get("design") or {}
    k = (f"{d['attempts_min']}" if d.get("attempts_min") == d.get("attempts_max")
         else f"{d.get('attempts_min')}–{d.get('attempts_max')}")
    lines = ["## What these data can resolve", "",
             f"Design as run: {d.get('tasks', res['n_tasks'])} tasks × {k} attempt(s) per task in each run "
             "(`ablbench plan` answers the same question before a run, for any number of attempts). "
             "Minimum detectable effect at 80% power for this design (two-sided, α = 0.05, unadjusted): the "
             "smallest difference in solve rate the exact McNemar test would find 4 times in 5 on this many tasks, "
             "with the share of discordant tasks (solved by exactly one of the two runs) at its observed value. An "
             "effect can be at most that share. Power at the observed rates is not shown: it restates the p-value. "
             f"However the tasks split, the exact test cannot reach p ≤ 0.05 with fewer than {_min_discordant(0.05)} "
             "discordant tasks.", ""]
    header = ["a vs b", "tasks", "discordant tasks", "detectable at 80% (McNemar)"]
    if res["multi_attempt"]:
        header.append("detectable at 80% (mean-of-k, tasks × attempts as run)")
    rows = []
    for p in res["pairs"]:
        m = p["mde80"]
        row = [f"{p['a']} vs {p['b']}", p["n"], f"{m['discordant']} ({pct(m['discordant_share'])})",
               _mde(m["mcnemar"], "not reachable" if m["discordant"] else "no discordant task")]
        if res["multi_attempt"]:
            d = (p.get("mean_of_k") or {}).get("design_mde80") or {}
            row.append(f"{_mde(d.get('mde'), 'not reachable')} ({d.get('tasks')} × {d.get('attempts')})"
                       if d.get("model") and not str(d["model"]).startswith("no rate model") else "—")
        rows.append(row)
    lines += md_table(header, rows)
    if res["multi_attempt"]:
        models = [f"- {p['a']} vs {p['b']}: {p['mean_of_k']['design_mde80']['model']}" for p in res["pairs"]
                  if "mean_of_k" in p and p["mean_of_k"]["design_mde80"]["model"]]
        lines += ["The mean-of-k column is the design as run: this many tasks × the fewest scored attempts per task, "
                  "the smallest rise in mean-of-k accuracy the mean-of-k test finds in 80% of simulated studies "
                  "(`ablbench plan`'s simulation: heterogeneous per-task rates, the effect a logit shift, 1000 "
                  "studies, seed 0). Rate model per pair:", "", *models, ""]
    else:
        lines += ["With one attempt per task a single task's difference can never be significant: per-task "
                  "differences (the overlap table) are descriptive. More attempts per task, or more tasks, are "
                  "what shrink the detectable effect.", ""]
    return lines


def _failures(res: dict) -> list[str]:
    runs = res["runs"]
    kinds = list(dict.fromkeys(k for r in runs for k in r["outcomes"]))
    has_pf = any("parse_fail_mean" in r for r in runs)
    has_nc = any("no_cmd_mean" in r for r in runs)
    header = ["run", "trials", *kinds] + (["parse_fail / trial"] if has_pf else []) + (
        ["no_cmd / trial"] if has_nc else [])
    rows = []
    for r in runs:
        row = [r["name"], r["trials"], *(r["outcomes"].get(k, 0) for k in kinds)]
        row += [f"{r['parse_fail_mean']:.2f}" if "parse_fail_mean" in r else "—"] if has_pf else []
        row += [f"{r['no_cmd_mean']:.2f}" if "no_cmd_mean" in r else "—"] if has_nc else []
        rows.append(row)
    lines = ["## Outcomes and failure modes", "", *md_table(header, rows)]
    flagged = []
    for r in runs:
        for col in ("parse_fail", "no_cmd"):
            hits = r.get(f"unusual_{col}") or []
            if hits:
                flagged.append(f"- {r['name']}, {col}: " + ", ".join(f"{h['task']} ({h['mean']:g})" for h in hits))
    if has_pf or has_nc:
        lines += [f"Tasks with unusually many parse_fail / no_cmd ({res['unusual_rule']}):", ""]
        lines += (flagged or ["- none"]) + [""]
    return lines


def _dropped(res: dict) -> list[str]:
    dropped = [(r["name"], r["dropped_tasks"]) for r in res["runs"] if r["dropped_tasks"]]
    if not dropped:
        return []
    lines = ["## Dropped tasks", "", "Only tasks every run attempted are analysed. Left out:", ""]
    lines += [f"- {name} ({len(ts)}): {', '.join(ts)}" for name, ts in dropped]
    return lines + [""]


def to_markdown(res: dict) -> str:
    """The full human report."""
    parts = (_intro(res) + _summary(res) + _rates(res) + _pairs(res) + _cochran(res) + _overlap(res) + _power(res)
             + _failures(res) + _dropped(res) + (behaviour_section(res["behaviour"]) if "behaviour" in res else []))
    for note in res.get("notes", []):
        parts.append(f"> Note: {note}")
    return "\n".join(parts).rstrip() + "\n"


def to_json(res: dict) -> str:
    """The analysis as JSON (keys documented in issue 8; ``runs``, ``pairs``, ``overlap``, ``cochran_q``;
    ``behaviour``: :func:`harness.analysis.behaviour.analyze_behaviour`); checked against
    ``ablbench.records.Analysis`` (schema: ``ablbench/schemas/analysis.schema.json``)."""
    check_record(Analysis, json.loads(json.dumps(res)), "the analysis")  # the published schema holds
    return json.dumps(res, indent=2, sort_keys=False) + "\n"


