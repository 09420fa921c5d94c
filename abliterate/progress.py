"""A calm terminal: rich progress bars on stderr, library warnings in a log file.

1. ``progress_bar`` is a rich Progress, or a no-op stand-in when disabled.
2. ``warnings_to_file`` sends Python warnings and transformers' own log lines to a file for the
   duration of a step, and turns transformers' own tqdm bars ("Loading weights") off, so the
   screen shows our progress and results, never library tracebacks or bars.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


class _NullProgress:
    def add_task(self, *_a, **_k) -> int:
        return 0

    def advance(self, *_a, **_k) -> None:
        pass

    def update(self, *_a, **_k) -> None:
        pass


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | _NullProgress]:
    """A rich Progress (on stderr) or a no-op stand-in."""
    if not enabled:
        yield _NullProgress()
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    ) as prog:
        yield prog


@contextlib.contextmanager
def warnings_to_file(path: Path) -> Iterator[Path]:
    """Within the block, Python warnings and the ``transformers`` logger write to ``path`` only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bars = _library_bars()  # before saving handlers: importing transformers installs its own handler
    library_logger = logging.getLogger("transformers")
    saved = (library_logger.handlers[:], library_logger.propagate)
    with path.open("a", encoding="utf-8") as fh, warnings.catch_warnings():
        warnings.simplefilter("default")

        def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
            fh.write(warnings.formatwarning(message, category, filename, lineno, line))
            fh.flush()

        warnings.showwarning = show
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        library_logger.handlers, library_logger.propagate = [handler], False
        bars_were_on = bars is not None and bars.is_progress_bar_enabled()
        if bars_were_on:
            bars.disable_progress_bar()
        try:
            yield path
        finally:
            library_logger.handlers, library_logger.propagate = saved
            if bars_were_on:
                bars.enable_progress_bar()


def _library_bars():  # noqa: ANN202
    """transformers' logging module (it owns the bars), or None where transformers is not installed."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return None
    return transformers_logging
