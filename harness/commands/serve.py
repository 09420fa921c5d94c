"""``ablbench serve``: start a model server, wait until healthy, print URL and identity, stop cleanly.

    ablbench serve [--backend B] [--model DIR|FILE.gguf] [--port P] [--name N] [--detach] [--check]
                   [--base DIR|FILE.gguf] [--health-budget S] [-- extra server args]
    ablbench serve stop [NAME | --all]
    ablbench serve list
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import typer
from cyclopts import App

from ablbench.errors import AblbenchError
from harness.commands._typer_bridge import mount
from harness.errors import fail
from harness.servers import (
    ServeOptions,
    make,
    preflight,
    read_states,
    remove_leftover_containers,
    resolve_model,
    start_server,
    stop_server,
)


def _register_typer(app: typer.Typer) -> None:
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
    from runners.preflight import errors

    problems = preflight(model, base)
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


def _serve(o: ServeOptions) -> None:
    from rich.console import Console

    model, backend, why = resolve_model(o.model, o.backend)
    _preflight(model, o.base.expanduser().resolve() if o.base else None, o.check, o.force)
    if o.backend is None:
        typer.echo(f"backend: {backend} ({why})", err=True)
    server = make(o, model, backend)
    console = Console(stderr=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        try:
            served = start_server(server, model, backend, o.detach, waiting=console.status)
        except AblbenchError as exc:
            head, _, tail = str(exc).partition("\n")
            if tail:
                typer.echo(tail, err=True)
            raise AblbenchError(head) from exc
        typer.echo(f"url: {served.url}")
        typer.echo(f"model: {served.model}")
        typer.echo(json.dumps(served.identity, indent=2))
        if o.detach:
            typer.echo(f"detached; recorded in {served.state_path}; stop with `ablbench serve stop {server.name}`",
                       err=True)
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
        if not o.detach:
            server.stop()
    typer.echo(f"stopped {server.name}", err=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(names: list[str], all_: bool) -> None:
    states = read_states()
    if not names and not all_:
        raise fail("name the server to stop (`ablbench serve list`) or pass --all")
    unknown = [n for n in names if n not in states]
    if unknown and not all_:
        raise fail(f"no detached server named {', '.join(unknown)}: see `ablbench serve list`")
    for name in list(states) if all_ else names:
        typer.echo(f"{name}: {'stopped' if stop_server(name) else 'was not running'}")
    if all_:
        for name in remove_leftover_containers():
            typer.echo(f"{name}: removed (leftover container)")


def _list() -> None:
    from runners.servers.detached import detached_alive

    states = read_states()
    if not states:
        typer.echo("no detached servers", err=True)
        return
    for name, record in states.items():
        alive = detached_alive(record.get("detach", {}))
        typer.echo(f"{name}\t{record.get('backend')}\t{record.get('base_url')}\t"
                   f"{'running' if alive else 'dead'}\t{record.get('model_dir')}")


def register(app: App) -> None:
    """Add the ``serve`` verb (still declared with typer: harness/commands/_typer_bridge.py)."""
    group = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    _register_typer(group)
    command = typer.main.get_command(group)
    mount(app, group, "serve", (command.help or "").split("\n")[0])
