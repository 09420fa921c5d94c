"""Inference-time ablation that mirrors the bake exactly, component by component, layer by layer.

The bake replaces a writer ``W`` by ``W - a * u (u^T W)`` (and its bias likewise), so the
writer's output ``y`` becomes ``y - a * (u . y) u``. These hooks apply that map to the OUTPUT of
each writer module instead of its weights, which gives the same numbers without writing a
checkpoint (one search trial = one set of hooks):

1. embedding output: strength ``embed.at(None)``; when the LM head is tied to the embedding,
   its input is projected with the same strength (editing E also edits the unembedding);
2. attention writers (``self_attn.o_proj``, ``linear_attn.out_proj``) of layer l:
   ``attn.at(l)``;
3. the feed-forward block of layer l: a dense MLP's ``down_proj`` with ``mlp.at(l)``; a MoE
   block's whole output with ``experts.at(l)`` (routed and shared experts are all edited with
   one strength, and the block output is linear in their outputs);
4. post-norm ("sandwich") families project ``normalize(g * r)`` instead of r for writers
   followed by a post-norm, as the bake's post-norm correction does.
A strength of 0 installs no hook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from abliterate.bake.keys import POSTNORM_AFTER, POSTNORM_FAMILIES
from abliterate.bake.profile import COMPONENTS, FLAT, StrengthProfile, coerce_profile
from abliterate.errors import AbliterationError
from abliterate.model import LoadedModel

_ATTN_WRITERS = ("self_attn.o_proj", "linear_attn.out_proj")
_FFN_BLOCKS = ("mlp", "feed_forward", "block_sparse_moe")


def _sub(module, dotted: str):
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _is_moe(block) -> bool:
    return any(hasattr(block, a) for a in ("experts", "shared_expert", "shared_experts"))


def _projector(u, alpha: float):
    """A forward hook returning the output with ``alpha * (u . y) u`` removed (first item of tuples)."""

    def project(h):
        uu = u.to(device=h.device, dtype=h.dtype)
        return h - alpha * (h @ uu).unsqueeze(-1) * uu

    def hook(_module, _args, output):
        if isinstance(output, tuple | list):
            return (project(output[0]), *output[1:])
        return project(output)

    return hook, project


def _postnorm_dir(layer, norm_name: str, r, plus_one: bool):
    import torch

    norm = getattr(layer, norm_name, None)
    if norm is None or getattr(norm, "weight", None) is None:
        raise AbliterationError(f"post-norm family without {norm_name} in a decoder layer: cannot mirror the bake")
    g = norm.weight.detach().to(torch.float64)
    g = 1.0 + g if plus_one else g
    v = g * r.to(torch.float64)
    return (v / v.norm()).to(torch.float32)


@contextlib.contextmanager
def ablated_writers(lm: LoadedModel, direction, profiles: dict[str, StrengthProfile | float | dict] | None = None,
                    components=COMPONENTS, postnorm: bool = True) -> Iterator[None]:
    """Project ``direction`` out of every selected writer's output with the bake's strengths.

    ``profiles`` maps a component (embed, attn, mlp, experts) to a StrengthProfile, a number or a
    dict, as ``bake(**profile)`` takes them (missing: flat 1.0); ``components`` are those edited at all, as in ``bake(components=...)``.
    """
    import torch

    given = profiles or {}
    profiles = {c: coerce_profile(c, given[c]) if c in given else FLAT for c in COMPONENTS}
    r = torch.as_tensor(direction, dtype=torch.float32).flatten()
    r = r / r.norm()
    family = next((t for t in (lm.model_type, getattr(lm.model.config.get_text_config(), "model_type", ""))
                   if t in POSTNORM_FAMILIES), None)
    plus_one = POSTNORM_FAMILIES.get(family) if (postnorm and family) else None
    handles: list = []

    def add(module, comp: str, alpha: float, layer=None) -> None:
        if alpha == 0.0 or module is None:
            return
        u = r
        if plus_one is not None and layer is not None and comp in POSTNORM_AFTER:
            u = _postnorm_dir(layer, POSTNORM_AFTER[comp], r, plus_one)
        handles.append(module.register_forward_hook(_projector(u, alpha)[0]))

    try:
        if "embed" in components:
            alpha = profiles["embed"].at(None)
            emb = lm.model.get_input_embeddings()
            add(emb, "embed", alpha)
            head = lm.model.get_output_embeddings()
            if alpha and head is not None and head.weight is emb.weight:
                project = _projector(r, alpha)[1]
                handles.append(head.register_forward_pre_hook(lambda _m, args: (project(args[0]), *args[1:])))
        for k, layer in enumerate(lm.layers):
            if "attn" in components:
                for name in _ATTN_WRITERS:
                    add(_sub(layer, name), "attn", profiles["attn"].at(k), layer)
            block = next((getattr(layer, n) for n in _FFN_BLOCKS if getattr(layer, n, None) is not None), None)
            if block is None:
                continue
            if _is_moe(block):
                if "experts" in components:
                    add(block, "experts", profiles["experts"].at(k), layer)
            elif "mlp" in components:
                add(_sub(block, "down_proj"), "mlp", profiles["mlp"].at(k), layer)
        yield
    finally:
        for h in handles:
            h.remove()
