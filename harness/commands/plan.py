"""``ablbench plan``: the power of a comparison before the run (tasks x attempts, GPU-hours)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from harness.analysis_options import PlanOptions
from harness.errors import echo, fail


def plan_command(options: Annotated[PlanOptions, Parameter(name="*")] = PlanOptions()) -> None:
    """Power before the run: for each k, the power of the mean-of-k test, the detectable effect, trials, GPU-hours."""
    try:
        _plan(options)
    except AblbenchError as exc:
        raise fail(str(exc)) from exc


def _plan(o: PlanOptions) -> None:
    """Simulate, print the markdown table, write the JSON."""
    from ablbench.results import write_text_atomic
    from harness.analysis.plan_report import make_plan, to_json, to_markdown

    quiet = str(o.json_out) == "-"
    res = make_plan(o, progress=None if quiet else lambda line: echo(line, err=True))
    if quiet:
        echo(to_json(res), nl=False)
        return
    echo(to_markdown(res), nl=False)
    if o.json_out is not None:
        write_text_atomic(Path(o.json_out), to_json(res))
        echo(f"wrote {o.json_out}")


def register(app: App) -> None:
    """Add the ``plan`` verb."""
    app.command(plan_command, name="plan")
