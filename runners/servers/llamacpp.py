"""llama.cpp (``llama-cpp-python[server]``) as a local process: the CPU backend for GGUF files.

Rules, in order:

1. Only a GGUF file is served. An HF folder is refused with the fix (``--backend transformers``
   or a GGUF); a missing ``llama-cpp-python`` is refused with the fix (``scripts/setup.sh``).
2. The command is ``python -m llama_cpp.server --model FILE --model_alias ALIAS`` on 127.0.0.1
   with the thread count (``--n_threads``, ``--n_threads_batch``) and context size (``--n_ctx``)
   always explicit: threads = half the CPUs this process may use (:func:`default_threads`),
   context = the file's trained length capped at :data:`DEFAULT_MAX_CTX`, and the prompt cache on
   (``--cache true``, see rule 3). Server arguments after ``--`` come last and win; the identity
   records the values that apply.
3. llama-cpp-python loads the model before it binds the port, has no ``/health``, and holds
   one model behind a lock: concurrent requests queue and run one at a time (no thrashing of
   2 cores between two generations). Its context keeps only the last request's tokens, so two
   agents taking turns would re-read their whole conversation on every turn; the prompt cache
   keeps each conversation's state and restores the longest cached prefix instead (README,
   "Measured here": about a quarter off a 2-trial benchmark). Readiness is ``/v1/models``
   answering 200.
4. The alias (the ``model`` clients send) names the weights, not the server instance:
   ``<file stem>@<12 hex>`` over the file's resolved path, size and modification time. A run
   fingerprints the served model by it, so it resumes against a restarted server of the same
   file and refuses a different or rewritten file.
5. Identity: ``/v1/models`` must list exactly our alias (the server answers any ``model``
   name with its one model), the process is ours, and a
   one-token generation answers. The file's header facts (name, context, ``abliteration.*``
   keys) and size are recorded.
6. Start-up fails early on the process exiting or a fatal log line (model load errors).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from runners.gguf_info import GGUFError, GGUFFacts, read_facts
from runners.servers.base import FATAL_PATTERNS, ServerError, model_entries
from runners.servers.process import LocalProcessServer

#: the largest context allocated by default (KV cache memory grows with it); raise with -- --n_ctx N
DEFAULT_MAX_CTX = 8192
LLAMA_FATAL_PATTERNS: tuple[str, ...] = (
    *FATAL_PATTERNS,
    r"error loading model",
    r"failed to load model",
    r"Failed to load model from file",
)
INSTALL_HINT = "run scripts/setup.sh (it builds llama-cpp-python once and caches the wheel)"


def llama_cpp_installed() -> bool:
    """True when ``llama_cpp.server`` and its web dependencies can be imported here."""
    return all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", "sse_starlette", "starlette_context"))


def cpu_threads() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Half the CPUs (at least one): the task containers, the agent and the verifiers need the rest.

    llama.cpp's threads spin at barriers: with more threads than free cores a generation
    collapses (measured here on 2 busy cores: 2.0 tokens/s with 2 threads, 18 with 1).
    """
    return max(1, cpu_threads() // 2)


def weights_alias(gguf: Path) -> str:
    """``<stem>@<12 hex>``: the file's name, and a key over its resolved path, size and mtime."""
    path = gguf.resolve()
    st = path.stat()
    key = hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"{path.stem}@{key}"


def _arg_value(args: list[str], flag: str) -> str | None:
    """The last value given to ``flag`` (``--flag V`` or ``--flag=V``) in ``args``."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


class LlamaCppServer(LocalProcessServer):
    """``python -m llama_cpp.server`` serving one GGUF file in its own process group."""

    backend = "llamacpp"
    default_health_budget_s = 180.0
    health_path = "/v1/models"

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int | None = None,
        n_ctx: int | None = None,
        fatal_patterns: tuple[str, ...] = LLAMA_FATAL_PATTERNS,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_dir, fatal_patterns=fatal_patterns, **kwargs)
        self.threads = threads or default_threads()
        self.n_ctx = n_ctx
        self._facts: GGUFFacts | None = None

    @property
    def gguf(self) -> Path:
        """The served GGUF file."""
        return self.model_dir

    @functools.cached_property
    def model_name(self) -> str:
        """The alias: ``<stem>@<hash of path, size, mtime>`` (the same file keeps it across restarts).

        Taken once per server object, so the alias it serves under cannot drift while it runs."""
        return weights_alias(self.model_dir)

    def _check_model_path(self) -> None:
        if self.model_dir.is_dir():
            raise ServerError(
                f"{self.model_dir} is a folder (a Hugging Face model); llama.cpp serves GGUF files: "
                "use --backend transformers for this folder, or pass a .gguf file"
            )
        try:
            self._facts = read_facts(self.model_dir)
        except GGUFError as exc:
            raise ServerError(f"{exc}; llama.cpp serves GGUF files") from None
        if not llama_cpp_installed():
            raise ServerError(f"llama-cpp-python[server] is not installed -- {INSTALL_HINT}")

    def prompt_cache(self) -> bool:
        """Whether the prompt cache applies (rule 3): on unless ``-- --cache false`` turns it off."""
        given = _arg_value(self.extra_args, "--cache")
        return given is None or given.strip().lower() not in ("false", "0", "no", "off")

    def _effective(self) -> tuple[int, int]:
        """(threads, n_ctx) that apply, server arguments after ``--`` included."""
        ctx = self.n_ctx
        if ctx is None:
            trained = self._facts.context_length if self._facts else None
            ctx = min(trained, DEFAULT_MAX_CTX) if trained else DEFAULT_MAX_CTX
        values = []
        for flag, default in (("--n_threads", self.threads), ("--n_ctx", ctx)):
            given = _arg_value(self.extra_args, flag)
            try:
                values.append(int(given) if given is not None else int(default))
            except ValueError:
                raise ServerError(f"{flag} {given!r} is not a whole number") from None
        return values[0], values[1]

    def command(self) -> list[str]:
        """The full argv of the server."""
        threads, ctx = self._effective()
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_dir),
            "--model_alias", self.model_name,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", str(threads),
            "--n_threads_batch", str(threads),
            "--n_ctx", str(ctx),
            "--cache", "true",
            *self.extra_args,
        ]

    def _expected_identity(self, models: dict[str, Any]) -> dict[str, Any]:
        ids = [str(m.get("id")) for m in model_entries(models)]
        if ids != [self.model_name]:
            raise ServerError(
                f"llama.cpp server on port {self.port} serves {ids or 'nothing'}, not '{self.model_name}' "
                "(another server on this port?)"
            )
        if self._facts is None:
            self._facts = read_facts(self.model_dir)
        threads, ctx = self._effective()
        facts: dict[str, Any] = {
            "served_model": self.model_name,
            "model_path": str(self.model_dir),
            "file_bytes": self.model_dir.stat().st_size,
            "gguf_name": self._facts.name,
            "architecture": self._facts.architecture,
            "tokenizer_digest": self._facts.tokenizer_digest,
            "max_model_len": ctx,
            "threads": threads,
            "prompt_cache": self.prompt_cache(),
            "pid": self.pid,
        }
        if self._facts.abliteration:
            facts["abliteration"] = self._facts.abliteration
        if self.warmup:
            facts["reply_model"] = self._warmup()
        return facts

    def _warmup(self) -> str | None:
        """One-token generation: the weights answer; returns the reply's ``model``."""
        body = {"model": self.model_name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1,
                "temperature": 0}
        try:
            resp = httpx.post(f"{self.base_url}/v1/chat/completions", json=body, timeout=120.0)
            resp.raise_for_status()
            return resp.json().get("model")
        except (httpx.HTTPError, ValueError) as exc:
            raise self._failure(f"llama.cpp server '{self.name}' cannot generate: {exc}") from exc
