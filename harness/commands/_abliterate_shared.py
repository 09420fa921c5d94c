"""What every ``ablbench abliterate`` verb module shares: the group and the error wrapper.

Rules, in order:
1. Each verb runs inside :func:`cli_errors`: the [abliterate] extra is checked, library warnings
   go to a log file, and a library error becomes ``error: ...`` and exit 1.
2. The options shared by several verbs are declared once, in :mod:`abliterate.options`.
3. This module imports no other ``abliterate`` verb module (they import it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cyclopts import App

from ablbench.errors import AblbenchError
from harness.errors import fail

abl_app = App(name="abliterate", help="Find, choose, bake and evaluate a refusal direction.",
              help_flags=["--help"], version_flags=[])


@contextmanager
def cli_errors(verb: str) -> Iterator[None]:
    """Check the [abliterate] extra, then turn library errors into ``error: ...`` + exit 1."""
    from harness.extras import require

    try:
        require("abliterate", f"abliterate {verb}")
        from ablbench.paths import cache_dir
        from abliterate.progress import warnings_to_file

        with warnings_to_file(cache_dir() / "logs" / f"abliterate-{verb}.log"):
            yield
    except AblbenchError as exc:  # AbliterationError included
        raise fail(str(exc)) from exc
