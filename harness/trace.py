"""``trace.jsonl``: one JSON line per agent turn, written (and flushed) as the turn ends."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jsonlines


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, unknown objects their str()."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


class TraceWriter:
    """Appends turn records to ``<logs_dir>/trace.jsonl`` and flushes each one."""

    def __init__(self, logs_dir: Path, name: str = "trace.jsonl") -> None:
        self.path = Path(logs_dir) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        self._writer = jsonlines.Writer(self._fh, flush=True, compact=True)

    def write(self, record: dict[str, Any]) -> None:
        """Write one record (a wall-clock ``t`` is added)."""
        self._writer.write({"t": round(time.time(), 3), **_clean(record)})

    def close(self) -> None:
        """Close the file."""
        self._writer.close()
        self._fh.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(path: Path) -> list[dict[str, Any]]:
    """All records of a trace file."""
    with jsonlines.open(path) as reader:
        return list(reader)
