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

_COLOURS = {"red": 31, "green": 32, "yellow": 33}


class Exit(SystemExit):
    """End the command with ``code`` (what the message, if any, was already printed for)."""

    @property
    def exit_code(self) -> int:
        """The process exit status."""
        return int(self.code or 0)


def echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """Print ``message`` on stdout (stderr with ``err``), with a newline unless ``nl`` is False."""
    stream: IO[str] = sys.stderr if err else sys.stdout
    stream.write(f"{message}{chr(10) if nl else ''}")
    stream.flush()


def secho(message: str, *, err: bool = False, fg: str | None = None) -> None:
    """``echo`` in colour ``fg`` (red, green, yellow) when the stream is a terminal."""
    stream = sys.stderr if err else sys.stdout
    if fg and getattr(stream, "isatty", lambda: False)():
        message = f"\x1b[{_COLOURS[fg]}m{message}\x1b[0m"
    echo(message, err=err)


def fail(message: str, code: int = 1) -> Exit:
    """Print ``error: message`` on stderr and return an Exit to raise."""
    secho(f"error: {message}", err=True, fg="red")
    return Exit(code)
