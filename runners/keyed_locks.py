"""One thread lock per key (an image tag, ``pull:<ref>``), created on first use.

Rules, in order:
1. The same key always gives the same lock; different keys never block each other.
2. Creating a key's lock is itself guarded, so two threads asking at once get one lock.
"""

from __future__ import annotations

import threading


class KeyedLocks:
    """``locks(key)`` -> the :class:`threading.Lock` of ``key``."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())
