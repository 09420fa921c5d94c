"""User-facing errors: one line naming the problem and the fix."""

from __future__ import annotations

import typer


class AblbenchError(Exception):
    """An error a user can act on; its message names the problem and the fix."""


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return an Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)
