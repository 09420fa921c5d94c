"""Which GGUF tensors write into the residual stream, from their llama.cpp names and shapes alone.

Rules, in order:
1. Names follow llama.cpp's scheme: ``token_embd``, ``output``, ``blk.N.<name>.weight|bias``.
   A GGUF shape read by ``gguf.GGUFReader`` lists ggml's dims (fastest first); the numpy shape
   used here is that list reversed, which is torch's order: a writer's weight is ``[..., hidden, in]``
   exactly as the HF ``W[out, in]`` it was converted from, and the hidden axis keeps HF's order (the
   llama Q/K row permutation touches only ``attn_q``/``attn_k``, never a writer).
2. Writers: ``attn_output`` and ``ssm_out`` (attn), ``ffn_down`` (mlp), ``ffn_down_exps`` (fused
   routed experts, ``[E, hidden, in]`` for every architecture: llama.cpp has no transposed
   layout) and ``ffn_down_shexp`` (shared experts) (experts), their biases, and ``token_embd``
   (embed). Without ``output.weight`` the embedding is also the unembedding (tied).
3. A writer must have the hidden size where its layout puts it, else it is "unknown"; so is any
   other tensor whose name looks like a residual writer (``*out*``, ``*down*``, extra ``*embd*``).
4. Blocks at or past ``block_count`` are skipped (listed): they are not part of the forward pass.
5. Sandwich-norm blocks are known by architecture (:data:`SANDWICH_ARCHS`), never by tensor
   names alone: ``post_attention_norm`` is a pre-FFN norm in several other architectures.
6. Everything else is kept byte for byte.
"""

from __future__ import annotations

import re

from abliterate.bake.keys import KeyClass

_BLK = re.compile(r"^blk\.(?P<layer>\d+)\.(?P<name>[A-Za-z0-9_.]+)\.(?P<role>weight|bias)$")

#: llama.cpp base name -> component
WRITERS: dict[str, str] = {
    "attn_output": "attn", "ssm_out": "attn",
    "ffn_down": "mlp",
    "ffn_down_exps": "experts", "ffn_down_shexp": "experts",
}
#: component -> the post-norm that follows it in sandwich-norm blocks
POSTNORMS: dict[str, str] = {"attn": "post_attention_norm", "mlp": "post_ffw_norm", "experts": "post_ffw_norm"}
#: llama.cpp architectures whose blocks are sandwich-normed with exactly those names. Elsewhere the
#: names mean other things: gpt-oss, qwen3next, qwen35 and glm4moe call their pre-FFN norm
#: ``post_attention_norm`` (it reads the residual; no correction applies).
SANDWICH_ARCHS = {"gemma2", "gemma3", "gemma4", "olmo2"}

_WRITER_LIKE = re.compile(r"(?:^|_)(?:out|output|down|wo|proj)(?:_|$)")


def classify_gguf(name: str, shape: tuple[int, ...], *, hidden: int, n_layers: int, tied: bool) -> KeyClass:
    """Classify one GGUF tensor by name and numpy-order shape (see the module rules)."""
    if name == "token_embd.weight":
        note = "tied: llama.cpp also uses token_embd as the output projection" if tied else ""
        return _checked(KeyClass("edit", "embed", None, "rows", "embed", reason=note), name, shape, hidden)
    m = _BLK.match(name)
    if m is None:
        if "embd" in name and "norm" not in name:
            return KeyClass("unknown", reason="an embedding-like tensor that adds into the residual stream; "
                            "the bake edits only token_embd")
        return KeyClass("keep")
    layer, base, role = int(m["layer"]), m["name"], m["role"]
    comp = WRITERS.get(base)
    if comp is not None:
        if layer >= n_layers:
            return KeyClass("skip", reason=f"block {layer} is past block_count={n_layers} (an MTP/draft block?)")
        layout = "cols" if role == "weight" else "rows"
        return _checked(KeyClass("edit", comp, layer, layout, role), name, shape, hidden)
    if "norm" not in base and _WRITER_LIKE.search(base):
        return KeyClass("unknown", reason=f"looks like a residual writer ({base}) but its layout is unknown "
                        "to the bake")
    return KeyClass("keep")


def _checked(kc: KeyClass, name: str, shape: tuple[int, ...], hidden: int) -> KeyClass:
    axis = -2 if kc.layout == "cols" else -1
    if len(shape) < (2 if kc.layout == "cols" else 1) or shape[axis] != hidden:
        return KeyClass("unknown", reason=f"shape {list(shape)} has no hidden={hidden} axis where the "
                        f"{kc.layout} layout expects it")
    return kc
