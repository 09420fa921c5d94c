"""The abliteration package's user-facing error (abliterate imports nothing from harness).

It derives from :class:`ablbench.errors.AblbenchError`, the one error root: a caller that
catches ``AblbenchError`` catches every error a user can act on, from any layer.
"""

from __future__ import annotations

from ablbench.errors import AblbenchError


class AbliterationError(AblbenchError):
    """Bad input or an unsupported model; the message names the problem and the fix."""
