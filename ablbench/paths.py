"""Where ablbench keeps its caches, and the names of its local images."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: the source checkout (meaningful only when running from one: git sha, scripts)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _bundled_tasks() -> Path:
    """The bundled tasks: package data in an installed wheel, ``tasks/`` in a checkout."""
    checkout = REPO_ROOT / "tasks"
    if (REPO_ROOT / "setup.py").is_file() and (checkout / "__init__.py").is_file():
        return checkout  # this checkout's own tasks, even when another checkout is installed editable
    try:
        found = Path(str(resources.files("ablbench.bundled_tasks")))
    except ModuleNotFoundError:
        found = REPO_ROOT / "tasks"
    return found if found.is_dir() else REPO_ROOT / "tasks"


BUNDLED_TASKS = _bundled_tasks()
#: the bundled TRAINING tasks (SFT data): a sub-folder without task.toml, so loading
#: ``BUNDLED_TASKS`` never picks them; ``--tasks`` must point here explicitly
TRAIN_TASKS = BUNDLED_TASKS / "train"
#: default results root, relative: a run writes to ./results/<run> in the current directory
RESULTS_ROOT = Path("results")

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
