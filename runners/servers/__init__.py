"""Model servers behind one interface: ``llamacpp`` and ``transformers`` (local CPU processes),
``sglang``, ``vllm`` (docker).

``make_server(backend, model_dir, ...)`` returns a :class:`ModelServer`; use it as a context
manager (start, wait until healthy, identity check; stopped on exit, error or Ctrl-C).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runners.servers.base import FATAL_PATTERNS, ModelServer, ServerError, free_port
from runners.servers.container import (
    SGLANG_IMAGE,
    VLLM_IMAGE,
    ContainerServer,
    ContainerSpec,
    SglangServer,
    VllmServer,
    find_server_containers,
)
from runners.servers.llamacpp import LlamaCppServer
from runners.servers.process import TransformersServer

BACKENDS: dict[str, type[ModelServer]] = {
    "llamacpp": LlamaCppServer,
    "transformers": TransformersServer,
    "sglang": SglangServer,
    "vllm": VllmServer,
}

__all__ = [
    "BACKENDS", "FATAL_PATTERNS", "SGLANG_IMAGE", "VLLM_IMAGE", "ContainerServer", "ContainerSpec",
    "LlamaCppServer", "ModelServer", "ServerError", "SglangServer", "TransformersServer", "VllmServer",
    "find_server_containers", "free_port", "make_server",
]


def make_server(
    backend: str,
    model_dir: Path,
    *,
    name: str | None = None,
    port: int | None = None,
    extra_args: list[str] | tuple[str, ...] = (),
    **opts: Any,
) -> ModelServer:
    """A not-yet-started server of ``backend`` for ``model_dir``.

    ``opts`` go to the backend class: for containers ``image``, ``launcher``, ``gpus``,
    ``shm_size``, ``labels``, ``stands_for`` ...; for transformers ``device``, ``log_path``; for
    llamacpp ``threads``, ``n_ctx``, ``log_path``;
    for all ``health_budget_s`` and ``fatal_patterns``.
    """
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise ServerError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}") from None
    return cls(Path(model_dir), name=name, port=port, extra_args=list(extra_args), **opts)
