"""Load the direction to remove: a single vector or one row (or a blend) of a per-layer stack."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from abliterate.bake.errors import BakeError
from abliterate.fsio import file_sha256


@dataclass
class Direction:
    """A unit direction in fp64 plus where it came from."""

    vector: torch.Tensor  # (d,) float64, unit norm
    source: str
    sha256: str
    layer: float | None = None
    blend: list[dict] = field(default_factory=list)  # [{"row": i, "weight": w}, ...]
    raw_norm: float = 0.0


def _load_tensor(path: Path) -> torch.Tensor:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return torch.from_numpy(np.load(path, allow_pickle=False))
    if suffix in {".pt", ".pth"}:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            obj = _pick(tensors, path)
        if not isinstance(obj, torch.Tensor):
            raise BakeError(f"{path} holds no tensor; save the direction with torch.save(tensor, path)")
        return obj
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return _pick(load_file(str(path)), path)
    raise BakeError(f"direction file {path} must be .npy, .pt or .safetensors")


def _pick(tensors: dict[str, torch.Tensor], path: Path) -> torch.Tensor:
    for name in ("directions", "direction", "refusal_dir", "refusal_dirs"):
        if name in tensors:
            return tensors[name]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise BakeError(
        f"{path} holds tensors {sorted(tensors)}; expected one tensor or one named 'directions'/'direction'"
    )


def _unit(v: torch.Tensor, what: str) -> tuple[torch.Tensor, float]:
    v = v.to(torch.float64).flatten()
    if not torch.isfinite(v).all():
        raise BakeError(f"{what} contains NaN or inf; recompute the direction")
    n = float(v.norm())
    if n == 0.0:
        raise BakeError(f"{what} is the zero vector; recompute the direction")
    return v / n, n


def load_direction(direction: Path | str | torch.Tensor | np.ndarray, layer: float | None) -> Direction:
    """Resolve ``direction`` (+ ``layer`` for a per-layer stack) to a unit fp64 vector.

    A fractional ``layer`` blends rows floor(layer) and floor(layer)+1 linearly, then renormalizes.
    """
    if isinstance(direction, np.ndarray | torch.Tensor):
        t = torch.as_tensor(direction).detach().cpu()
        source = "<in-memory tensor>"
        sha = hashlib.sha256(t.to(torch.float64).contiguous().numpy().tobytes()).hexdigest()
    else:
        path = Path(direction)
        if not path.is_file():
            raise BakeError(f"direction file {path} not found; pass --direction with a .npy/.pt/.safetensors file")
        t = _load_tensor(path)
        source, sha = str(path.resolve()), file_sha256(path)
    if not (t.is_floating_point()):
        raise BakeError(f"direction {source} has dtype {t.dtype}; expected a float vector")
    if t.ndim == 1:
        vec, raw = _unit(t, f"direction {source}")
        return Direction(vec, source, sha, layer=layer, raw_norm=raw)
    if t.ndim != 2:
        raise BakeError(f"direction {source} has shape {tuple(t.shape)}; expected (d,) or a stack (n_layers, d)")
    n = t.shape[0]
    if layer is None:
        raise BakeError(
            f"direction {source} is a per-layer stack of {n} rows; pass --layer (0..{n - 1}, fractional blends)"
        )
    if not (math.isfinite(layer) and 0 <= layer <= n - 1):
        raise BakeError(f"--layer {layer} is outside the stack's rows 0..{n - 1}")
    lo = int(math.floor(layer))
    frac = float(layer - lo)
    if frac == 0.0:
        blend = [{"row": lo, "weight": 1.0}]
        mixed = t[lo].to(torch.float64)
    else:
        blend = [{"row": lo, "weight": 1.0 - frac}, {"row": lo + 1, "weight": frac}]
        mixed = (1.0 - frac) * t[lo].to(torch.float64) + frac * t[lo + 1].to(torch.float64)
    vec, raw = _unit(mixed, f"direction {source} at layer {layer}")
    return Direction(vec, source, sha, layer=layer, blend=blend, raw_norm=raw)
