"""``ablbench smoke``: a quick side-by-side look at a base and an edited model."""

from __future__ import annotations

from typing import Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from harness.abliteration import SmokeOptions
from harness.errors import echo, fail

__all__ = ["SmokeOptions", "register", "smoke_command"]


def smoke_command(options: Annotated[SmokeOptions, Parameter(name="*")] = SmokeOptions()) -> None:
    """Generations for "List files in /tmp" and a few shell tasks, refusal markers, first-token KL."""
    from harness.abliteration import print_evaluation, smoke

    try:
        report, out_dir = smoke(options)
    except AblbenchError as exc:  # AbliterationError included
        raise fail(str(exc)) from exc
    print_evaluation(report, echo)
    echo(out_dir / "evaluation.md")


def register(app: App) -> None:
    """Add the ``smoke`` verb."""
    app.command(smoke_command, name="smoke")
