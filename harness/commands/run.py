"""``ablbench run``: run tasks in parallel docker containers with an agent, write results/<run>/."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from harness.errors import Exit, echo, fail, secho
from harness.run_options import RunOptions


def register(app: App) -> None:
    """Add the ``run`` verb."""
    app.command(run_command, name="run")


def run_command(opts: Annotated[RunOptions, Parameter(name="*")] = RunOptions()) -> None:
    """Run tasks with an agent (N trials in parallel); results go to results/<run>/."""
    from rich.console import Console

    from harness.job import Job, print_summary

    try:
        result = Job(opts).run()
    except AblbenchError as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:  # the results folder cannot be written, or the engine went away
        from runners.scheduler import ENGINE_ERRORS, UNWRITABLE, engine_fault, unwritable_fault

        if isinstance(exc, ENGINE_ERRORS):
            fault = engine_fault(exc)
        elif exc.errno in UNWRITABLE:
            fault = unwritable_fault(exc, Path(opts.out or "results"))
        else:
            raise fail(f"{type(exc).__name__}: {exc}; finished trials are kept: fix it, then continue "
                       "with --resume") from None
        raise fail(fault.line, code=fault.code) from None
    except KeyboardInterrupt:
        raise fail("interrupted before any trial started", code=130) from None
    console = Console(stderr=True)
    print_summary(result.summary, console)
    if result.summary.fault is not None:  # one line: the cause and the fix (runners.scheduler rule 7)
        summary = result.summary
        again = " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--resume")
        console.print(f"[red]stopped[/]: {len(summary.results)} of {summary.total} trials finished; "
                      f"continue with: ablbench {again} --resume", highlight=False)
        secho(f"error: {summary.fault.line}", err=True, fg="red")
        raise Exit(result.exit_code)
    if result.interrupted_by:
        summary = result.summary
        again = " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--resume")
        console.print(
            f"[red]interrupted by {result.interrupted_by}[/]: {len(summary.results)} of {summary.total} trials "
            f"finished; partial results kept in {result.out_dir}; continue with: ablbench {again} --resume"
            + ("" if result.by_signal else " --rerun-errors")
        )
        raise Exit(result.exit_code)
    echo(str(result.out_dir))
