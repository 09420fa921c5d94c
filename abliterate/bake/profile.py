"""Per-layer strength profiles, one per component (heretic-style).

A profile has a peak weight at a (fractional) peak position; the weight falls linearly to the
edge weight at ``width`` layers away from the peak and is 0 beyond. The default profile is
flat: weight 1.0 at every layer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from abliterate.bake.errors import BakeError
from abliterate.options import COMPONENTS  # the flag default lives with the options


@dataclass(frozen=True)
class StrengthProfile:
    """Strength over layers: ``peak`` at layer ``pos``, falling linearly to ``edge`` at ``width``."""

    peak: float = 1.0
    pos: float = 0.0
    edge: float = 1.0
    width: float = math.inf

    def at(self, layer: int | None) -> float:
        """Strength at decoder layer ``layer`` (None: a layer-less tensor such as the embedding)."""
        if layer is None:
            return self.peak
        dist = abs(layer - self.pos)
        if dist > self.width:
            return 0.0
        if math.isinf(self.width) or self.width == 0:
            return self.peak
        return self.peak + (dist / self.width) * (self.edge - self.peak)

    def as_dict(self) -> dict:
        """JSON-friendly form (an infinite width is written as null)."""
        d = asdict(self)
        d["width"] = None if math.isinf(self.width) else self.width
        return d


FLAT = StrengthProfile()

_KEYS = {"peak": "peak", "pos": "pos", "position": "pos", "edge": "edge", "width": "width",
         "half_width": "width", "halfwidth": "width"}


def coerce_profile(component: str, value: object) -> StrengthProfile:
    """A profile from a StrengthProfile, a number (flat weight) or a dict of its fields."""
    if component not in COMPONENTS:
        raise BakeError(f"unknown profile component {component!r}; use one of {', '.join(COMPONENTS)}")
    if isinstance(value, StrengthProfile):
        prof = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        prof = StrengthProfile(peak=float(value), edge=float(value))
    elif isinstance(value, dict):
        fields: dict[str, float] = {}
        for k, v in value.items():
            if k not in _KEYS:
                raise BakeError(f"unknown profile field {k!r} for {component}; use peak, pos, edge, width")
            fields[_KEYS[k]] = math.inf if v is None else float(v)
        if "edge" not in fields:
            fields["edge"] = fields.get("peak", 1.0)
        prof = StrengthProfile(**fields)
    else:
        raise BakeError(f"profile for {component} must be a number, a dict or a StrengthProfile, got {value!r}")
    if prof.width < 0 or not all(math.isfinite(x) for x in (prof.peak, prof.pos, prof.edge)):
        raise BakeError(f"profile for {component} has a negative width or a non-finite value: {prof}")
    return prof


def parse_profile_specs(specs: list[str]) -> dict[str, StrengthProfile]:
    """Parse CLI specs ``COMPONENT:peak=1,pos=14,edge=0.2,width=8`` or ``COMPONENT=0.5``."""
    out: dict[str, StrengthProfile] = {}
    for spec in specs:
        spec = spec.strip()
        try:
            if ":" in spec:
                comp, body = spec.split(":", 1)
                fields = {}
                for part in body.split(","):
                    k, v = part.split("=", 1)
                    fields[k.strip()] = float(v)
                out[comp.strip()] = coerce_profile(comp.strip(), fields)
            else:
                comp, v = spec.split("=", 1)
                out[comp.strip()] = coerce_profile(comp.strip(), float(v))
        except ValueError as exc:
            if isinstance(exc, BakeError):
                raise
            raise BakeError(
                f"cannot parse --profile {spec!r}; write COMPONENT:peak=1,pos=14,edge=0.2,width=8 or COMPONENT=0.5"
            ) from exc
    return out
