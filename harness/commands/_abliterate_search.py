"""``ablbench abliterate search|control|direction-report|judge-check``.

The library is :mod:`abliterate`; this module injects what abliterate may not import: the
agent's action parser (the search's format-damage objective) and the agent's prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from abliterate.options import SearchOptions
from harness.abliteration import agent_format_ok
from harness.commands._abliterate_shared import cli_errors
from harness.errors import echo


def search_cmd(
    *,
    model: Annotated[Path, Parameter(help="The HF model folder the run was made from.")],
    run: Annotated[Path, Parameter(help="Run folder with the contrast and vectors/ (writes RUN/search/).")],
    no_format: Annotated[bool, Parameter(name="--no-format-objective", help="Search refusal and KL only.")] = False,
    options: Annotated[SearchOptions, Parameter(name="*")] = SearchOptions(),
) -> None:
    """Multi-objective Optuna search over heretic's parameters, with hooks; resumable from SQLite."""
    from abliterate.search.run import run_search

    with cli_errors("search"):
        doc = run_search(model, run, options, format_check=None if no_format else agent_format_ok, log=echo)
    objs = ", ".join(f"{k} {v:.4g}" for k, v in doc["objectives"].items())
    echo(f"front: {doc['front_size']} of {doc['trials_complete']} trials; chosen trial {doc['trial']} ({objs})")
    echo(f"rule: {doc['rule']}")
    echo(f"bake it: {doc['bake_command']}")
    echo(run / "search")


def register(abl_app: App) -> None:
    """Add the commands to the ``abliterate`` group."""
    abl_app.command(search_cmd, name="search")
