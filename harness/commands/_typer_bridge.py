"""Verbs still declared with typer, mounted under the cyclopts ``ablbench`` app.

Rules, in order:

1. A bridged verb keeps its typer flags, help and exit codes: every token after the verb's
   name (``--help`` included) goes to typer untouched.
2. This bridge goes when the last typer verb moves to an options class (issue 24, item 2).
"""

from __future__ import annotations

from typing import Annotated

import typer
from cyclopts import App, Parameter


def mount(app: App, group: typer.Typer, name: str, help: str) -> None:
    """Add typer ``group`` to ``app`` as verb ``name`` (a group of one command runs as that command)."""
    verb = App(name=name, help=help, help_flags=[], version_flags=[], end_of_options_delimiter="")

    @verb.default
    def _forward(*tokens: Annotated[str, Parameter(allow_leading_hyphen=True)]) -> None:
        command = typer.main.get_command(group)
        command.main(args=list(tokens), prog_name=f"ablbench {name}", standalone_mode=True)

    app.command(verb)
