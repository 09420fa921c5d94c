"""One writer per results folder: an exclusive lock on ``OUT/.lock`` for the whole run.

Rules, in order:

1. The lock is a ``filelock.FileLock`` (``flock`` on Linux) on ``OUT/.lock``, taken without
   waiting: a second writer (another process, or another scheduler in this one) fails at once.
2. Right after taking it, the holder writes its pid, command line and start time to
   ``OUT/.lock.owner`` (atomically); the refused writer's one-line error quotes them.
3. The kernel drops the lock when the holder dies, however it dies; the next holder then
   overwrites the stale ``.lock.owner``. Neither file is ever deleted (deleting a lock file
   another process has open would let two holders in).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from types import TracebackType

import filelock

from ablbench.errors import AblbenchError
from ablbench.results import write_json_atomic

LOCK_FILE = ".lock"
OWNER_FILE = ".lock.owner"


class RunFolderLocked(AblbenchError):
    """Another process is writing the same results folder."""


def read_owner(out_dir: Path) -> dict:
    """What ``OUT/.lock.owner`` says about the holder ({} when absent or unreadable)."""
    try:
        data = json.loads((out_dir / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunFolderLock:
    """``with RunFolderLock(out_dir):`` holds the folder's lock (see the module doc)."""

    def __init__(self, out_dir: Path, command: list[str] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.command = list(command if command is not None else sys.argv)
        self._lock = filelock.FileLock(str(self.out_dir / LOCK_FILE), timeout=0)

    def __enter__(self) -> RunFolderLock:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            owner = read_owner(self.out_dir)
            who = (
                f"pid {owner.get('pid', '?')}: {shlex.join(owner['command'])}"
                if owner.get("command")
                else (f"pid {owner.get('pid', 'unknown')}")
            )
            raise RunFolderLocked(
                f"{self.out_dir} is being written by another ablbench run ({who}, since {owner.get('since', '?')}); "
                "wait for it to end or choose another --out"
            ) from None
        from datetime import UTC, datetime

        write_json_atomic(
            self.out_dir / OWNER_FILE,
            {"pid": os.getpid(), "command": self.command, "since": datetime.now(UTC).isoformat(timespec="seconds")},
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
