"""``ablbench view``: serve the HTML report of results folders on 127.0.0.1, refreshed as trials finish."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ablbench.errors import AblbenchError
from harness.errors import fail

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from harness.analysis.live import LiveReport, ViewOptions


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the server like Ctrl-C: socket closed, figures folder removed


def view_command(
    runs: list[Path] = typer.Argument(..., help="Results folders (they may still be being written), "
                                      "master_summary.csv files, harbor job folders or tb run folders.",
                                      show_default=False),
    names: str | None = typer.Option(None, "--names", help="Comma-separated run names, one per RUN."),
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0 = any free port)."),
    solved: str = typer.Option("mean", "--solved", help="With several attempts per task: mean (the headline test "
                               "uses every attempt; 0/1 views use attempt 1) | first | any | majority."),
    poll: float = typer.Option(3.0, "--poll", help="Seconds between the page's checks for finished trials."),
) -> None:
    """Serve the same page as `analyze --html` on 127.0.0.1; it updates itself as trials finish (Ctrl-C stops)."""
    from harness.analysis.live import HOST, ViewOptions

    options = ViewOptions(names=names, port=port, solved=solved, poll=poll)
    try:
        report, server = _prepare(runs, options)
    except AblbenchError as exc:
        raise fail(str(exc)) from exc
    url = f"http://{HOST}:{server.server_address[1]}/"
    typer.echo(f"serving {url}  (Ctrl-C to stop)")
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        server.server_close()
        report.close()


def _prepare(runs: list[Path], o: ViewOptions) -> tuple[LiveReport, ThreadingHTTPServer]:
    """The checked runs and the (not yet started) server of ``o``."""
    from harness.analysis import SOLVED_RULES
    from harness.analysis.live import LiveReport, make_server
    from harness.analysis.options import run_labels

    labels = run_labels(o.names, len(runs))
    if o.solved not in SOLVED_RULES:
        raise AblbenchError(f"unknown --solved rule {o.solved!r}; use one of {', '.join(SOLVED_RULES)}")
    if o.poll <= 0:
        raise AblbenchError(f"--poll {o.poll} must be above 0 seconds")
    missing = [str(p) for p in runs if not p.exists()]
    if missing:
        raise AblbenchError(f"{', '.join(missing)}: no such file or folder; pass results folders written by "
                            "`ablbench run` (they may still be running)")
    report = LiveReport(runs, labels, o)
    report.state()  # fail now, not in the browser, on a folder that cannot be read
    return report, make_server(report, o.port)


def register(app: typer.Typer) -> None:
    """Add the ``view`` verb."""
    app.command("view")(view_command)
