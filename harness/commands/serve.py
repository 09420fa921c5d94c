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
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from harness.errors import Exit, echo, fail, secho
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


def serve_command(
    *extra_args: Annotated[str, Parameter(help="`stop [NAME]`, `list`, or (after `--`) the server's own arguments.")],
    options: Annotated[ServeOptions, Parameter(name="*")] = ServeOptions(),
) -> None:
    """Serve a model folder or GGUF file over the OpenAI-compatible API on 127.0.0.1 (no --model: the bundled SmolLM2). Extra server arguments go after `--`. `ablbench serve stop [NAME|--all]` ends detached servers; `ablbench serve list` shows them."""
    options = replace(options, extra_args=tuple(extra_args))
    if options.model is None and extra_args and extra_args[0] in {"stop", "list"}:
        if extra_args[0] == "stop":
            _stop(list(extra_args[1:]), options.all_)
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
        secho(str(problem), err=True, fg="red" if problem.severity == "error" else "yellow")
    bad = errors(problems)
    if check:
        if bad:
            raise fail(f"{model}: {len(bad)} preflight error(s) (see above)")
        echo(f"{model}: preflight ok" + (f" ({len(problems)} warning(s))" if problems else ""))
        raise Exit(0)
    if bad and not force:
        raise fail(f"{model}: {len(bad)} preflight error(s) (see above); fix them or pass --force")


def _serve(o: ServeOptions) -> None:
    from rich.console import Console

    model, backend, why = resolve_model(o.model, o.backend)
    _preflight(model, o.base.expanduser().resolve() if o.base else None, o.check, o.force)
    if o.backend is None:
        echo(f"backend: {backend} ({why})", err=True)
    server = make(o, model, backend)
    console = Console(stderr=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        try:
            served = start_server(server, model, backend, o.detach, waiting=console.status)
        except AblbenchError as exc:
            head, _, tail = str(exc).partition("\n")
            if tail:
                echo(tail, err=True)
            raise AblbenchError(head) from exc
        echo(f"url: {served.url}")
        echo(f"model: {served.model}")
        echo(json.dumps(served.identity, indent=2))
        if o.detach:
            echo(f"detached; recorded in {served.state_path}; stop with `ablbench serve stop {server.name}`",
                       err=True)
            return
        echo("serving; Ctrl-C stops it", err=True)
        while True:
            time.sleep(1.0)
            status = server.exit_status()
            if status is not None:
                echo(server.logs_tail(40), err=True)
                log = getattr(server, "log_path", None)
                raise AblbenchError(f"{backend} server '{server.name}' {status}" + (f"; its log: {log}" if log else ""))
    except KeyboardInterrupt:
        echo("stopping...", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not o.detach:
            server.stop()
    echo(f"stopped {server.name}", err=True)


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
        echo(f"{name}: {'stopped' if stop_server(name) else 'was not running'}")
    if all_:
        for name in remove_leftover_containers():
            echo(f"{name}: removed (leftover container)")


def _list() -> None:
    from runners.servers.detached import detached_alive

    states = read_states()
    if not states:
        echo("no detached servers", err=True)
        return
    for name, record in states.items():
        alive = detached_alive(record.get("detach", {}))
        echo(f"{name}\t{record.get('backend')}\t{record.get('base_url')}\t"
                   f"{'running' if alive else 'dead'}\t{record.get('model_dir')}")


def register(app: App) -> None:
    """Add the ``serve`` verb."""
    app.command(serve_command, name="serve")
