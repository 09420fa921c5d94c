"""The fingerprint of an experiment, and how two fingerprints differ.

Rules, in order:

1. A fingerprint is a nested dict of JSON values; it is compared flattened to dotted keys
   (``agent.max_turns``, ``tasks.hello-world``), so a difference names the exact setting.
2. A key present on one side only is a difference too (a task added or removed).
3. A task's content is the sha256 over its files' relative paths and bytes, sorted by path
   (``tree_hash``); caches (``__pycache__``, ``.git``) are left out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SKIP_DIRS = frozenset({"__pycache__", ".git", ".pytest_cache"})
#: stands for "this key is not in that fingerprint"
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<absent>"})()


def tree_hash(*roots: Path) -> str:
    """``sha256:<hex>`` over every regular file below ``roots`` (path and bytes)."""
    digest = hashlib.sha256()
    for root in roots:
        files = (
            [root]
            if root.is_file()
            else sorted(
                p for p in root.rglob("*") if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(root).parts)
            )
        )
        for path in files:
            rel = path.name if path == root else path.relative_to(root).as_posix()
            digest.update(rel.encode() + b"\0")
            with path.open("rb") as fh:
                digest.update(hashlib.file_digest(fh, "sha256").digest())
    return "sha256:" + digest.hexdigest()


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def digest(fingerprint: dict) -> str:
    """One short hash of a whole fingerprint (for run.json and log lines)."""
    return hashlib.sha256(json.dumps(flatten(fingerprint), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _canonical(value: Any) -> str:
    # JSON round trips turn tuples into lists: compare canonical JSON text
    return json.dumps(value, sort_keys=True, default=str)


def differences(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` for every flattened key that differs (``MISSING`` if absent), sorted."""
    a, b = flatten(old), flatten(new)
    keys = sorted(a.keys() | b.keys())
    return [
        (k, a.get(k, MISSING), b.get(k, MISSING))
        for k in keys
        if k not in a or k not in b or _canonical(a[k]) != _canonical(b[k])
    ]


def describe(diffs: list[tuple[str, Any, Any]], limit: int = 8) -> str:
    """``agent.max_turns (20 -> 5), tasks.x (absent -> sha256:1a2b…)``, at most ``limit`` entries."""

    def show(v: Any) -> str:
        if v is MISSING:
            return "absent"
        text = v if isinstance(v, str) else _canonical(v)
        return text[:19] + "…" if len(text) > 20 else text

    parts = [f"{k} ({show(a)} -> {show(b)})" for k, a, b in diffs[:limit]]
    if len(diffs) > limit:
        parts.append(f"and {len(diffs) - limit} more")
    return ", ".join(parts)
