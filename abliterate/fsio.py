"""The abliteration steps' file helpers: the atomic writers of :mod:`ablbench.atomic` (JSON keeps
non-ASCII characters), JSON lines, and a file's sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jsonlines

from ablbench.atomic import atomic_path as atomic_path  # re-exported for the steps
from ablbench.atomic import write_json_atomic, write_text_atomic
from abliterate.errors import AbliterationError


def write_text(path: Path, text: str) -> None:
    """Write text atomically."""
    write_text_atomic(path, text)


def write_json(path: Path, obj) -> None:
    """Write pretty JSON atomically (non-ASCII characters kept as they are)."""
    write_json_atomic(path, obj, ensure_ascii=False)


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Write JSON lines atomically."""
    with atomic_path(path) as tmp, jsonlines.open(tmp, mode="w") as writer:
        writer.write_all(records)


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON-lines file; a missing or broken file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise AbliterationError(f"{path} not found: run the step that writes it first")
    try:
        with jsonlines.open(path) as reader:
            return list(reader)
    except jsonlines.InvalidLineError as exc:
        raise AbliterationError(f"{path} is not valid JSON lines ({exc}): rewrite it") from exc


def file_sha256(path: Path, limit: int | None = None) -> str:
    """sha256 of a file (of its first ``limit`` bytes when given)."""
    h = hashlib.sha256()
    remaining = limit
    with Path(path).open("rb") as fh:
        while True:
            size = 1 << 20 if remaining is None else min(1 << 20, remaining)
            if size == 0:
                break
            chunk = fh.read(size)
            if not chunk:
                break
            h.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return h.hexdigest()
