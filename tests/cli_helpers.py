"""Run the ``ablbench`` command line in-process, as a user would, and capture what it says.

``CliRunner().invoke(app, argv)`` calls :func:`harness.cli.main` with ``argv`` (the console
script's own entry point), with stdout and stderr captured (``output`` holds both, in order)
and ``env`` set for the call; its result carries ``exit_code``, ``output``, ``stdout``,
``stderr`` and ``exception`` (an error that was not an exit).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    """What one invocation printed and how it ended."""

    exit_code: int
    stdout: str
    stderr: str
    output: str
    exception: BaseException | None


class _Tee(io.StringIO):
    """A captured stream that also appends to the shared ``output`` buffer."""

    def __init__(self, shared: io.StringIO) -> None:
        super().__init__()
        self.shared = shared

    def write(self, s: str) -> int:
        self.shared.write(s)
        return super().write(s)


@contextmanager
def _environ(env: dict[str, str] | None) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class CliRunner:
    """Invoke the cyclopts app with argv, capturing its output and exit code."""

    def invoke(self, app: Any, args: Sequence[str], *, env: dict[str, str] | None = None,
               input: str | None = None) -> Result:
        """Run ``ablbench *args``; never raises (an unexpected error lands in ``exception``, exit code 1)."""
        from harness.cli import main

        shared = io.StringIO()
        out, err = _Tee(shared), _Tee(shared)
        saved = sys.stdout, sys.stderr, sys.stdin
        sys.stdout, sys.stderr = out, err
        if input is not None:
            sys.stdin = io.StringIO(input)
        code, exception = 0, None
        try:
            with _environ(env):
                main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, int | None):
                err.write(f"{exc.code}\n")
        except Exception as exc:  # noqa: BLE001 - reported to the test, as click's runner did
            code, exception = 1, exc
        finally:
            sys.stdout, sys.stderr, sys.stdin = saved
        return Result(code, out.getvalue(), err.getvalue(), shared.getvalue(), exception)
