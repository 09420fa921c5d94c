"""The ``ablbench`` command line.

Every module in :mod:`harness.commands` defines ``register(app)`` and adds its verb(s);
this file only collects them, so each verb lives next to nothing but itself.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from harness import commands

app = typer.Typer(
    name="ablbench",
    help="What did this weight edit do to my model as an agent? "
    "Abliterate, serve, run Terminal-Bench tasks in docker, compare.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"harness.commands.{_info.name}").register(app)


def main() -> None:
    """Console-script entry point: a verb whose optional extra is missing ends with one line."""
    import sys

    from harness.errors import fail
    from harness.extras import missing_extra_message

    try:
        app()
    except ModuleNotFoundError as exc:
        verb = " ".join(a for a in sys.argv[1:3] if not a.startswith("-")) or "this command"
        message = missing_extra_message(exc, verb)
        if message is None:
            raise
        raise SystemExit(fail(message).exit_code) from None
