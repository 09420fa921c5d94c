"""The common model-server interface: start, wait until healthy, prove identity, logs, stop.

Every backend (a local ``transformers serve`` process, an sglang or vLLM container) is a
:class:`ModelServer`. Use it as a context manager::

    with make_server("transformers", folder) as server:   # started, healthy, identity checked
        client = LLMClient(server.base_url, server.model_name)

Leaving the block (normally, on an error or on Ctrl-C) stops the server; an ``atexit`` hook
stops any server that was started and neither stopped nor detached.
"""

from __future__ import annotations

import atexit
import logging
import re
import socket
import time
import weakref
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("ablbench.serve")

#: log lines that mean the start failed, whatever the health endpoint says
FATAL_PATTERNS: tuple[str, ...] = (
    r"Not enough memory",
    r"Capture cuda graph failed",
    r"Watchdog timeout",
    r"CUDA out of memory",
    r"torch\.OutOfMemoryError",
    r"Received sigquit from a child process",
    r"Address already in use",
)
#: a traceback during start-up is fatal unless the server recovers within this grace
TRACEBACK_PATTERN = r"Traceback \(most recent call last\)"
TRACEBACK_GRACE_S = 20.0


class ServerError(RuntimeError):
    """A model server failed to start, died, or serves something other than what was asked."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail_lines(text: str, n: int) -> str:
    """The last ``n`` lines of ``text``."""
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-n:])


_LIVE: weakref.WeakSet[ModelServer] = weakref.WeakSet()


@atexit.register
def _stop_live_servers() -> None:
    for server in list(_LIVE):
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            log.exception("could not stop %s at exit", server)


class ModelServer(ABC):
    """One served model folder, reachable on 127.0.0.1 over the OpenAI-compatible API."""

    backend: str = "?"
    #: how long ``__enter__`` waits for health by default
    default_health_budget_s: float = 300.0
    #: the path that answers 200 once the server is ready
    health_path: str = "/health"

    def __init__(
        self,
        model_dir: Path,
        *,
        name: str | None = None,
        port: int | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
        health_budget_s: float | None = None,
        poll_s: float = 1.0,
        fatal_patterns: tuple[str, ...] = FATAL_PATTERNS,
    ) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.name = name or default_name(self.model_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.health_budget_s = health_budget_s or self.default_health_budget_s
        self.poll_s = poll_s
        self._fatal = re.compile("|".join(fatal_patterns)) if fatal_patterns else None
        self._identity: dict[str, Any] | None = None
        self._healthy = False
        self._detached = False

    # -- what a backend provides ------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The ``model`` value clients send (the served model name)."""
        return self.name

    @property
    def base_url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:8123`` (clients append ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    @abstractmethod
    def _launch(self) -> None:
        """Start the process or container (do not wait)."""

    @abstractmethod
    def _exit_status(self) -> str | None:
        """None while running; otherwise a short description of how it ended."""

    @abstractmethod
    def logs_tail(self, n: int = 50) -> str:
        """The last ``n`` lines of the server's output."""

    @abstractmethod
    def _terminate(self, grace_s: float) -> None:
        """Stop and clean up; must be idempotent."""

    @abstractmethod
    def _expected_identity(self, models: dict[str, Any]) -> dict[str, Any]:
        """Check what the server says it serves against the folder; return identity facts.

        ``models`` is the parsed ``/v1/models`` answer. Raise :class:`ServerError` on a mismatch.
        """

    @abstractmethod
    def detach_info(self) -> dict[str, Any]:
        """What a later process needs to find and stop this server (pid or container id)."""

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> ModelServer:
        """Launch the server (returns at once; call :meth:`wait_healthy` next)."""
        self._launch()
        _LIVE.add(self)
        return self

    def wait_healthy(self, budget_s: float | None = None) -> dict[str, Any]:
        """Poll :attr:`health_path` until it answers 200, then check identity; return the identity.

        Ends at once with :class:`ServerError` (carrying the log tail) if the process or
        container exits, is OOM-killed, or prints a fatal line; and when the budget runs out.
        """
        if self._healthy and self._identity is not None:
            return self._identity
        budget = self.health_budget_s if budget_s is None else budget_s
        start = time.monotonic()
        deadline = start + budget
        traceback_seen: float | None = None
        last_note = ""
        with httpx.Client(timeout=httpx.Timeout(5.0)) as http:
            while True:
                status = self._exit_status()
                if status is not None:
                    raise self._failure(f"{self.backend} server '{self.name}' {status} during start-up")
                logs = self.logs_tail(300)
                if self._fatal is not None and (m := self._fatal.search(logs)):
                    raise self._failure(
                        f"{self.backend} server '{self.name}' failed: {m.group(0)!r} in its log"
                    )
                if re.search(TRACEBACK_PATTERN, logs):
                    traceback_seen = traceback_seen or time.monotonic()
                    if time.monotonic() - traceback_seen > TRACEBACK_GRACE_S:
                        raise self._failure(
                            f"{self.backend} server '{self.name}' printed a traceback during start-up"
                        )
                try:
                    resp = http.get(f"{self.base_url}{self.health_path}")
                    if resp.status_code == 200:
                        break
                    last_note = f"{self.health_path} answered {resp.status_code}"
                except httpx.HTTPError as exc:
                    last_note = f"{self.health_path} unreachable ({type(exc).__name__})"
                if time.monotonic() >= deadline:
                    raise self._failure(
                        f"{self.backend} server '{self.name}' not healthy after {budget:.0f} s "
                        f"(last: {last_note}); raise --health-budget if it is still loading"
                    )
                time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))
        log.info("%s healthy after %.1f s", self.name, time.monotonic() - start)
        self._healthy = True
        self._identity = self._check_identity()
        return self._identity

    def exit_status(self) -> str | None:
        """None while the server runs; otherwise how it ended (exit code, OOM-kill, signal)."""
        return self._exit_status()

    def identity(self) -> dict[str, Any]:
        """What the server says it serves (``/v1/models``, backend facts), checked against the folder."""
        if self._identity is None:
            self._identity = self._check_identity()
        return self._identity

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the server; nothing is left running. Idempotent."""
        _LIVE.discard(self)
        self._healthy = False
        self._terminate(grace_s)

    def detach(self) -> dict[str, Any]:
        """Leave the server running after this process exits; return its detach info."""
        self._detached = True
        _LIVE.discard(self)
        return self.detach_info()

    def __enter__(self) -> ModelServer:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._detached:
            self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.base_url} {self.model_dir}>"

    # -- helpers ------------------------------------------------------------------------------
    def _failure(self, message: str) -> ServerError:
        tail = self.logs_tail(40)
        return ServerError(f"{message}\n--- last log lines ---\n{tail}" if tail else message)

    def _get_json(self, path: str) -> dict[str, Any]:
        try:
            resp = httpx.get(f"{self.base_url}{path}", timeout=30.0)
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServerError(f"{self.backend} server '{self.name}': GET {path} failed: {exc}") from exc

    def _check_identity(self) -> dict[str, Any]:
        models = self._get_json("/v1/models")
        facts = self._expected_identity(models)
        return {
            "backend": self.backend,
            "name": self.name,
            "base_url": self.base_url,
            "model_dir": str(self.model_dir),
            **facts,
        }


def model_entries(models: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``data`` list of a ``/v1/models`` answer (empty when malformed)."""
    data = models.get("data") if isinstance(models, dict) else None
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def default_name(model_dir: Path) -> str:
    """A served-model name derived from the folder (or GGUF file) name, docker-name safe."""
    stem = model_dir.name[:-5] if model_dir.name.lower().endswith(".gguf") else model_dir.name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")
    return cleaned or "model"
