"""``ablbench analyze``: compare runs with paired statistics and per-task overlap."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ablbench.errors import AblbenchError
from harness.errors import fail

if TYPE_CHECKING:
    from harness.analysis.options import AnalyzeOptions


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
        short = res["solved_rule_text"].split(";")[0]
        console.print(f"several attempts per task: rates, paired tests and overlap use per-task solved = {short} "
                      f"(--solved {res['solved_rule']}); the sign-flip test uses every attempt")
    t = Table(title="pass rates", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("run", "solved", "rate", "Wilson 95%"):
        t.add_column(col, justify="left" if col == "run" else "right")
    if res["multi_attempt"]:
        t.add_column("trials", justify="right")
        t.add_column("mean pass@1", justify="right")
    for r in res["runs"]:
        row = [r["name"], f"{r['passes']}/{r['n']}", pct(r["rate"]), f"{pct(r['wilson95'][0])}–{pct(r['wilson95'][1])}"]
        if res["multi_attempt"]:
            row += [str(r["trials"]), pct(r["mean_pass_at_1"])]
        t.add_row(*row)
    console.print(t)
    if res["pairs"]:
        holm = "cochran_q" in res
        t = Table(title="paired on shared tasks: exact McNemar, two-sided", title_justify="left",
                  box=box.SIMPLE_HEAD)
        cols = ["a vs b", "both/a only/b only/neither", "a−b pp (95% CI)", "McNemar p"]
        cols += ["Holm"] if holm else []
        cols += ["sign-flip p"] if res["multi_attempt"] else []
        for col in cols:
            t.add_column(col, justify="left" if col == "a vs b" else "right")
        for p in res["pairs"]:
            lo, hi = p["newcombe95"]
            row = [f"{p['a']} vs {p['b']}", f"{p['both']}/{p['a_only']}/{p['b_only']}/{p['neither']}",
                   f"{100 * p['diff']:+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f})" if p["n"] else "— (no task left)",
                   f"{fmt_p(p['mcnemar_exact_p'])} (mid {fmt_p(p['mcnemar_midp'])})"]
            row += [fmt_p(p["mcnemar_holm_p"])] if holm else []
            row += [fmt_p(p["sign_flip_p"])] if res["multi_attempt"] else []
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
            extra = (f"; sign-flip over all attempts {100 * m['sign_flip']:.1f} pp"
                     if m.get("sign_flip") is not None else "")
            console.print(f"detectable at 80% power, {p['a']} vs {p['b']}: {mde} (McNemar, {p['n']} tasks, "
                          f"{m['discordant']} discordant){extra}")


def _print_behaviour(res: dict) -> None:
    """The behaviour sentences (one per metric and pair) and the refusal-marker count."""
    beh = res.get("behaviour") or {}
    if not beh.get("available"):
        return
    for pair in beh["pairs"]:
        typer.echo(f"behaviour {pair['a']} vs {pair['b']} ({pair['n_tasks']} tasks):")
        for m in pair["metrics"]:
            typer.echo(f"  {m['sentence']}")
    typer.echo(f"turns with a refusal marker: {len(beh['refusals'])}"
               + (f" ({beh['judge']['refusals']} judged refusals)" if "judge" in beh else ""))


def analyze_command(
    runs: list[Path] = typer.Argument(..., help="Results folders, master_summary.csv files, harbor job folders "
                                      "or tb run folders.", show_default=False),
    names: str | None = typer.Option(None, "--names", help="Comma-separated run names, one per RUN."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the analysis as JSON here ('-' = stdout)."),
    markdown_out: Path | None = typer.Option(None, "--markdown", help="Write the markdown report here "
                                             "('-' = stdout)."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for the PNG figures."),
    html_out: Path | None = typer.Option(None, "--html", help="Write one self-contained HTML report here: the "
                                         "tables, the figures, a task x run matrix and every trajectory."),
    solved: str = typer.Option("first", "--solved", help="With several attempts per task, what counts as "
                               "solved for rates, paired tests and overlap: first | any | majority."),
    errors_as_failures: bool = typer.Option(False, "--errors-as-failures", help="Count tasks with infra/llm/"
                                            "verifier errors as failures in the paired tests (default: they leave "
                                            "the pair's test, with the count stated)."),
    judge: tuple[str, str] | None = typer.Option(None, "--judge", metavar="URL MODEL", help="Also ask an LLM judge "
                                                 "(OpenAI-compatible server URL, model name) about every turn where "
                                                 "a refusal marker fired."),
    allow_mixed_structured: bool = typer.Option(
        False, "--allow-mixed-structured", help="Compare runs even when only some used --structured."
    ),
) -> None:
    """Compare runs on their shared tasks: pass rates, exact paired tests, overlap, power, plots."""
    from harness.analysis.options import AnalyzeOptions

    options = AnalyzeOptions(names=names, json_out=json_out, markdown_out=markdown_out, plots=plots,
                             html_out=html_out, solved=solved, errors_as_failures=errors_as_failures, judge=judge,
                             allow_mixed_structured=allow_mixed_structured)
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
        typer.secho(f"warning: {note}", err=True, fg=typer.colors.YELLOW)
    res = result.report
    for out, text in ((o.json_out, to_json), (o.markdown_out, to_markdown)):
        if str(out) == "-":
            typer.echo(text(res), nl=False)
            return
    _print_summary(res)
    _print_behaviour(res)
    for path in result.written:
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` verb."""
    app.command("analyze")(analyze_command)
