"""The abliteration package's user-facing error (abliterate imports nothing from harness)."""

from __future__ import annotations


class AbliterationError(Exception):
    """Bad input or an unsupported model; the message names the problem and the fix."""
