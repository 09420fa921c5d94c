"""Which checkpoint tensors write into the residual stream, and how they are laid out.

Classification works from key names, shapes, dtypes and the model type alone (no tensor data),
so the whole checkpoint is planned and vetted before a byte is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: fused 3-D experts stored [E, inter, hidden] (the out axis last); the layout comes from the model
#: type, never from the shape (gpt-oss has hidden == inter).
TRANSPOSED_FUSED = {"gpt_oss", "llama4", "llama4_text"}

#: sandwich-norm families: writer -> post-norm key, and whether the scale is 1 + weight.
POSTNORM_FAMILIES: dict[str, bool] = {
    "gemma2": True, "gemma3": True, "gemma3_text": True, "olmo2": False, "olmo3": False,
}
POSTNORM_AFTER = {"attn": "post_attention_layernorm", "mlp": "post_feedforward_layernorm",
                  "experts": "post_feedforward_layernorm"}

FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}

_PRE = r"(?P<pre>(?:model\.)?(?:language_model\.)?(?:model\.)?)"
_LAYER_RE = re.compile(_PRE + r"layers\.(?P<layer>\d+)\.(?P<rest>.+)$")
_EMBED_RE = re.compile(_PRE + r"embed_tokens\.weight$")
_FFN = r"(?:mlp|feed_forward|block_sparse_moe)"

#: (regex on the part after ``layers.N.``, component, layout, role)
#: layout "cols": write vectors are the columns of W[..., hidden, in]; "rows": rows of X[..., hidden].
_WRITERS: list[tuple[re.Pattern, str, str, str]] = [
    (re.compile(r"self_attn\.o_proj\.weight$"), "attn", "cols", "weight"),
    (re.compile(r"self_attn\.o_proj\.bias$"), "attn", "rows", "bias"),
    (re.compile(r"linear_attn\.out_proj\.weight$"), "attn", "cols", "weight"),
    (re.compile(r"linear_attn\.out_proj\.bias$"), "attn", "rows", "bias"),
    (re.compile(_FFN + r"\.down_proj\.weight$"), "mlp", "cols", "weight"),
    (re.compile(_FFN + r"\.down_proj\.bias$"), "mlp", "rows", "bias"),
    (re.compile(_FFN + r"\.experts\.\d+\.(?:down_proj|w2)\.weight$"), "experts", "cols", "weight"),
    (re.compile(_FFN + r"\.experts\.\d+\.(?:down_proj|w2)\.bias$"), "experts", "rows", "bias"),
    (re.compile(_FFN + r"\.shared_experts?\.down_proj\.weight$"), "experts", "cols", "weight"),
    (re.compile(_FFN + r"\.shared_experts?\.down_proj\.bias$"), "experts", "rows", "bias"),
    (re.compile(_FFN + r"\.experts\.down_proj$"), "experts", "fused", "weight"),
    (re.compile(_FFN + r"\.experts\.down_proj_bias$"), "experts", "rows", "bias"),
]

#: last module names that usually write into the residual stream
_WRITER_LIKE = {"o_proj", "out_proj", "down_proj", "dense", "c_proj", "w2", "wo", "fc2", "proj", "output",
                "dense_4h_to_h", "out", "o", "down", "w_out", "wte", "word_embeddings", "tok_embeddings",
                "embed_tokens", "embeddings", "embed"}
_QUANT_SUFFIX = re.compile(
    r"(?:weight_scale_inv|weight_scale|input_scale|_blocks|_scales|\.absmax|\.quant_map|\.quant_state.*"
    r"|\.nested_absmax|\.nested_quant_map|\.SCB|\.qweight|\.qzeros|\.g_idx|\.scales|\.weight_format)$"
)
_PROJECTOR = re.compile(r"(?:^|\.)(?:multi_modal_projector|mm_projector|merger|embed_vision|embed_audio)\.")
_TOWER = re.compile(
    r"(?:^|\.)(?:visual|vision_tower|vision_model|vision_encoder|audio_tower|audio_model|image_encoder"
    r"|vision)\."
)
_MTP = re.compile(r"(?:^|\.)mtp\.")


@dataclass
class KeyClass:
    """What the bake does with one tensor, decided from its name, shape and dtype."""

    action: str  # "edit" | "keep" | "skip" | "unknown" | "quantized"
    component: str | None = None
    layer: int | None = None
    layout: str | None = None  # "cols" | "rows" | "fused" (resolved to cols/rows by model type)
    role: str | None = None  # "weight" | "bias" | "embed" | "tied_lm_head"
    reason: str = ""
    group: str | None = None  # for kept tensors outside the LM: the tower prefix
    prefix: str = ""


def _module_name(key: str) -> str:
    parts = [p for p in key.split(".") if not p.isdigit()]
    if parts and parts[-1] in {"weight", "bias"}:
        parts = parts[:-1]
    return parts[-1] if parts else key


def classify(key: str, shape: tuple[int, ...], dtype: str, *, model_type: str, hidden: int,
             n_layers: int, tied: bool) -> KeyClass:
    """Classify one tensor; ``edit`` results carry component, layer and layout (checked against shape)."""
    if _QUANT_SUFFIX.search(key):
        return KeyClass("quantized", reason=f"quantization tensor {key}")
    if _MTP.search(key):
        return KeyClass("skip", reason="multi-token-prediction head (used only for speculative decoding)",
                        group=key.split("mtp.")[0] + "mtp")
    if _PROJECTOR.search(key):
        return KeyClass("skip", reason="part of the multimodal projector (it writes image/audio features "
                        "into the residual); not edited by a text-only bake")
    if _TOWER.search(key):
        m = _TOWER.search(key)
        return KeyClass("keep", group=key[: m.end() - 1], reason="vision/audio tower (not the LM residual)")
    m = _EMBED_RE.match(key)
    if m:
        return _checked(KeyClass("edit", "embed", None, "rows", "embed", prefix=m["pre"]), key, shape, dtype,
                        hidden)
    if key == "lm_head.weight" or key.endswith(".lm_head.weight"):
        if tied:
            return _checked(KeyClass("edit", "embed", None, "rows", "tied_lm_head",
                                     reason="tied to embed_tokens (kept identical to the edited embedding)"),
                            key, shape, dtype, hidden)
        return KeyClass("keep")
    m = _LAYER_RE.match(key)
    if m:
        layer, rest = int(m["layer"]), m["rest"]
        for pat, comp, layout, role in _WRITERS:
            if pat.match(rest):
                if layer >= n_layers:
                    return KeyClass("skip", reason=f"layer {layer} is beyond num_hidden_layers={n_layers} "
                                    "(an MTP/draft layer?)")
                if layout == "fused":
                    layout = "rows" if model_type in TRANSPOSED_FUSED else "cols"
                    if len(shape) != 3:
                        return KeyClass("unknown", reason=f"fused experts tensor with {len(shape)} dims "
                                        "(expected 3)")
                return _checked(KeyClass("edit", comp, layer, layout, role, prefix=m["pre"]), key, shape,
                                dtype, hidden)
        if _module_name(key) in _WRITER_LIKE:
            return KeyClass("unknown", reason=f"looks like a residual writer ({_module_name(key)}) but its "
                            "layout is unknown to the bake")
        return KeyClass("keep")
    if _module_name(key) in _WRITER_LIKE and len(shape) >= 2:
        return KeyClass("unknown", reason=f"looks like a residual writer ({_module_name(key)}) outside the "
                        "known decoder layout")
    return KeyClass("keep")


def _checked(kc: KeyClass, key: str, shape: tuple[int, ...], dtype: str, hidden: int) -> KeyClass:
    if dtype not in FLOAT_DTYPES:
        return KeyClass("quantized", reason=f"writer {key} is stored as {dtype} (quantized)")
    axis = -2 if kc.layout == "cols" else -1
    if len(shape) < (2 if kc.layout == "cols" else 1) or shape[axis] != hidden:
        return KeyClass("unknown", reason=f"shape {list(shape)} has no hidden={hidden} axis where the "
                        f"{kc.layout} layout expects it")
    return kc
