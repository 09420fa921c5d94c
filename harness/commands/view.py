"""``ablbench view``: serve the HTML report of results folders on 127.0.0.1, refreshed as trials finish."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import App, Parameter

from ablbench.errors import AblbenchError
from harness.analysis_options import ViewOptions
from harness.errors import echo, fail

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from harness.analysis.live import LiveReport


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the server like Ctrl-C: socket closed, figures folder removed


def view_command(
    runs: Annotated[list[Path], Parameter(help="Results folders (they may still be being written), "
                                           "master_summary.csv files, harbor job folders or tb run folders.")],
    /,
    *,
    options: Annotated[ViewOptions, Parameter(name="*")] = ViewOptions(),
) -> None:
    """Serve the same page as `analyze --html` on 127.0.0.1; it updates itself as trials finish (Ctrl-C stops)."""
    from harness.analysis.live import HOST

    try:
        report, server = _prepare(runs, options)
    except AblbenchError as exc:
        raise fail(str(exc)) from exc
    url = f"http://{HOST}:{server.server_address[1]}/"
    echo(f"serving {url}  (Ctrl-C to stop)")
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        echo("stopped")
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


def register(app: App) -> None:
    """Add the ``view`` verb."""
    app.command(view_command, name="view")
