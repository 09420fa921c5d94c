"""Atomic file writing (temp file in the same folder + ``os.replace``) and small readers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jsonlines

from abliterate.errors import AbliterationError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the file from servers in containers
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, obj) -> None:
    """Write pretty JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


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
