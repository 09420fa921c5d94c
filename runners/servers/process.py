"""Local server processes: the common process lifecycle, and ``transformers serve`` on top of it.

Facts learned from transformers 5.x: with a model passed on the command line the server is
*pinned* to it (loaded before ``/health`` answers); every request's ``model`` must be that
exact string, else HTTP 400 "Server is pinned to '<model>'; requested '<x>'"; replies name
``<model>@main``; ``/v1/models`` lists the Hugging Face hub cache, not the pinned model (and
fails when that cache does not exist). So the served model name is the folder path, and the
identity is proven by the pinned-model answer plus a one-token generation.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from runners.servers import watch
from runners.servers.base import ModelServer, ServerError, tail_lines

_PINNED = re.compile(r"pinned to '([^']*)'")
_PR_SET_PDEATHSIG = 1


def transformers_cli() -> list[str]:
    """argv prefix of the ``transformers`` command of this interpreter's environment."""
    beside = Path(sys.executable).parent / "transformers"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("transformers")
    if found:
        return [found]
    code = "import sys; from transformers.cli.transformers import main; sys.exit(main())"
    return [sys.executable, "-c", code]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalProcessServer(ModelServer):
    """A server run as a local subprocess in its own process group (``transformers serve``, llama.cpp).

    The subclass gives :meth:`command`, :meth:`_check_model_path` and the identity check; this
    class owns the process: start, log file, exit status, stop (the whole group), detach info,
    and its record in ``runners.servers.watch`` (written at start, completed by a watcher thread
    when the server dies on its own; a server that died while serving keeps its log, even a
    temporary one, since the client's message names it).
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        log_path: Path | None = None,
        die_with_parent: bool = False,
        warmup: bool = True,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_dir, **kwargs)
        self.warmup = warmup
        #: the child gets SIGTERM when the process that started it dies (not for --detach)
        self.die_with_parent = die_with_parent
        self.env = env or {}
        self._own_log_dir: str | None = None
        #: where the server's output goes; None: a temporary file made at start, removed at stop
        self.log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._final_log: str | None = None
        self._died = False
        self._died_serving = False

    def command(self) -> list[str]:
        """The full argv of the server."""
        raise NotImplementedError

    def _check_model_path(self) -> None:
        """Raise :class:`ServerError` when the model path cannot be served by this backend."""

    @property
    def pid(self) -> int | None:
        return self._pid

    def _launch(self) -> None:
        self._check_model_path()
        argv = self.command()
        if self.log_path is None:
            self._own_log_dir = tempfile.mkdtemp(prefix="ablbench-serve-")
            self.log_path = Path(self._own_log_dir) / "server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - argv built from our own values
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: stop() ends the server and its children
                preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509
            )
        self._pid = self._proc.pid
        watch.record_start(self.port, {"pid": self._pid, "start_ticks": process_start_ticks(self._pid),
                                       "backend": self.backend, "name": self.name, "base_url": self.base_url,
                                       "log": str(self.log_path)})
        threading.Thread(target=self._watch, args=(self._proc,), daemon=True, name=f"watch-{self.name}").start()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        """Note in the watch record how the server ended, unless it was stopped on purpose."""
        while proc.poll() is None:
            time.sleep(0.5)
        if self._proc is proc:  # not stopped by us: it died
            self._died = True
            self._died_serving = self._healthy  # a failed start reports its log tail in the ServerError
            watch.record_exit(self.port, proc.pid, self._exit_status() or f"exited with code {proc.returncode}")

    def _exit_status(self) -> str | None:
        if self._proc is None:
            return "was never started"
        code = self._proc.poll()
        if code is None:
            return None
        if code < 0:
            name = signal.Signals(-code).name
            oom = " (OOM-killed?)" if -code == signal.SIGKILL else ""
            return f"was killed by {name}{oom}"
        return f"exited with code {code}"

    def logs_tail(self, n: int = 50) -> str:
        if self._final_log is not None:
            return tail_lines(self._final_log, n)
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 256 * 1024))
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return tail_lines(text, n)

    def _terminate(self, grace_s: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        terminate_group(proc.pid, grace_s, proc)
        if not self._died:
            watch.forget(self.port, proc.pid)
        if self._own_log_dir is not None and not self._died_serving:
            # our own temporary log: keep its tail in memory, leave nothing on disk
            self._final_log = self.logs_tail(200)
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
            self._own_log_dir = None

    def detach_info(self) -> dict[str, Any]:
        return {
            "kind": "process",
            "pid": self._pid,
            "start_ticks": process_start_ticks(self._pid) if self._pid else None,
            "log": str(self.log_path) if self.log_path else None,
        }


class TransformersServer(LocalProcessServer):
    """A ``transformers serve --device cpu FOLDER`` subprocess in its own process group."""

    backend = "transformers"
    default_health_budget_s = 300.0

    def __init__(self, model_dir: Path, *, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(model_dir, **kwargs)
        self.device = device

    @property
    def model_name(self) -> str:
        """transformers serve only accepts the exact string it was started with: the folder path."""
        return str(self.model_dir)

    def command(self) -> list[str]:
        """The full argv of the server."""
        return [
            *transformers_cli(), "serve",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--device", self.device,
            *self.extra_args,
            str(self.model_dir),
        ]

    def _check_model_path(self) -> None:
        if self.model_dir.is_file() and self.model_dir.suffix.lower() == ".gguf":
            raise ServerError(
                f"{self.model_dir} is a GGUF file: transformers serve needs a Hugging Face model folder; "
                "serve a GGUF with --backend llamacpp"
            )
        if not self.model_dir.is_dir():
            raise ServerError(f"model folder {self.model_dir} does not exist")

    def _expected_identity(self, models: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError  # identity does not come from /v1/models here

    def _check_identity(self) -> dict[str, Any]:
        pinned = self._pinned_model()
        if Path(pinned).resolve() != self.model_dir:
            raise ServerError(
                f"transformers server '{self.name}' is pinned to {pinned!r}, not {self.model_dir}"
            )
        facts: dict[str, Any] = {"served_model": pinned, "pid": self._pid, "model_path": pinned}
        if self.warmup:
            facts["reply_model"] = self._warmup()
        facts["max_model_len"] = config_context_length(self.model_dir)
        return {"backend": self.backend, "name": self.name, "base_url": self.base_url,
                "model_dir": str(self.model_dir), **facts}

    def _pinned_model(self) -> str:
        """Ask with a model name the server cannot have; its refusal names the pinned model."""
        body = {"model": "ablbench-identity-probe", "messages": [{"role": "user", "content": "."}],
                "max_tokens": 1}
        try:
            resp = httpx.post(f"{self.base_url}/v1/chat/completions", json=body, timeout=30.0)
        except httpx.HTTPError as exc:
            raise ServerError(f"transformers server '{self.name}': identity probe failed: {exc}") from exc
        match = _PINNED.search(resp.text)
        if resp.status_code != 400 or not match:
            raise ServerError(
                f"transformers server '{self.name}' is not pinned to one model "
                f"(probe answered {resp.status_code}: {resp.text[:200]})"
            )
        return match.group(1)

    def _warmup(self) -> str | None:
        """One-token generation: the weights load and answer; returns the reply's ``model``."""
        body = {"model": self.model_name, "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 1, "temperature": 0}
        try:
            resp = httpx.post(f"{self.base_url}/v1/chat/completions", json=body, timeout=120.0)
            resp.raise_for_status()
            model = resp.json().get("model")
        except (httpx.HTTPError, ValueError) as exc:
            raise self._failure(f"transformers server '{self.name}' cannot generate: {exc}") from exc
        if model and not str(model).startswith(self.model_name):
            raise ServerError(
                f"transformers server '{self.name}' answered as {model!r}, not {self.model_name!r}"
            )
        return model


def terminate_group(pid: int, grace_s: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """SIGTERM the process group ``pid`` leads, SIGKILL it after ``grace_s``; True if it was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        if proc is not None:
            proc.wait()
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                break
        elif not _group_alive(pid):
            break
        time.sleep(0.1)
    # the leader may be gone while children linger: always sweep the group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait()
    return True


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), to tell it from a later process reusing the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: fields after its closing parenthesis
    return int(stat.rsplit(")", 1)[1].split()[19])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def config_context_length(model_dir: Path) -> int | None:
    """``max_position_embeddings`` from config.json (transformers serve does not report one)."""
    import json

    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    value = cfg.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None
