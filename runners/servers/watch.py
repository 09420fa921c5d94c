"""Which local model servers ablbench started, and how each one ended: one small record per port.

Rules, in order:

1. A local server process (``LocalProcessServer``: llama.cpp, transformers) writes
   ``<cache>/servers/ports/<port>.json`` when it starts: pid, its start time, backend, name,
   URL and log path (``record_start``).
2. While the process that started it lives, a watcher thread notices the server's end and
   writes how it ended (``was killed by SIGSEGV``, ``exited with code 1``) into the record
   (``record_exit``); a deliberate stop removes the record instead (``forget``).
3. ``death_line(base_url)`` is what the model client asks on a connection error: None while the
   recorded server runs (or when no record names that port), else one line naming the server,
   how it ended (or that its pid is gone, when nobody was left to see the end: a detached
   server) and its log, with the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ablbench.paths import cache_dir
from ablbench.results import write_json_atomic

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: half-seconds ``death_line`` waits for a watcher to record the end of a server found dead
WATCH_WAITS = 3


def record_path(port: int) -> Path:
    """The record of the server on ``port``."""
    return cache_dir() / "servers" / "ports" / f"{int(port)}.json"


def record_start(port: int, facts: dict[str, Any]) -> None:
    """Rule 1: note a started server (``facts``: pid, start_ticks, backend, name, base_url, log)."""
    with contextlib.suppress(OSError):  # a read-only cache must not stop a server from starting
        write_json_atomic(record_path(port), {**facts, "started_at": time.time(), "exit": None})


def record_exit(port: int, pid: int | None, status: str) -> None:
    """Rule 2: note how the server on ``port`` (started as ``pid``) ended."""
    record = read_record(port)
    if record is None or record.get("pid") != pid:
        return
    record.update(exit=status, ended_at=time.time())
    with contextlib.suppress(OSError):
        write_json_atomic(record_path(port), record)


def forget(port: int, pid: int | None) -> None:
    """Rule 2: a deliberate stop: the record of ``pid`` on ``port`` goes."""
    record = read_record(port)
    if record is not None and record.get("pid") == pid:
        record_path(port).unlink(missing_ok=True)


def read_record(port: int) -> dict[str, Any] | None:
    """The record of ``port``, or None."""
    try:
        data = json.loads(record_path(port).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def death_line(base_url: str) -> str | None:
    """Rule 3: one line saying that the server recorded for ``base_url`` has died, else None."""
    parts = urlsplit(base_url)
    if parts.hostname not in LOCAL_HOSTS or parts.port is None:
        return None
    record = read_record(parts.port)
    if record is None:
        return None
    how = record.get("exit")
    if not how:
        if _alive(record):
            return None
        for _ in range(WATCH_WAITS):  # the watcher polls: give it time to write how the server ended
            time.sleep(0.5)
            how = (read_record(parts.port) or {}).get("exit")
            if how:
                break
        else:
            how = "is gone (its exit status was not seen: the process that started it had ended)"
    who = f"the {record.get('backend', 'model')} server '{record.get('name', '?')}' at {base_url} (pid {record.get('pid')})"
    log = record.get("log") or "not kept"
    return f"{who} {how}; its log: {log}; restart it (`ablbench serve`), then continue the run with --resume"


def _alive(record: dict[str, Any]) -> bool:
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    from runners.servers.process import process_start_ticks

    try:  # a zombie (killed, not yet reaped) is dead
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        return False
    expected = record.get("start_ticks")
    return expected is None or process_start_ticks(pid) == expected
