"""Copies that must stay copies: each task is self-contained, so its helpers are duplicated.

Bundled tasks (and any task folder added under ``tasks/`` later, e.g. ``tasks/train/``) carry
their own ``tests/checklib.py``; a task whose verifier rebuilds its environment's data keeps a
copy of the builder in ``tests/``. Edit one copy, and this test names the others to update.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from ablbench.paths import REPO_ROOT

TASKS = REPO_ROOT / "tasks"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_checklib_copy_is_identical() -> None:
    copies = sorted(TASKS.rglob("checklib.py"))
    assert len(copies) >= 12, f"expected a checklib.py in each bundled task, found {len(copies)}"
    by_digest: dict[str, list[str]] = defaultdict(list)
    for path in copies:
        by_digest[_digest(path)].append(str(path.relative_to(REPO_ROOT)))
    assert len(by_digest) == 1, "checklib.py copies differ; make them identical:\n" + "\n".join(
        f"{digest[:12]}: {', '.join(paths)}" for digest, paths in by_digest.items())


def test_a_tasks_environment_and_tests_share_identical_helpers() -> None:
    pairs = 0
    for env in TASKS.rglob("environment"):
        tests = env.parent / "tests"
        for src in env.glob("*.py"):
            copy = tests / src.name
            if copy.is_file():
                pairs += 1
                assert _digest(src) == _digest(copy), f"{copy.relative_to(REPO_ROOT)} differs from {src.relative_to(REPO_ROOT)}"
    assert pairs >= 1  # sqlite-top-customers' make_db.py
