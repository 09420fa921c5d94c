"""Atomic file writing, for every layer: a temp file in the same folder, then ``os.replace``.

Rules, in order:
1. A reader never sees a half-written file: the content goes to a temp file next to the
   target (same file system), which replaces the target only once it is complete.
2. A failure (or Ctrl-C) removes the temp file and leaves the old target as it was.
3. Files get the usual ``0666 & ~umask`` mode, not mkstemp's 0600 (servers in containers read them).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path next to ``path`` (same suffix); on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def write_json_atomic(path: Path | str, data: Any, *, ensure_ascii: bool = True) -> None:
    """Write ``data`` as indented JSON (``default=str``) plus a newline, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=ensure_ascii, default=str) + "\n")
