"""Loading a model for abliteration work and finding its decoder layers (never by guessing).

Rules, in order:
1. A model is an HF folder (config.json + weights) or a ``.gguf`` file; transformers reads both
   (a GGUF through ``gguf_file=``, dequantized to the working dtype), so every step after loading
   is the same for either.
2. The architecture comes from the config's model_type; the decoder layers are looked up in
   :data:`LAYER_PATHS` (or ``--layers-path``), never guessed.
3. A model without a chat template is an error: contrast prompts must use the model's own format.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abliterate.errors import AbliterationError

#: model_type -> attribute paths (from the loaded top-level model) where the decoder layers live.
#: The first path that exists AND holds ``num_hidden_layers`` modules wins. Multimodal checkpoints
#: (Qwen3.5, Gemma 3 ...ForConditionalGeneration) keep the text layers under ``language_model``.
LAYER_PATHS: dict[str, tuple[str, ...]] = {
    **{t: ("model.layers",) for t in (
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen3_next",
        "gemma", "gemma2", "gemma3_text", "gpt_oss", "phi3", "olmo2", "granite", "smollm3",
        "qwen3_5_text", "qwen3_5_moe_text", "gemma4_text", "cohere", "starcoder2",
    )},
    **{t: ("model.layers", "model.language_model.layers") for t in (
        "qwen3_5", "qwen3_5_moe", "gemma3", "gemma4", "qwen3_vl", "qwen3_vl_moe", "mistral3",
    )},
}


@dataclass
class LoadedModel:
    """A model ready for hooks: the module, its tokenizer, and where its layers are."""

    model: Any
    tokenizer: Any
    path: Path
    model_type: str
    architecture: str
    layers: Any  # nn.ModuleList
    layers_path: str
    n_layers: int
    d_model: int
    max_positions: int | None
    device: Any
    dtype: Any
    #: whether a shared prompt prefix may be computed once and its KV cache repeated over a batch
    prefix_cache: bool = True

    @property
    def is_thinking(self) -> bool:
        """True when the chat template knows a ``<think>`` block."""
        return "<think>" in (self.tokenizer.chat_template or "")


def has_gguf_suffix(path: Path) -> bool:
    """True for a ``.gguf`` file path (a model transformers reads through ``gguf_file=``)."""
    return Path(path).suffix.lower() == ".gguf"


def _gguf_args(path: Path) -> tuple[Path, dict]:
    """(folder, kwargs) for transformers' from_pretrained on a GGUF file."""
    path = Path(path)
    if not path.is_file():
        raise AbliterationError(f"GGUF file {path} not found: pass an existing .gguf file or an HF model folder")
    return path.parent, {"gguf_file": path.name}


def read_config(path: Path) -> dict:
    """The config of an HF folder (its config.json) or of a GGUF file (as transformers maps it)."""
    if has_gguf_suffix(path):
        from transformers import AutoConfig

        folder, kw = _gguf_args(path)
        try:
            return AutoConfig.from_pretrained(folder, **kw).to_dict()
        except (OSError, ValueError, KeyError) as exc:
            raise AbliterationError(f"cannot read {path} as a GGUF model ({exc}); is its architecture one "
                                    "transformers can load from GGUF?") from exc
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        raise AbliterationError(f"{path} is not a Hugging Face model folder (no config.json): pass a model folder "
                                "or a .gguf file")
    return json.loads(cfg.read_text())


def resolve_attr(root: Any, dotted: str) -> Any:
    """``root.a.b.c`` for ``"a.b.c"``; None when any step is missing."""
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_layers(model: Any, model_type: str, n_layers: int, layers_path: str | None = None) -> tuple[Any, str]:
    """Return (decoder layer ModuleList, its dotted path); unknown architectures are an error."""
    import torch.nn as nn

    arch = (getattr(model.config, "architectures", None) or [type(model).__name__])[0]
    if layers_path:
        candidates: tuple[str, ...] = (layers_path,)
    elif model_type in LAYER_PATHS:
        candidates = LAYER_PATHS[model_type]
    else:
        raise AbliterationError(
            f"unknown architecture {arch} (model_type {model_type!r}): ablbench does not know where its decoder "
            "layers are; pass --layers-path (e.g. model.layers) if you know it"
        )
    for cand in candidates:
        obj = resolve_attr(model, cand)
        if isinstance(obj, nn.ModuleList) and len(obj) == n_layers:
            return obj, cand
    raise AbliterationError(
        f"architecture {arch} (model_type {model_type!r}): no ModuleList of {n_layers} decoder layers at "
        f"{' or '.join(candidates)}; pass the right --layers-path"
    )


def pick_device(device: str = "auto"):
    """'auto' -> cuda when available, else cpu."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device, config: dict):
    """'auto' -> float32 on CPU (fast and exact there), the stored dtype (bf16 default) on GPU."""
    import torch

    if dtype != "auto":
        try:
            return getattr(torch, dtype)
        except AttributeError as exc:
            raise AbliterationError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16") from exc
    if device.type == "cpu":
        return torch.float32
    stored = config.get("dtype") or config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    return {"float16": torch.float16, "float32": torch.float32}.get(str(stored), torch.bfloat16)


def load_tokenizer(path: Path):
    """The tokenizer of an HF folder; a missing chat template is an error."""
    from transformers import AutoTokenizer

    if has_gguf_suffix(path):
        folder, kw = _gguf_args(path)
        tok = AutoTokenizer.from_pretrained(folder, **kw)
    else:
        tok = AutoTokenizer.from_pretrained(path)
    if not getattr(tok, "chat_template", None):
        jinja = Path(path) / "chat_template.jinja"
        if jinja.is_file():
            tok.chat_template = jinja.read_text()
    if not getattr(tok, "chat_template", None):
        raise AbliterationError(
            f"model {path} has no chat template: add chat_template.jinja (or tokenizer_config.json "
            "'chat_template') to the folder (a GGUF needs tokenizer.chat_template); contrast prompts must use "
            "the model's own format"
        )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def check_supported(path: Path, layers_path: str | None = None) -> dict:
    """Fail early (before any heavy work) for folders whose architecture ablbench does not know."""
    config = read_config(path)
    model_type = str(config.get("model_type", ""))
    arch = (config.get("architectures") or ["?"])[0]
    if not layers_path and model_type not in LAYER_PATHS:
        raise AbliterationError(
            f"unknown architecture {arch} (model_type {model_type!r}) in {path}: ablbench does not know "
            "where its decoder layers are; pass --layers-path (e.g. model.layers) if you know it"
        )
    return config


def load_model(
    path: Path, *, device: str = "auto", dtype: str = "auto", layers_path: str | None = None
) -> LoadedModel:
    """Load an HF folder (or a GGUF file) with the architecture its config names, in eval mode, and locate its layers.

    ``ABLBENCH_TORCH_THREADS`` sets torch's CPU thread count (1 is far faster on a busy machine).
    """
    import torch
    import transformers

    path = Path(path)
    config = check_supported(path, layers_path)
    threads = os.environ.get("ABLBENCH_TORCH_THREADS")
    if threads:
        # on an oversubscribed CPU, fewer OpenMP threads can be many times faster (no spin-waiting)
        torch.set_num_threads(max(1, int(threads)))
    model_type = str(config.get("model_type", ""))
    archs = config.get("architectures") or []
    arch = archs[0] if archs else None
    tokenizer = load_tokenizer(path)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev, config)
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None:
        cls = transformers.AutoModelForCausalLM
    where, kw = _gguf_args(path) if has_gguf_suffix(path) else (path, {})
    try:
        model = cls.from_pretrained(where, dtype=dt, **kw)
    except (OSError, ValueError) as exc:
        raise AbliterationError(f"cannot load {path} as {arch or 'a causal LM'}: {exc}") from exc
    model.to(dev).eval()
    text_cfg = model.config.get_text_config()
    n_layers = int(text_cfg.num_hidden_layers)
    layers, found = find_layers(model, model_type, n_layers, layers_path)
    return LoadedModel(
        model=model, tokenizer=tokenizer, path=path, model_type=model_type, architecture=arch or type(model).__name__,
        layers=layers, layers_path=found, n_layers=n_layers, d_model=int(text_cfg.hidden_size),
        max_positions=getattr(text_cfg, "max_position_embeddings", None), device=dev, dtype=dt,
    )


def layer_output(output: Any):
    """The residual stream tensor from a decoder layer's output (a tensor, or a tuple's first item)."""
    return output[0] if isinstance(output, tuple | list) else output
