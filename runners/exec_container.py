"""A stand-in for a docker SDK ``Container`` whose commands run through a caller's exec function.

``TmuxTerminal`` (and the Terminus agent above it) is written against ``Container.exec_run``.
This adapter lets it drive any environment that can run a shell command, e.g. harbor's
``environment.exec`` on local docker or a cloud sandbox. Rules, in order:

1. ``exec_run(argv, environment=, workdir=, user=)`` quotes ``argv`` into ONE shell command
   (``shlex.join``) and calls ``exec_fn(command, env, workdir, user, timeout_s)``.
2. ``exec_fn`` returns ``(exit code, stdout, stderr)``; ``exec_run`` returns the SDK's shape for
   ``demux=False``: ``(exit_code, output bytes)``, stdout followed by stderr.
3. A command longer than :data:`MAX_COMMAND_BYTES` raises :class:`ExecClosed`: it would travel as
   one argument of a host process, which the kernel caps at 128 KiB, and is never cut silently.
4. After :meth:`close` (cancellation), every call raises :class:`ExecClosed`, so an abandoned
   agent thread can no longer touch the environment.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from runners.terminal import TerminalError

#: the kernel's limit on one argument (MAX_ARG_STRLEN) less room for the wrapper's own words
MAX_COMMAND_BYTES = 120_000
#: seconds one exec may take (terminal commands bound their own waits to 60 s)
DEFAULT_EXEC_TIMEOUT_S = 120.0

#: (command, env, workdir, user, timeout_s) -> (exit code, stdout, stderr)
ExecFn = Callable[[str, dict[str, str] | None, str | None, str | None, float], tuple[int, str, str]]


class ExecClosed(TerminalError):
    """The environment can no longer be used (closed after cancellation, or command too long)."""


class ExecRunResult(NamedTuple):
    """The docker SDK's ``exec_run`` result (demux=False): exit code and combined output."""

    exit_code: int
    output: bytes


@dataclass
class _Image:
    tags: list[str] = field(default_factory=list)


class ExecContainer:
    """Looks like a docker SDK ``Container`` to the terminal; runs commands through ``exec_fn``."""

    def __init__(self, exec_fn: ExecFn, *, name: str, image: str = "", timeout_s: float = DEFAULT_EXEC_TIMEOUT_S) -> None:
        self._exec_fn = exec_fn
        self.name = name
        self.image = _Image([image] if image else [])
        self.timeout_s = timeout_s
        self._closed = threading.Event()
        #: execs run so far (a cheap overhead figure for reports)
        self.calls = 0

    def exec_run(
        self, cmd: list[str] | str, *, environment: dict[str, str] | None = None, workdir: str | None = None,
        user: str | None = None, demux: bool = False, **_: object,
    ) -> ExecRunResult:
        """Run ``cmd`` and return ``(exit_code, stdout + stderr)`` like the SDK (rules 1-4)."""
        if self._closed.is_set():
            raise ExecClosed(f"environment {self.name} is closed (the trial was cancelled)")
        command = cmd if isinstance(cmd, str) else shlex.join(cmd)
        size = len(command.encode("utf-8", "surrogatepass"))
        if size > MAX_COMMAND_BYTES:
            raise ExecClosed(f"a {size}-byte command exceeds the {MAX_COMMAND_BYTES}-byte limit of one exec "
                             f"in {self.name}; send long input in smaller batches")
        self.calls += 1
        code, stdout, stderr = self._exec_fn(command, environment or None, workdir, user or None, self.timeout_s)
        if self._closed.is_set():
            raise ExecClosed(f"environment {self.name} was closed during an exec (the trial was cancelled)")
        return ExecRunResult(int(code), ((stdout or "") + (stderr or "")).encode("utf-8", "replace"))

    def close(self) -> None:
        """Refuse every later call (rule 4)."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()
