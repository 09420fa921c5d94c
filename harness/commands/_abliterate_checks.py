"""``ablbench abliterate control|bake-run|direction-report|judge-check``: controls and the refusal checks.

Each verb calls one function (:mod:`harness.abliteration`, or :func:`abliterate.control.bake_run`) and prints.
"""

from __future__ import annotations

from typing import Annotated

from cyclopts import App, Parameter

from abliterate.options import BakeRunOptions, ControlOptions, DirectionReportOptions, JudgeCheckOptions
from harness import abliteration
from harness.commands._abliterate_shared import cli_errors
from harness.errors import echo

_Options = Parameter(name="*")


def control_cmd(options: Annotated[ControlOptions, _Options]) -> None:
    """Bake a control: a seeded random direction orthogonal to the run's, same layers, strengths, components."""
    with cli_errors("control"):
        echo(abliteration.control(options, log=echo))


def bake_run_cmd(options: Annotated[BakeRunOptions, _Options]) -> None:
    """Bake the run's edit (its direction, components and strengths, search profile included) into another copy."""
    from abliterate.control import bake_run

    with cli_errors("bake_run"):
        rep = bake_run(options)
    out = options.out
    echo(f"baked {len(rep['edited'])} tensor(s), the same edit as {rep['same_edit_as']['reference']}")
    echo(out)


def direction_report_cmd(options: Annotated[DirectionReportOptions, _Options]) -> None:
    """Does the base refuse the refuse bucket, and is the direction mostly 'a system prompt is present'?"""
    with cli_errors("direction_report"):
        echo(abliteration.direction_report(options, log=echo))


def judge_check_cmd(options: Annotated[JudgeCheckOptions, _Options] = JudgeCheckOptions()) -> None:
    """Cohen's kappa of an LLM judge against the shipped labelled set (64 replies, four kinds)."""
    with cli_errors("judge_check"):
        abliteration.judge_check(options, log=echo)
    if options.out:
        echo(options.out)


def register(abl_app: App) -> None:
    """Add the commands to the ``abliterate`` group."""
    abl_app.command(control_cmd, name="control")
    abl_app.command(direction_report_cmd, name="direction-report")
    abl_app.command(judge_check_cmd, name="judge-check")
    abl_app.command(bake_run_cmd, name="bake-run")
