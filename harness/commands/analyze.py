"""``ablbench analyze``: compare runs with paired statistics and per-task overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from harness.analysis_options import AnalyzeOptions
from harness.errors import echo, fail, secho


def _print_summary(res: dict) -> None:
    """A readable terminal summary with rich tables."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from harness.analysis.report import fmt_p, pct

    console = Console()
    if not console.is_terminal:  # piped or captured: no width to respect, keep table rows on one line
        console = Console(width=120)
    dropped = sum(len(r["dropped_tasks"]) for r in res["runs"])
    console.print(f"[bold]{res['n_tasks']} shared tasks[/bold]" + (f", {dropped} dropped (not in every run)"
                                                                    if dropped else ""))
    if res["multi_attempt"]:
        if res["headline_test"] == "mean_of_k":
            console.print("several attempts per task: the headline test compares per-task success rates over all "
                          "attempts (mean-of-k, --solved mean); solved counts, McNemar and overlap use attempt 1")
        else:
            short = res["solved_rule_text"].split(";")[0]
            console.print(f"several attempts per task: rates, paired tests and overlap use per-task solved = {short} "
                          f"(--solved {res['solved_rule']}); the mean-of-k test uses every attempt")
    t = Table(title="pass rates", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("run", "solved", "rate", "Wilson 95%", "leaderboard mean ± 1.96·SE"):
        t.add_column(col, justify="left" if col == "run" else "right")
    if res["multi_attempt"]:
        t.add_column("trials", justify="right")
    for r in res["runs"]:
        hw = r["leaderboard"]["half_width"]
        row = [r["name"], f"{r['passes']}/{r['n']}", pct(r["rate"]), f"{pct(r['wilson95'][0])}–{pct(r['wilson95'][1])}",
               f"{pct(r['leaderboard']['mean'])} ± {pct(hw) if hw is not None else '— (1 attempt)'}"]
        if res["multi_attempt"]:
            row += [str(r["trials"])]
        t.add_row(*row)
    console.print(t)
    if res["multi_attempt"] and res["pairs"]:
        t = Table(title="mean-of-k test: per-task success rates over all attempts, paired permutation over tasks",
                  title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("a vs b", "tasks", "a−b pp (95% bootstrap CI)", "permutation p", "detectable at 80%"):
            t.add_column(col, justify="left" if col == "a vs b" else "right")
        for p in res["pairs"]:
            m = p["mean_of_k"]
            ci = f" ({100 * m['ci95'][0]:+.1f}, {100 * m['ci95'][1]:+.1f})" if m["ci95"] else ""
            d = m["design_mde80"]
            mde = f"{100 * d['mde']:.1f} pp ({d['tasks']}×{d['attempts']})" if d["mde"] is not None else "—"
            holm = f" (Holm {fmt_p(m['holm_p'])})" if "holm_p" in m else ""
            t.add_row(f"{p['a']} vs {p['b']}", str(m["n"]), f"{100 * m['diff']:+.1f}{ci}" if m["diff"] is not None
                      else "—", fmt_p(m["p"]) + holm, mde)
        console.print(t)
    if res["pairs"]:
        holm = "cochran_q" in res
        title = "paired on shared tasks: exact McNemar, two-sided" + (
            " (attempt 1)" if res["headline_test"] == "mean_of_k" else "")
        t = Table(title=title, title_justify="left",
                  box=box.SIMPLE_HEAD)
        cols = ["a vs b", "both/a only/b only/neither", "a−b pp (95% CI)", "McNemar p"]
        cols += ["Holm"] if holm else []

        for col in cols:
            t.add_column(col, justify="left" if col == "a vs b" else "right")
        for p in res["pairs"]:
            lo, hi = p["newcombe95"]
            row = [f"{p['a']} vs {p['b']}", f"{p['both']}/{p['a_only']}/{p['b_only']}/{p['neither']}",
                   f"{100 * p['diff']:+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f})" if p["n"] else "— (no task left)",
                   f"{fmt_p(p['mcnemar_exact_p'])} (mid {fmt_p(p['mcnemar_midp'])})"]
            row += [fmt_p(p["mcnemar_holm_p"])] if holm else []
            t.add_row(*row)
        console.print(t)
        for p in res["pairs"]:
            console.print(f"Fisher (unpaired) {p['a']} vs {p['b']}: p = {fmt_p(p['fisher_two_sided_p'])} two-sided, "
                          f"{fmt_p(p['fisher_one_sided_p'])} one-sided {p['a']} > {p['b']}")
        if not res["errors_as_failures"]:
            for p in res["pairs"]:
                ex = p["excluded_errors"]
                if ex:
                    console.print(f"{p['a']} vs {p['b']}: {len(ex)} task(s) left out of the paired test (an infra, "
                                  "llm or verifier error in either run; --errors-as-failures counts them as failures)")
    if "cochran_q" in res:
        c = res["cochran_q"]
        left = f"; {c['excluded_errors']} task(s) with errors left out" if c["excluded_errors"] else ""
        console.print(f"Cochran's Q = {c['q']:.3f}, df = {c['df']}, exact p = {fmt_p(c['p_exact'])} "
                      f"({c['exact_method']}), asymptotic p = {fmt_p(c['p'])}{left}")
    if len(res["runs"]) > 1:
        t = Table(title="overlap of solved tasks (every region)", title_justify="left", box=box.SIMPLE_HEAD)
        t.add_column("region")
        t.add_column("n", justify="right")
        t.add_column("tasks", overflow="fold")
        for o in res["overlap"]:
            t.add_row(o["label"], str(len(o["tasks"])), ", ".join(o["tasks"]) or "—")
        t.add_row("solved by none", str(res["unsolved_by_all"]), "—")
        console.print(t)
        for p in res["pairs"]:
            m = p["mde80"]
            mde = f"{100 * m['mcnemar']:.1f} pp" if m["mcnemar"] is not None else "out of reach"
            extra = (f"; mean-of-k over all attempts {100 * m['mean_of_k']:.1f} pp"
                     if m.get("mean_of_k") is not None else "")
            console.print(f"detectable at 80% power, {p['a']} vs {p['b']}: {mde} (McNemar, {p['n']} tasks, "
                          f"{m['discordant']} discordant){extra}")


def _print_behaviour(res: dict) -> None:
    """The behaviour sentences (one per metric and pair) and the refusal-marker count."""
    beh = res.get("behaviour") or {}
    if not beh.get("available"):
        return
    for pair in beh["pairs"]:
        echo(f"behaviour {pair['a']} vs {pair['b']} ({pair['n_tasks']} tasks):")
        for m in pair["metrics"]:
            echo(f"  {m['sentence']}")
    echo(f"turns with a refusal marker: {len(beh['refusals'])}"
               + (f" ({beh['judge']['refusals']} judged refusals)" if "judge" in beh else ""))


def analyze_command(
    runs: Annotated[list[Path], Parameter(help="Results folders, master_summary.csv files, harbor job folders or tb "
                                           "run folders.")],
    /,
    *,
    options: Annotated[AnalyzeOptions, Parameter(name="*")] = AnalyzeOptions(),
) -> None:
    """Compare runs on their shared tasks: pass rates, exact paired tests, overlap, power, plots."""
    try:
        _analyze(runs, options)
    except AblbenchError as exc:
        raise fail(str(exc)) from exc


def _analyze(runs: list[Path], o: AnalyzeOptions) -> None:
    """Analyse, then print and say what was written (``-`` outputs go to stdout)."""
    from harness.analysis.report import to_json, to_markdown
    from harness.api import analyze

    result = analyze(runs, o)
    for note in result.warnings:
        secho(f"warning: {note}", err=True, fg="yellow")
    res = result.report
    for out, text in ((o.json_out, to_json), (o.markdown_out, to_markdown)):
        if str(out) == "-":
            echo(text(res), nl=False)
            return
    _print_summary(res)
    _print_behaviour(res)
    for r in res["audit"]["runs"]:
        echo(f"audit {r['run']}: {r['passes']} pass(es), {r['flagged_passes']} flagged; "
                   f"{r['passes_unflagged']} without flagged passes")
    for path in result.written:
        echo(f"wrote {path}")


def register(app: App) -> None:
    """Add the ``analyze`` verb."""
    app.command(analyze_command, name="analyze")
