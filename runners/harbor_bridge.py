"""harbor's environment as an ``ablbench.agent_api.Environment``, for an agent working in its own thread.

harbor's environments (local docker, cloud sandboxes) are asynchronous; ablbench's agents are
synchronous and run in a thread beside harbor's event loop. This bridge needs no harbor import:
it calls the environment's ``exec``, ``upload_dir``, ``upload_file`` and ``download_file``
coroutines. Rules, in order:

1. Each call goes back onto harbor's loop (``run_coroutine_threadsafe``) and the agent's thread
   waits for it, so neither the model request nor a command blocks another trial.
2. ``exec(argv list)`` quotes ``argv`` into ONE shell command (``shlex.join``); a string is
   passed as it is (harbor runs it with bash). The result is stdout followed by stderr.
3. A command longer than :data:`MAX_COMMAND_BYTES` raises :class:`ExecClosed`: it would travel as
   one argument of a host process, which the kernel caps at 128 KiB, and is never cut silently.
4. After :meth:`close` (cancellation), every call raises :class:`ExecClosed` and the calls in
   flight are cancelled, so an abandoned agent thread can no longer touch the environment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shlex
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ablbench.agent_api import ExecResult
from runners.terminal import TerminalError

#: the kernel's limit on one argument (MAX_ARG_STRLEN) less room for the wrapper's own words
MAX_COMMAND_BYTES = 120_000
#: seconds one exec may take when the caller sets no limit (terminal commands bound their own waits to 60 s)
DEFAULT_EXEC_TIMEOUT_S = 120.0


class ExecClosed(TerminalError):
    """The environment can no longer be used (closed after cancellation, or command too long)."""


class HarborEnvironmentBridge:
    """A harbor ``BaseEnvironment`` seen as an ``ablbench.agent_api.Environment`` (see the module doc)."""

    def __init__(self, environment: Any, loop: asyncio.AbstractEventLoop, *, name: str, image: str = "",
                 timeout_s: float = DEFAULT_EXEC_TIMEOUT_S) -> None:
        self._environment = environment
        self._loop = loop
        self._name = name
        self._image = image
        self.timeout_s = timeout_s
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        #: execs run so far (a cheap overhead figure for reports)
        self.calls = 0

    @property
    def name(self) -> str:
        """The trial's name (for messages)."""
        return self._name

    @property
    def image(self) -> str:
        """The task's image, or ""."""
        return self._image

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()

    def close(self) -> None:
        """Refuse every later call and cancel those in flight (rule 4)."""
        with self._lock:
            self._closed.set()
            for fut in list(self._inflight):
                fut.cancel()

    def _call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run one coroutine on harbor's loop and wait for it (rules 1 and 4)."""
        with self._lock:  # a cancellation closes first, then cancels what is in flight
            if self._closed.is_set():
                raise ExecClosed(f"environment {self._name} is closed (the trial was cancelled)")
            fut = asyncio.run_coroutine_threadsafe(make(), self._loop)  # type: ignore[arg-type]
            self._inflight.add(fut)
        try:
            return fut.result()
        except concurrent.futures.CancelledError as exc:
            raise ExecClosed(f"a call in {self._name} was cancelled (the trial was cancelled)") from exc
        finally:
            with self._lock:
                self._inflight.discard(fut)
            if self._closed.is_set():
                raise ExecClosed(f"environment {self._name} was closed during a call (the trial was cancelled)")

    def exec(self, cmd: str | list[str], timeout_s: float | None = 60, *, env: dict[str, str] | None = None,
             workdir: str | None = None, user: str | None = None) -> ExecResult:
        """Run ``cmd`` and return its exit code and stdout + stderr (rules 1-4)."""
        if self._closed.is_set():
            raise ExecClosed(f"environment {self._name} is closed (the trial was cancelled)")
        command = cmd if isinstance(cmd, str) else shlex.join(cmd)
        size = len(command.encode("utf-8", "surrogatepass"))
        if size > MAX_COMMAND_BYTES:
            raise ExecClosed(f"a {size}-byte command exceeds the {MAX_COMMAND_BYTES}-byte limit of one exec "
                             f"in {self._name}; send long input in smaller batches")
        limit = self.timeout_s if timeout_s is None else max(1.0, timeout_s)
        self.calls += 1
        start = time.monotonic()
        res = self._call(lambda: self._environment.exec(command, cwd=workdir, env=env or None,
                                                        timeout_sec=int(limit), user=user or None))
        took = time.monotonic() - start
        code = res.return_code
        timed_out = timeout_s is not None and code in (124, 137) and took >= limit - 0.5
        return ExecResult(None if code is None else int(code), (res.stdout or "") + (res.stderr or ""), timed_out,
                          took)

    def exec_wait(self, cmd: str, timeout_s: float, *, env: dict[str, str] | None = None,
                  workdir: str | None = None) -> ExecResult:
        """A long command: harbor's exec already waits without an HTTP read timeout."""
        return self.exec(cmd, timeout_s, env=env, workdir=workdir)

    def copy_in(self, src: Path, dest_dir: str) -> None:
        """Copy a host file or the contents of a host folder into ``dest_dir``."""
        src = Path(src)
        self.exec(["mkdir", "-p", dest_dir], 30)
        if src.is_dir():
            self._call(lambda: self._environment.upload_dir(src, dest_dir))
        else:
            self._call(lambda: self._environment.upload_file(src, f"{dest_dir.rstrip('/')}/{src.name}"))

    def write_file(self, path: str, content: bytes | str, mode: int = 0o644) -> None:
        """Create one file (and its folders)."""
        data = content.encode() if isinstance(content, str) else content
        with tempfile.TemporaryDirectory(prefix="ablbench-upload-") as tmp:
            local = Path(tmp) / "file"
            local.write_bytes(data)
            self.exec(["mkdir", "-p", str(Path(path).parent)], 30)
            self._call(lambda: self._environment.upload_file(local, path))
        self.exec(["chmod", f"{mode:o}", path], 30)

    def read_file(self, path: str) -> bytes | None:
        """One file's bytes, or None when it does not exist."""
        if self.exec(["test", "-f", path], 30).exit_code != 0:
            return None
        with tempfile.TemporaryDirectory(prefix="ablbench-download-") as tmp:
            local = Path(tmp) / "file"
            self._call(lambda: self._environment.download_file(path, local))
            return local.read_bytes() if local.exists() else None
