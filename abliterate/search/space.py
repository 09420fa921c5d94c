"""The search space of ``abliterate search``: heretic's parameters plus the direction variant.

Per trial (L = number of decoder layers, last = L - 1):

1. ``variant``: which direction stack, "diff" (mean difference) or "projected" (the comply
   mean's component removed);
2. ``direction_index`` in [0.4 last, 0.9 last]: a fractional row of that stack; the direction
   is the renormalized linear blend of the two neighbouring layers' directions;
3. per component, attention output ("attn") and MLP down projection ("mlp"), a piecewise-linear
   layer kernel: ``max_weight`` (attn in [0.8, 1.5]; mlp in [-0.25, 1.5] clipped at 0, so the
   MLP can be left alone), ``max_weight_position`` in [0.6 last, last], ``min_weight`` as a
   fraction [0, 1] of max_weight, ``min_weight_distance`` in [1, max(0.6 last, 1)].
   The kernel is :class:`StrengthProfile` (peak, pos, edge, width): strength falls linearly
   from max_weight at the position to min_weight at the distance, 0 beyond. The "mlp" kernel
   also drives MoE experts.
These are heretic 1.x's ranges (its per-layer "direction scope" is left out: the bake removes
one direction).
"""

from __future__ import annotations

from dataclasses import dataclass

from abliterate.bake.profile import StrengthProfile

VARIANT_CHOICES = ("diff", "projected")
KERNEL_COMPONENTS = ("attn", "mlp")
#: bake components the search edits; "experts" follows the "mlp" kernel
SEARCH_COMPONENTS = ("attn", "mlp", "experts")


@dataclass(frozen=True)
class TrialParams:
    """One point of the search space, resolved into what the hooks and the bake need."""

    variant: str
    direction_index: float
    kernels: dict[str, StrengthProfile]

    def profiles(self) -> dict[str, StrengthProfile]:
        """Per bake component: attn, mlp and experts (= the mlp kernel)."""
        return {"attn": self.kernels["attn"], "mlp": self.kernels["mlp"], "experts": self.kernels["mlp"]}


def suggest(trial, n_layers: int) -> TrialParams:
    """Ask an Optuna trial for every parameter (names are stable: they key the stored study)."""
    last = max(n_layers - 1, 1)
    variant = trial.suggest_categorical("variant", list(VARIANT_CHOICES))
    index = trial.suggest_float("direction_index", 0.4 * last, 0.9 * last)
    kernels = {}
    for comp in KERNEL_COMPONENTS:
        low = -0.25 if comp == "mlp" else 0.8
        peak = max(0.0, trial.suggest_float(f"{comp}.max_weight", low, 1.5))
        pos = trial.suggest_float(f"{comp}.max_weight_position", 0.6 * last, 1.0 * last)
        frac = trial.suggest_float(f"{comp}.min_weight", 0.0, 1.0)
        width = trial.suggest_float(f"{comp}.min_weight_distance", 1.0, max(0.6 * last, 1.0))
        kernels[comp] = StrengthProfile(peak=peak, pos=pos, edge=frac * peak, width=width)
    return TrialParams(variant=variant, direction_index=index, kernels=kernels)


def from_params(params: dict, n_layers: int) -> TrialParams:
    """The same resolution from a stored trial's ``params`` dict (for the chosen trial)."""
    from optuna.trial import FixedTrial

    return suggest(FixedTrial(params), n_layers)
