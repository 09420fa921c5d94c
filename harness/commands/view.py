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

    pass


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
    from harness.analysis.live import HOST, open_live_report

    try:
        report, server = open_live_report(runs, options)
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


def register(app: App) -> None:
    """Add the ``view`` verb."""
    app.command(view_command, name="view")
