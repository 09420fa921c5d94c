"""Write a tiny HF folder (tests/tiny_models.py) as a GGUF file, as llama.cpp's converter lays it out.

Test helper, llama and qwen2 layouts only. Follows the public GGUF conventions: tensor names
``token_embd``, ``blk.N.attn_q`` ..., numpy shapes equal to torch's (GGUF lists the dims reversed),
llama's Q/K rows permuted for its rotary layout (qwen2 uses NEOX rotary and is not permuted), and
a byte-level BPE vocabulary (``tokenizer.ggml.model = gpt2``) with the chat template. Tensors are
F32 unless ``types`` names another type for them (e.g. Q8_0 for one ``ffn_down``).
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order for llama's rotary embedding (interleaved pairs per head)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_names(state: dict[str, np.ndarray], cfg: dict) -> dict[str, np.ndarray]:
    """HF state dict -> GGUF tensor names and (permuted where llama needs it) arrays."""
    arch = cfg["model_type"]
    out: dict[str, np.ndarray] = {"token_embd.weight": state["model.embed_tokens.weight"]}
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in _LAYER_MAP.items():
            key = f"model.layers.{i}.{hf}"
            if key not in state:
                continue
            w = state[key]
            if arch == "llama" and hf == "self_attn.q_proj.weight":
                w = _permute(w, cfg["num_attention_heads"])
            elif arch == "llama" and hf == "self_attn.k_proj.weight":
                w = _permute(w, cfg["num_key_value_heads"])
            out[f"blk.{i}.{gg}"] = w
    out["output_norm.weight"] = state["model.norm.weight"]
    if not cfg.get("tie_word_embeddings") and "lm_head.weight" in state:
        out["output.weight"] = state["lm_head.weight"]
    return out


def _add_tokenizer(w: gguf.GGUFWriter, folder: Path, vocab_size: int) -> None:
    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab: dict[str, int] = dict(tok["model"]["vocab"])
    special = {t["content"]: t["id"] for t in tok["added_tokens"]}
    vocab.update(special)
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [gguf.TokenType.UNUSED] * vocab_size
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.CONTROL if text in special else gguf.TokenType.NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(special["<|im_start|>"])
    w.add_eos_token_id(special["<|im_end|>"])
    w.add_pad_token_id(special["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template((folder / "chat_template.jinja").read_text())


def hf_to_gguf(folder: Path, out: Path, types: dict[str, gguf.GGMLQuantizationType] | None = None) -> Path:
    """Write the tiny HF model in ``folder`` as ``out`` (a .gguf file); returns ``out``."""
    cfg = json.loads((folder / "config.json").read_text())
    arch = cfg["model_type"]
    if arch not in {"llama", "qwen2"}:
        raise ValueError(f"tiny_gguf writes llama and qwen2 layouts, not {arch}")
    state = load_file(str(folder / "model.safetensors"))
    tensors = gguf_names(state, cfg)
    w = gguf.GGUFWriter(out, arch)
    w.add_name(f"tiny-{arch}")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base((cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0)))
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(w, folder, cfg["vocab_size"])
    for name, arr in tensors.items():
        qtype = (types or {}).get(name, gguf.GGMLQuantizationType.F32)
        data = gguf.quants.quantize(np.ascontiguousarray(arr, dtype=np.float32), qtype)
        w.add_tensor(name, data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
