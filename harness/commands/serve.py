"""``ablbench serve``: start a model server, wait until healthy, print URL and identity, stop cleanly.

    ablbench serve [--backend B] [--model DIR|FILE.gguf] [--port P] [--name N] [--detach] [--check]
                   [--base DIR|FILE.gguf] [--health-budget S] [-- extra server args]
    ablbench serve stop [NAME | --all]
    ablbench serve list
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ablbench.errors import AblbenchError
from ablbench.paths import cache_dir
from ablbench.results import write_json_atomic
from harness.errors import fail

BACKEND_NAMES = ("llamacpp", "transformers", "sglang", "vllm")


@dataclass(frozen=True)
class ServeOptions:
    """The options of one ``ablbench serve`` invocation (``serve stop`` reads ``all_`` only)."""

    model: Path | None = None  # None: the bundled SmolLM2
    backend: str | None = None  # None: default_backend() picks one
    port: int | None = None
    name: str | None = None
    detach: bool = False
    check: bool = False
    base: Path | None = None
    health_budget: float | None = None
    image: str | None = None
    gpus: str = "all"
    force: bool = False
    all_: bool = False
    extra_args: tuple[str, ...] = ()  # what follows `--`, for the server itself


def state_dir() -> Path:
    """Where detached servers are recorded (one JSON file per server name)."""
    return cache_dir() / "servers"


def _state_path(name: str) -> Path:
    return state_dir() / f"{name}.json"


def _write_state(name: str, record: dict[str, Any]) -> Path:
    path = _state_path(name)
    write_json_atomic(path, record)
    return path


def _read_states() -> dict[str, dict[str, Any]]:
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


def register(app: typer.Typer) -> None:
    """Add the ``serve`` verb."""

    @app.command(
        "serve",
        context_settings={"allow_extra_args": True},
        help="Serve a model folder or GGUF file over the OpenAI-compatible API on 127.0.0.1 "
        "(no --model: the bundled SmolLM2). Extra server arguments go after `--`. `ablbench serve stop [NAME|--all]` ends detached "
        "servers; `ablbench serve list` shows them.",
    )
    def serve(
        ctx: typer.Context,
        model: Path | None = typer.Option(
            None, "--model", "-m", help="HF model folder or GGUF file to serve (default: the bundled SmolLM2)."
        ),
        backend: str | None = typer.Option(
            None, "--backend", "-b", help="llamacpp | transformers | sglang | vllm (default: llamacpp for a GGUF and "
            "the bundled model on a CPU; sglang with a GPU and its image; else transformers)."
        ),
        port: int | None = typer.Option(None, "--port", help="Host port on 127.0.0.1 (default: a free one)."),
        name: str | None = typer.Option(None, "--name", help="Server name (default: the folder name)."),
        detach: bool = typer.Option(False, "--detach", help="Leave the server running; stop it with `serve stop`."),
        check: bool = typer.Option(False, "--check", help="Only run the preflight check of the folder."),
        base: Path | None = typer.Option(
            None, "--base", help="Base model folder or GGUF: tokenizer/template must match."
        ),
        health_budget: float | None = typer.Option(
            None, "--health-budget", help="Seconds to wait for health (default: 1200 containers, 300 transformers, "
            "180 llamacpp)."
        ),
        image: str | None = typer.Option(None, "--image", help="Override the pinned container image."),
        gpus: str = typer.Option("all", "--gpus", help="Container GPUs: all, a count, or ids like 0,1."),
        force: bool = typer.Option(False, "--force", help="Serve even when the preflight check finds errors."),
        all_: bool = typer.Option(False, "--all", help="With `stop`: every detached or leftover server."),
    ) -> None:
        args = list(ctx.args)
        options = ServeOptions(model=model, backend=backend, port=port, name=name, detach=detach, check=check,
                               base=base, health_budget=health_budget, image=image, gpus=gpus, force=force,
                               all_=all_, extra_args=tuple(args))
        if model is None and args and args[0] in {"stop", "list"}:
            if args[0] == "stop":
                _stop(args[1:], options.all_)
            else:
                _list()
            return
        try:
            _serve(options)
        except AblbenchError as exc:
            raise fail(str(exc)) from exc


def _preflight(model: Path, base: Path | None, check: bool, force: bool) -> None:
    from runners.gguf_info import has_gguf_magic
    from runners.gguf_preflight import check_gguf
    from runners.preflight import check_model, errors

    problems = check_gguf(model, base) if has_gguf_magic(model) else check_model(model, base)
    for problem in problems:
        typer.secho(str(problem), err=True, fg=typer.colors.RED if problem.severity == "error" else typer.colors.YELLOW)
    bad = errors(problems)
    if check:
        if bad:
            raise fail(f"{model}: {len(bad)} preflight error(s) (see above)")
        typer.echo(f"{model}: preflight ok" + (f" ({len(problems)} warning(s))" if problems else ""))
        raise typer.Exit(0)
    if bad and not force:
        raise fail(f"{model}: {len(bad)} preflight error(s) (see above); fix them or pass --force")


def _resolve_model(model: Path | None, backend: str | None) -> tuple[Path, str, str]:
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


def _serve(o: ServeOptions) -> None:
    from rich.console import Console

    from runners.servers import ServerError, make_server
    from runners.servers.base import default_name
    from runners.servers.detached import detached_alive

    model, backend, why = _resolve_model(o.model, o.backend)
    _preflight(model, o.base.expanduser().resolve() if o.base else None, o.check, o.force)
    if o.backend is None:
        typer.echo(f"backend: {backend} ({why})", err=True)

    if backend in {"transformers", "llamacpp"}:
        log_path = state_dir() / f"{o.name or default_name(model)}.log" if o.detach else None  # outlives the command
        server = make_server(backend, model, name=o.name, port=o.port, extra_args=o.extra_args,
                             health_budget_s=o.health_budget, die_with_parent=not o.detach, log_path=log_path)
    else:
        gpus = None if o.gpus in {"none", ""} else (int(o.gpus) if o.gpus.isdigit() else o.gpus)
        server = make_server(backend, model, name=o.name, port=o.port, extra_args=o.extra_args,
                             health_budget_s=o.health_budget, gpus=gpus, image=o.image)
    existing = _read_states().get(server.name)
    if existing and detached_alive(existing.get("detach", {})):
        raise AblbenchError(f"a server named {server.name} is already running: `ablbench serve stop {server.name}` "
                            "or pass --name")

    console = Console(stderr=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    detached = False  # a --detach server interrupted before it was recorded must not be left running
    try:
        try:
            server.start()
            with console.status(f"starting {backend} server '{server.name}' on {server.base_url} "
                                f"(up to {server.health_budget_s:.0f} s)"):
                identity = server.wait_healthy()
        except ServerError as exc:
            server.stop()
            head, _, tail = str(exc).partition("\n")
            if tail:
                typer.echo(tail, err=True)
            raise AblbenchError(head) from exc
        typer.echo(f"url: {server.base_url}")
        typer.echo(f"model: {server.model_name}")
        typer.echo(json.dumps(identity, indent=2))
        if o.detach:
            record = {
                "name": server.name, "backend": backend, "base_url": server.base_url,
                "model_name": server.model_name, "model_dir": str(model), "identity": identity,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "detach": server.detach(),
            }
            path = _write_state(server.name, record)
            detached = True
            typer.echo(f"detached; recorded in {path}; stop with `ablbench serve stop {server.name}`", err=True)
            return
        typer.echo("serving; Ctrl-C stops it", err=True)
        while True:
            time.sleep(1.0)
            status = server.exit_status()
            if status is not None:
                typer.echo(server.logs_tail(40), err=True)
                log = getattr(server, "log_path", None)
                raise AblbenchError(f"{backend} server '{server.name}' {status}" + (f"; its log: {log}" if log else ""))
    except KeyboardInterrupt:
        typer.echo("stopping...", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not detached:
            server.stop()
    typer.echo(f"stopped {server.name}", err=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(names: list[str], all_: bool) -> None:
    from runners.servers.detached import stop_detached

    states = _read_states()
    if not names and not all_:
        raise fail("name the server to stop (`ablbench serve list`) or pass --all")
    unknown = [n for n in names if n not in states]
    if unknown and not all_:
        raise fail(f"no detached server named {', '.join(unknown)}: see `ablbench serve list`")
    targets = list(states) if all_ else names
    for name in targets:
        info = states[name].get("detach", {})
        ran = stop_detached(info)
        _state_path(name).unlink(missing_ok=True)
        typer.echo(f"{name}: {'stopped' if ran else 'was not running'}")
    if all_:
        _stop_labelled_containers()


def _stop_labelled_containers() -> None:
    """Remove any container an ablbench model server left behind (found by label)."""
    try:
        import docker

        from runners.servers import find_server_containers

        client = docker.from_env(timeout=60)
        leftovers = find_server_containers(client)
    except Exception:  # noqa: BLE001 - no engine: nothing to sweep
        return
    for container in leftovers:
        container.remove(force=True)
        typer.echo(f"{container.name}: removed (leftover container)")


def _list() -> None:
    from runners.servers.detached import detached_alive

    states = _read_states()
    if not states:
        typer.echo("no detached servers", err=True)
        return
    for name, record in states.items():
        alive = detached_alive(record.get("detach", {}))
        typer.echo(f"{name}\t{record.get('backend')}\t{record.get('base_url')}\t"
                   f"{'running' if alive else 'dead'}\t{record.get('model_dir')}")
