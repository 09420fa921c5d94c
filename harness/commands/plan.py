"""``ablbench plan``: the power of a comparison before the run (tasks x attempts, GPU-hours)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ablbench.errors import AblbenchError
from harness.errors import fail

if TYPE_CHECKING:
    from harness.analysis.options import PlanOptions


def plan_command(
    tasks: int | None = typer.Option(None, "--tasks", help="Tasks in the study (default: the denominator of "
                                     "--base-solved, or the pilot's task count)."),
    base_rate: float | None = typer.Option(None, "--base-rate", help="The base model's mean success rate, e.g. 0.034."),
    base_solved: str | None = typer.Option(None, "--base-solved", help="The base as solved/tasks, e.g. 3/89."),
    pilot: Path | None = typer.Option(None, "--pilot", help="A pilot run (results folder, master_summary.csv, harbor "
                                      "job or tb run): its per-task rates set the rate model."),
    model: str = typer.Option("beta", "--model", help="beta: per-task rates drawn from a Beta in every simulated "
                              "study | pilot: the pilot's own tasks at their empirical-Bayes rates."),
    concentration: float = typer.Option(2.0, "--concentration", help="a + b of the Beta of per-task rates, used when "
                                        "the data cannot tell (no pilot, or one attempt per task): small = tasks "
                                        "differ a lot (solved often or never), large = all tasks alike."),
    effect: float = typer.Option(5.0, "--effect", help="The hoped-for rise in mean-of-k accuracy, percentage points."),
    alpha: float = typer.Option(0.05, "--alpha", help="Two-sided significance level."),
    power: float = typer.Option(0.8, "--power", help="Target power for the minimum detectable effect."),
    attempts: str = typer.Option("1,3,5,10", "--attempts", help="Attempts per task to compare, comma-separated."),
    trial_minutes: float | None = typer.Option(None, "--trial-minutes", help="GPU minutes per trial: fills the "
                                               "GPU-hours column."),
    studies: int = typer.Option(2000, "--studies", help="Simulated studies per k."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the simulation."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the plan as JSON here ('-' = stdout)."),
) -> None:
    """Power before the run: for each k, the power of the mean-of-k test, the detectable effect, trials, GPU-hours."""
    from harness.analysis.options import PlanOptions

    options = PlanOptions(tasks=tasks, base_rate=base_rate, base_solved=base_solved, pilot=pilot, model=model,
                          concentration=concentration, effect=effect, alpha=alpha, power=power, attempts=attempts,
                          trial_minutes=trial_minutes, studies=studies, seed=seed, json_out=json_out)
    try:
        _plan(options)
    except AblbenchError as exc:
        raise fail(str(exc)) from exc


def _plan(o: PlanOptions) -> None:
    """Simulate, print the markdown table, write the JSON."""
    from ablbench.results import write_text_atomic
    from harness.analysis.plan_report import make_plan, to_json, to_markdown

    quiet = str(o.json_out) == "-"
    res = make_plan(o, progress=None if quiet else lambda line: typer.echo(line, err=True))
    if quiet:
        typer.echo(to_json(res), nl=False)
        return
    typer.echo(to_markdown(res), nl=False)
    if o.json_out is not None:
        write_text_atomic(Path(o.json_out), to_json(res))
        typer.echo(f"wrote {o.json_out}")


def register(app: typer.Typer) -> None:
    """Add the ``plan`` verb."""
    app.command("plan")(plan_command)
