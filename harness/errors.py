"""How the CLI talks to its user: ``error: <message>`` on stderr, then exit.

Rules, in order:

1. An ``AblbenchError`` (or bad usage) ends a verb with one line, ``error: <message>``, on
   stderr, and an exit code (1 unless stated; 2 for bad usage, 130 for Ctrl-C).
2. Output goes through ``echo``/``secho``, which read ``sys.stdout``/``sys.stderr`` when called
   (so an in-process caller that redirects them captures it); colour only on a terminal.
"""

from __future__ import annotations

import sys
from typing import IO


class Exit(SystemExit):
    """End the command with ``code`` (what the message, if any, was already printed for)."""

    @property
    def exit_code(self) -> int:
        """The process exit status."""
        return int(self.code or 0)


def echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """Print ``message`` on stdout (stderr with ``err``), with a newline unless ``nl`` is False."""
    stream: IO[str] = sys.stderr if err else sys.stdout
    stream.write(f"{message}\n" if nl else str(message))
    stream.flush()


def secho(message: str, *, err: bool = False, fg: str | None = None) -> None:
    """``echo`` in colour ``fg`` (a rich colour name) when the stream is a terminal."""
    from rich.console import Console

    Console(file=sys.stderr if err else sys.stdout, soft_wrap=True, highlight=False, markup=False,
            emoji=False).print(message, style=fg)


def fail(message: str, code: int = 1) -> Exit:
    """Print ``error: message`` on stderr and return an Exit to raise."""
    secho(f"error: {message}", err=True, fg="red")
    return Exit(code)
