"""Where ablbench keeps its caches, and the names of its local images."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_TASKS = REPO_ROOT / "tasks"
RESULTS_ROOT = REPO_ROOT / "results"

#: Debian bookworm imported from debootstrap (no registry needed).
DEBIAN_IMAGE = os.environ.get("ABLBENCH_DEBIAN_IMAGE", "ablbench/debian:bookworm")
#: The derived image with tmux, git, python3, openssl...: bundled tasks say FROM this.
BASE_IMAGE = os.environ.get("ABLBENCH_BASE_IMAGE", "ablbench/base:bookworm")


def cache_dir() -> Path:
    """The ablbench cache root (``$ABLBENCH_HOME`` or ``~/.cache/ablbench``)."""
    return Path(os.environ.get("ABLBENCH_HOME", Path.home() / ".cache" / "ablbench"))


def embedded_model_dir() -> Path:
    """Default folder of the materialized bundled SmolLM2-135M-Instruct."""
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"
