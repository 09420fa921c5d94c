"""File sha256s remembered between bakes, so a source baked again (a search, a control, a rerun) is hashed once.

Rules, in order:
1. An entry is used only when the file's resolved path, size, mtime_ns and inode all still match
   (the same identity the pipeline's resume uses); anything else is a miss.
2. Entries are added after a bake has hashed a file (its source and its outputs). The cache file
   is ``<ablbench cache>/sha256-cache.json``, rewritten atomically under a lock; a missing or
   unreadable cache is an empty one, never an error.
3. ``ABLBENCH_HASH_CACHE=0`` turns it off: every bake then hashes its source.
4. At most :data:`MAX_ENTRIES` entries are kept (the oldest are dropped).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from ablbench.paths import cache_dir
from abliterate.fsio import write_json

MAX_ENTRIES = 512


def _enabled() -> bool:
    return os.environ.get("ABLBENCH_HASH_CACHE", "1").lower() not in {"0", "false", "no", "off"}


def _cache_file() -> Path:
    return cache_dir() / "sha256-cache.json"


def _identity(path: Path) -> tuple[str, dict] | None:
    try:
        real = Path(path).resolve()
        st = real.stat()
    except OSError:
        return None
    return str(real), {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def _load() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_sha256(path: Path) -> str | None:
    """The remembered sha256 of ``path`` if the file is unchanged since it was hashed, else None."""
    if not _enabled():
        return None
    ident = _identity(path)
    if ident is None:
        return None
    entry = _load().get(ident[0])
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in ident[1].items()):
        sha = entry.get("sha256")
        return sha if isinstance(sha, str) and len(sha) == 64 else None
    return None


def remember_sha256(hashes: dict[Path, str]) -> None:
    """Record freshly computed sha256s (best effort: a cache that cannot be written is skipped)."""
    if not _enabled() or not hashes:
        return
    with contextlib.suppress(OSError):
        cache = _cache_file()
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = _load()
            for path, sha in hashes.items():
                ident = _identity(path)
                if ident is not None:
                    data.pop(ident[0], None)  # re-insert: the newest entries come last
                    data[ident[0]] = {**ident[1], "sha256": sha}
            if len(data) > MAX_ENTRIES:
                data = dict(list(data.items())[-MAX_ENTRIES:])
            write_json(cache, data)
