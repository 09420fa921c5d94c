"""What both bake writers (safetensors: bake.run, GGUF: bake.gguf.writer) share.

Rules, in order:
1. Options are vetted the same way for both formats (components, per-component profiles).
2. The source is identified the same way (HF cache origin and blob sha256, the direction's sha256).
3. Both write their report to ``REPORT_NAME`` and show the same byte progress bar.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from abliterate.bake.errors import BakeError
from abliterate.bake.profile import COMPONENTS, FLAT, StrengthProfile, coerce_profile

REPORT_NAME = "abliteration.json"


def resolve_profiles(profile: dict) -> dict[str, StrengthProfile]:
    """One StrengthProfile per component (flat where none is given); unknown keys are an error."""
    unknown = set(profile) - set(COMPONENTS)
    if unknown:
        raise BakeError(f"unknown bake option(s) {sorted(unknown)}; profiles are keyed by {', '.join(COMPONENTS)}")
    return {c: coerce_profile(c, profile[c]) if c in profile else FLAT for c in COMPONENTS}


def check_components(components) -> tuple[str, ...]:
    """The requested components, deduplicated; unknown or none is an error."""
    comps = tuple(dict.fromkeys(components))
    bad = [c for c in comps if c not in COMPONENTS]
    if bad or not comps:
        raise BakeError(f"unknown component(s) {bad or '(none given)'}; choose from {','.join(COMPONENTS)}")
    return comps


def hf_blob_sha256(path: Path) -> str | None:
    """The sha256 of a file in a Hugging Face cache snapshot, from its blob's name (free to read).

    Snapshot files are symlinks to ``blobs/<sha256>`` for LFS files (every weight shard).
    """
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{64}", target.name):
        return target.name
    return None


def hf_origin(model: Path) -> dict | None:
    """Repo id and revision when ``model`` is a Hugging Face cache snapshot folder."""
    m = model.resolve()
    if m.parent.name == "snapshots" and m.parent.parent.name.startswith("models--"):
        return {"repo_id": m.parent.parent.name[len("models--"):].replace("--", "/", 1), "revision": m.name}
    return None


def sha_of_vector(v: torch.Tensor) -> str:
    """sha256 of a vector's fp64 bytes (identifies the unit direction actually used)."""
    return hashlib.sha256(v.to(torch.float64).contiguous().numpy().tobytes()).hexdigest()


class ByteProgress:
    """A rich byte progress bar (or nothing) exposing a tick(n_bytes) callable."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self._p = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

        self._p = Progress("[bold]bake", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                           TimeRemainingColumn(), transient=True)
        self._p.__enter__()
        task = self._p.add_task("bake", total=self.total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)
