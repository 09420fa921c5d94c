"""The bake's user-facing error (``abliterate`` must not import ``harness``)."""

from __future__ import annotations

from abliterate.errors import AbliterationError


class BakeError(AbliterationError, ValueError):
    """Bad input to the bake; the one-line message names the problem and the fix."""
