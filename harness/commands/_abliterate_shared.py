"""What every ``ablbench abliterate`` verb module shares: the error wrapper and the common options.

Rules, in order:
1. Each verb is wrapped by :func:`cli_errors`: the [abliterate] extra is checked, library warnings
   go to a log file, and a library error becomes ``error: ...`` and exit 1.
2. An option used by more than one verb module is declared here once.
3. This module imports no other ``abliterate`` verb module (they import it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer

from ablbench.errors import AblbenchError
from harness.errors import fail

DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1 ...")
DTYPE = typer.Option("auto", "--dtype", help="auto (fp32 on CPU, stored dtype on GPU), float32, bfloat16 ...")
BATCH = typer.Option(8, "--batch-size", help="Prompts per forward pass (memory is bounded by this).")
LAYERS_PATH = typer.Option(None, "--layers-path", help="Dotted path of the decoder layers for an unknown arch.")
JUDGE = typer.Option(None, "--judge", metavar="URL MODEL",
                     help="Also judge refusals with an LLM behind an OpenAI-compatible URL (pinned prompt).")


def cli_errors(fn: Callable) -> Callable:
    """Check the [abliterate] extra, then turn library errors into ``error: ...`` + exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from harness.extras import require

        verb = fn.__name__.removesuffix("_cmd")
        try:
            require("abliterate", f"abliterate {verb}")
            from ablbench.paths import cache_dir
            from abliterate.progress import warnings_to_file

            with warnings_to_file(cache_dir() / "logs" / f"abliterate-{verb}.log"):
                return fn(*args, **kwargs)
        except AblbenchError as exc:  # AbliterationError included
            raise fail(str(exc)) from exc

    return wrapper
