"""The user-facing error every layer raises: one line naming the problem and the fix."""

from __future__ import annotations


class AblbenchError(Exception):
    """An error a user can act on; its message names the problem and the fix."""
