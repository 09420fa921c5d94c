"""Preflight check of a model folder before it is served (and against its base model).

A served edit must differ from its base only in the weights: the same tokenizer and chat
template (transformers 5 writes ``chat_template.jinja``), a generation_config with the
turn-end token among its EOS ids (else generations run to max_tokens), ``tie_word_embeddings``
consistent with the tensors present (sglang silently ignores a stray ``lm_head.weight`` on a
tied model), and bf16 weights. Problems come back as a list; errors block serving.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

#: files that define tokenization and chat formatting: must be byte-identical to the base
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
)
#: end-of-turn tokens of common chat templates
TURN_END_TOKENS = (
    "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|return|>", "<|endoftext|>",
    "</s>", "<|end_of_text|>", "<turn|>",
)
_FLOAT_DTYPES = {"BF16", "F16", "F32", "F64", "F8_E4M3", "F8_E5M2"}


@dataclass(frozen=True)
class Problem:
    """One finding: ``error`` blocks serving, ``warning`` is reported."""

    severity: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


def errors(problems: list[Problem]) -> list[Problem]:
    """Only the errors."""
    return [p for p in problems if p.severity == "error"]


def check_model(folder: Path, base: Path | None = None) -> list[Problem]:
    """All problems of ``folder`` (and its differences from ``base`` when given)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return [Problem("error", f"{folder} has no config.json: not a Hugging Face model folder")]
    problems = check_folder(folder)
    if base is not None:
        problems += compare_to_base(folder, Path(base))
    return problems


def check_folder(folder: Path) -> list[Problem]:
    """Tokenizer, chat template, generation config/EOS, tied embeddings, dtype of one folder."""
    out: list[Problem] = []
    config = _read_json(folder / "config.json", out) or {}
    text_cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    tok_cfg = _read_json(folder / "tokenizer_config.json", out) if (folder / "tokenizer_config.json").exists() else None

    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        out.append(Problem("error", f"{folder}: no tokenizer (tokenizer.json / tokenizer.model): "
                                    "copy the tokenizer files from the base model"))
    template = chat_template(folder, tok_cfg)
    if template is None:
        out.append(Problem("error", f"{folder}: no chat template (chat_template.jinja or tokenizer_config.json "
                                    "'chat_template'): copy it from the base model"))
    out += _check_generation_config(folder, template)
    out += _check_tensors(folder, config, text_cfg)
    return out


def chat_template(folder: Path, tok_cfg: dict | None = None) -> str | None:
    """The chat template text, wherever the folder keeps it."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    cjson = folder / "chat_template.json"
    if cjson.is_file():
        try:
            value = json.loads(cjson.read_text()).get("chat_template")
        except (ValueError, AttributeError):
            value = None
        if isinstance(value, str):
            return value
    value = (tok_cfg or {}).get("chat_template")
    if isinstance(value, list):  # named templates: [{"name": "default", "template": ...}]
        value = next((t.get("template") for t in value if isinstance(t, dict)), None)
    return value if isinstance(value, str) else None


def _check_generation_config(folder: Path, template: str | None) -> list[Problem]:
    out: list[Problem] = []
    path = folder / "generation_config.json"
    if not path.is_file():
        return [Problem("error", f"{folder}: generation_config.json missing (it sets the EOS tokens and sampling "
                                 "defaults): copy it from the base model")]
    gen = _read_json(path, out)
    if gen is None:
        return out
    eos = _as_list(gen.get("eos_token_id"))
    if not eos:
        out.append(Problem("error", f"{path}: no eos_token_id: generations would run to max_tokens"))
        return out
    eos_ids = set(eos)  # servers stop on generation_config's list; config.json's is not enough
    vocab = _special_token_ids(folder)
    in_template = [t for t in TURN_END_TOKENS if template and t in template and t in vocab]
    if in_template and not any(vocab[t] in eos_ids for t in in_template):
        names = ", ".join(f"{t}={vocab[t]}" for t in in_template)
        out.append(Problem("error", f"{path}: eos_token_id {sorted(eos_ids)} lacks the chat template's turn end "
                                    f"({names}): generations would run to max_tokens; copy the base's file"))
    return out


def _check_tensors(folder: Path, config: dict, text_cfg: dict) -> list[Problem]:
    out: list[Problem] = []
    headers = safetensors_headers(folder, out)
    if headers is None:
        return out
    names = set(headers)
    has_lm_head = any(n == "lm_head.weight" or n.endswith(".lm_head.weight") for n in names)
    tied = text_cfg.get("tie_word_embeddings", config.get("tie_word_embeddings"))
    if tied is None:
        tied = _default_tie(folder)
    if tied is True and has_lm_head:
        out.append(Problem("error", f"{folder}: tie_word_embeddings=true but lm_head.weight is stored: servers "
                                    "ignore it (an edit to it is lost); drop the tensor or set "
                                    "tie_word_embeddings=false"))
    elif tied is False and not has_lm_head:
        out.append(Problem("error", f"{folder}: tie_word_embeddings=false but no lm_head.weight is stored: "
                                    "the output layer would be missing; store lm_head.weight or set it true"))
    dtypes: dict[str, int] = {}
    for name, meta in headers.items():
        if meta["dtype"] in _FLOAT_DTYPES and "norm" not in name:
            dtypes[meta["dtype"]] = dtypes.get(meta["dtype"], 0) + 1
    if dtypes and set(dtypes) != {"BF16"}:
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(dtypes.items()))
        out.append(Problem("warning", f"{folder}: weights are not all bf16 ({summary}); servers cast to "
                                      "--dtype bfloat16, so the served numerics differ from the file"))
    declared = text_cfg.get("dtype") or text_cfg.get("torch_dtype") or config.get("dtype") or config.get("torch_dtype")
    if declared and declared != "bfloat16":
        out.append(Problem("warning", f"{folder}: config.json declares dtype {declared!r}, not bfloat16"))
    return out


def safetensors_headers(folder: Path, out: list[Problem]) -> dict[str, dict[str, Any]] | None:
    """Tensor name -> {dtype, shape} from the safetensors headers (no tensor data is read)."""
    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        index = _read_json(index_path, out)
        if index is None:
            return None
        files = sorted(set(index.get("weight_map", {}).values()))
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            out.append(Problem("error", f"{folder}: shards named in the index are missing: {', '.join(missing)}"))
            return None
    else:
        files = sorted(p.name for p in folder.glob("*.safetensors"))
    if not files:
        out.append(Problem("error", f"{folder}: no *.safetensors weights: save with safe_serialization"))
        return None
    headers: dict[str, dict[str, Any]] = {}
    for name in files:
        try:
            headers.update(_read_header(folder / name))
        except (OSError, ValueError) as exc:
            out.append(Problem("error", f"{folder / name}: unreadable safetensors header ({exc})"))
            return None
    return headers


def _read_header(path: Path) -> dict[str, dict[str, Any]]:
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        if size > 100 * 1024 * 1024:
            raise ValueError(f"header of {size} bytes")
        header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return header


def compare_to_base(folder: Path, base: Path) -> list[Problem]:
    """Differences from the base folder that should not exist in a weight-only edit."""
    out: list[Problem] = []
    if not (base / "config.json").is_file():
        return [Problem("error", f"base {base} has no config.json: not a Hugging Face model folder")]
    for name in TOKENIZER_FILES:
        mine, theirs = folder / name, base / name
        if theirs.is_file() and not mine.is_file():
            out.append(Problem("error", f"{name} is in the base but missing from {folder}: copy it from {base}"))
        elif theirs.is_file() and mine.read_bytes() != theirs.read_bytes():
            out.append(Problem("error", f"{name} differs from the base's: copy {theirs} over it"))
        elif mine.is_file() and not theirs.is_file():
            out.append(Problem("warning", f"{name} exists in {folder} but not in the base"))
    gen_mine, gen_base = folder / "generation_config.json", base / "generation_config.json"
    if gen_mine.is_file() and gen_base.is_file():
        a, b = _read_json(gen_mine, out), _read_json(gen_base, out)
        if a is not None and b is not None:
            a.pop("transformers_version", None)
            b.pop("transformers_version", None)
            if a != b:
                out.append(Problem("warning", "generation_config.json differs from the base's (EOS or sampling "
                                              "defaults): the comparison is not weight-only"))
    cfg_mine, cfg_base = _read_json(folder / "config.json", out), _read_json(base / "config.json", out)
    if cfg_mine and cfg_base:
        for key in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads"):
            mine_v, base_v = _text(cfg_mine).get(key), _text(cfg_base).get(key)
            if mine_v != base_v:
                out.append(Problem("error", f"config.json {key} is {mine_v!r} but the base has {base_v!r}: "
                                            "not an edit of this base"))
    return out


def _text(config: dict) -> dict:
    return config.get("text_config") if isinstance(config.get("text_config"), dict) else config


def _special_token_ids(folder: Path) -> dict[str, int]:
    """Added/special token text -> id, from tokenizer.json (empty if unavailable)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found = {t["content"]: t["id"] for t in data.get("added_tokens", []) if "content" in t and "id" in t}
    vocab = (data.get("model") or {}).get("vocab")
    if isinstance(vocab, dict):
        for tok in TURN_END_TOKENS:
            if tok in vocab and tok not in found:
                found[tok] = vocab[tok]
    return found


def _default_tie(folder: Path) -> bool | None:
    """The config class default of tie_word_embeddings when config.json does not say."""
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(folder)
    except Exception:  # noqa: BLE001 - unknown architecture: the check is skipped
        return None
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return getattr(text, "tie_word_embeddings", None)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [v for v in value if isinstance(v, int)] if isinstance(value, list) else []


def _read_json(path: Path, out: list[Problem]) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        out.append(Problem("error", f"{path}: not valid JSON ({exc})"))
        return None
    if not isinstance(data, dict):
        out.append(Problem("error", f"{path}: expected a JSON object"))
        return None
    return data
