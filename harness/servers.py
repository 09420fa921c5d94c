"""Model servers for the CLI and the sweep: the backend choice, the record of detached servers,
and one start call that returns what was served as data.

Rules, in order:

1. ``resolve_model`` picks the model (the bundled SmolLM2 when none is given) and the backend
   (``default_backend``: llamacpp for a GGUF file, sglang with a GPU and its image, else
   transformers) and refuses a backend that cannot serve that model.
2. ``preflight`` lists the model folder's or GGUF file's problems; the caller decides.
3. ``start_server`` starts the server, waits until it is healthy and returns the running server
   with a :class:`ServedModel` (URL, model name, context length, identity). With ``detach`` the
   server outlives this process and is recorded in ``state_dir()/NAME.json``; ``stop_server``
   ends it and removes the record.
4. A server that fails to start is stopped before the error is raised.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from ablbench.atomic import write_json_atomic
from ablbench.errors import AblbenchError
from ablbench.paths import cache_dir

BACKEND_NAMES = ("llamacpp", "transformers", "sglang", "vllm")


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """The options of one ``ablbench serve`` invocation (``serve stop`` reads ``all_`` only)."""

    model: Annotated[Path | None, Parameter(alias="-m")] = None
    """HF model folder or GGUF file to serve (default: the bundled SmolLM2)."""
    backend: Annotated[str | None, Parameter(alias="-b")] = None  # None: default_backend() picks one
    """llamacpp | transformers | sglang | vllm (default: llamacpp for a GGUF and the bundled model on a CPU; sglang with a GPU and its image; else transformers)."""
    port: int | None = None
    """Host port on 127.0.0.1 (default: a free one)."""
    name: str | None = None
    """Server name (default: the folder name)."""
    detach: bool = False
    """Leave the server running; stop it with `serve stop`."""
    check: bool = False
    """Only run the preflight check of the folder."""
    base: Path | None = None
    """Base model folder or GGUF: tokenizer/template must match."""
    health_budget: float | None = None
    """Seconds to wait for health (default: 1200 containers, 300 transformers, 180 llamacpp)."""
    image: str | None = None
    """Override the pinned container image."""
    gpus: str = "all"
    """Container GPUs: all, a count, or ids like 0,1."""
    force: bool = False
    """Serve even when the preflight check finds errors."""
    all_: Annotated[bool, Parameter(name="--all")] = False
    """With `stop`: every detached or leftover server."""
    extra_args: Annotated[tuple[str, ...], Parameter(parse=False)] = ()  # what follows `--`, for the server itself


def state_dir() -> Path:
    """Where detached servers are recorded (one JSON file per server name)."""
    return cache_dir() / "servers"


def _state_path(name: str) -> Path:
    return state_dir() / f"{name}.json"


def _write_state(name: str, record: dict[str, Any]) -> Path:
    path = _state_path(name)
    write_json_atomic(path, record)
    return path


def read_states() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if state_dir().is_dir():
        for path in sorted(state_dir().glob("*.json")):
            try:
                out[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
    return out


def gpu_present() -> bool:
    """True when ``nvidia-smi -L`` lists a GPU."""
    if not shutil.which("nvidia-smi"):
        return False
    try:
        res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and "GPU" in res.stdout


def _image_present(image: str) -> bool:
    try:
        import docker

        docker.from_env(timeout=30).images.get(image)
    except Exception:  # noqa: BLE001 - no engine or no image: not usable
        return False
    return True


def default_backend(model: Path | None = None, embedded: bool = False) -> tuple[str, str]:
    """(backend, why) for ``model`` (an HF folder unless it is a GGUF file).

    A GGUF file: llamacpp. The embedded model: sglang with a GPU and the pinned image, else
    llamacpp on its bundled GGUF when llama-cpp-python is installed, else transformers. An HF
    folder: sglang with a GPU and the pinned image, else transformers.
    """
    from runners.gguf_info import has_gguf_magic
    from runners.servers import SGLANG_IMAGE
    from runners.servers.llamacpp import llama_cpp_installed

    if model is not None and has_gguf_magic(model):
        return "llamacpp", "a GGUF file"
    if not gpu_present():
        if embedded and llama_cpp_installed():
            return "llamacpp", "no GPU (nvidia-smi) found; the bundled model's GGUF"
        return "transformers", "no GPU (nvidia-smi) found"
    if not _image_present(SGLANG_IMAGE):
        if embedded and llama_cpp_installed():
            return "llamacpp", f"GPU found but image {SGLANG_IMAGE} is not present; the bundled model's GGUF"
        return "transformers", f"GPU found but image {SGLANG_IMAGE} is not present (docker pull it)"
    return "sglang", f"GPU and {SGLANG_IMAGE} found"



def resolve_model(model: Path | None, backend: str | None) -> tuple[Path, str, str]:
    """(model path, backend, why): the bundled model when ``model`` is None; the backend checked against it."""
    from runners.gguf_info import has_gguf_magic

    embedded = model is None
    if embedded:
        from harness.embedded_model import gguf_path, materialize

        chosen, why = (backend, "asked") if backend else default_backend(None, embedded=True)
        model = gguf_path() if chosen == "llamacpp" else materialize()
    else:
        model = model.expanduser().resolve()
        if not model.exists():
            raise AblbenchError(f"{model} does not exist: pass --model DIR or FILE.gguf (or omit it for the bundled model)")
        chosen, why = (backend, "asked") if backend else default_backend(model)
    if chosen not in BACKEND_NAMES:
        raise AblbenchError(f"unknown backend {chosen!r}: choose one of {', '.join(BACKEND_NAMES)}")
    gguf = has_gguf_magic(model)
    if chosen == "llamacpp" and not gguf:
        raise AblbenchError(
            f"{model} is not a GGUF file (an HF folder?): llama.cpp serves GGUF files; "
            "serve this folder with --backend transformers (or sglang/vllm), or pass a .gguf file"
        )
    if chosen != "llamacpp" and gguf:
        raise AblbenchError(f"{model} is a GGUF file: serve it with --backend llamacpp (the {chosen} backend needs an HF folder)")
    if chosen != "llamacpp" and not model.is_dir():
        raise AblbenchError(f"{model} is not a model folder: pass an HF folder, or a .gguf file with --backend llamacpp")
    return model, chosen, why


@dataclass(frozen=True)
class ServedModel:
    """A healthy server as data: what a run needs to reach it and what it says it serves."""

    name: str
    backend: str
    url: str  # the OpenAI-compatible root, no /v1
    model: str  # the model name as served
    context_length: int | None  # the context the server allocated (llama.cpp does not list it in /v1/models)
    identity: dict[str, Any]
    state_path: Path | None = None  # the record of a detached server


def preflight(model: Path, base: Path | None) -> list:
    """The preflight problems of ``model`` (a GGUF file or an HF folder), checked against ``base``."""
    from runners.gguf_info import has_gguf_magic
    from runners.gguf_preflight import check_gguf
    from runners.preflight import check_model

    return check_gguf(model, base) if has_gguf_magic(model) else check_model(model, base)


def make(o: ServeOptions, model: Path, backend: str, die_with_parent: bool | None = None) -> Any:
    """The server ``o`` asks for (not started yet); a local process dies with this one unless detached
    (``die_with_parent=True``: even when detached, e.g. the sweep's servers, stopped by the sweep anyway)."""
    from runners.servers import make_server
    from runners.servers.base import default_name
    from runners.servers.detached import detached_alive

    if backend in {"transformers", "llamacpp"}:
        log_path = state_dir() / f"{o.name or default_name(model)}.log" if o.detach else None  # outlives the command
        server = make_server(backend, model, name=o.name, port=o.port, extra_args=o.extra_args,
                             health_budget_s=o.health_budget, log_path=log_path,
                             die_with_parent=not o.detach if die_with_parent is None else die_with_parent)
    else:
        gpus = None if o.gpus in {"none", ""} else (int(o.gpus) if o.gpus.isdigit() else o.gpus)
        server = make_server(backend, model, name=o.name, port=o.port, extra_args=o.extra_args,
                             health_budget_s=o.health_budget, gpus=gpus, image=o.image)
    existing = read_states().get(server.name)
    if existing and detached_alive(existing.get("detach", {})):
        raise AblbenchError(f"a server named {server.name} is already running: `ablbench serve stop {server.name}` "
                            "or pass --name")
    return server


def start_server(server: Any, model: Path, backend: str, detach: bool,
                 waiting: Callable[[str], Any] | None = None) -> ServedModel:
    """Start ``server`` and wait until healthy (rule 3); ``waiting(text)`` gives a context shown meanwhile.

    Any failure or ``KeyboardInterrupt`` while starting stops the server, then propagates (rule 4).
    """
    import contextlib

    from runners.servers import ServerError

    try:
        server.start()
        text = f"starting {backend} server '{server.name}' on {server.base_url} (up to {server.health_budget_s:.0f} s)"
        with waiting(text) if waiting else contextlib.nullcontext():
            identity = server.wait_healthy()
    except ServerError as exc:
        server.stop()
        raise AblbenchError(str(exc)) from exc
    except BaseException:
        server.stop()
        raise
    state = None
    if detach:
        record = {
            "name": server.name, "backend": backend, "base_url": server.base_url,
            "model_name": server.model_name, "model_dir": str(model), "identity": identity,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "detach": server.detach(),
        }
        state = _write_state(server.name, record)
    ctx = identity.get("max_model_len")
    return ServedModel(name=server.name, backend=backend, url=server.base_url, model=server.model_name,
                       context_length=int(ctx) if ctx else None, identity=identity, state_path=state)


def stop_server(name: str) -> bool:
    """Stop the detached server ``name`` and drop its record; False when it was not running."""
    from runners.servers.detached import stop_detached

    ran = stop_detached(read_states().get(name, {}).get("detach", {}))
    _state_path(name).unlink(missing_ok=True)
    return ran


def remove_leftover_containers() -> list[str]:
    """Remove every container an ablbench model server left behind (found by label); their names."""
    try:
        import docker

        from runners.servers import find_server_containers

        leftovers = find_server_containers(docker.from_env(timeout=60))
    except Exception:  # noqa: BLE001 - no engine: nothing to sweep
        return []
    for container in leftovers:
        container.remove(force=True)
    return [c.name for c in leftovers]
