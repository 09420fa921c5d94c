"""The SFT package's user-facing error (one line naming the problem and the fix)."""

from __future__ import annotations

from ablbench.errors import AblbenchError


class SftError(AblbenchError):
    """Bad training input or settings; the message names the problem and the fix."""
