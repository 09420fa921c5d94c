"""Merged outputs of a LoRA training: an HF folder, and a GGUF written through abliterate's GGUF writer.

Rules, in order:
1. HF: PEFT's ``merge_and_unload`` folds the adapter into the base weights; the merged model is
   saved with the tokenizer (and chat template) in the dtype it was trained in.
2. GGUF: the base GGUF's tensors keep their names, order and metadata (gguf's own writer builds
   the header; ``sft.*`` provenance keys are added). A tensor whose merged HF weight differs from
   the base HF weight gets ``gguf_base + (merged - base)``, mapped to the GGUF name by gguf's
   tensor-name map and to its layout by comparing the base HF tensor with the dequantized GGUF one
   (llama's converter permutes Q/K rows; the layout closest to the stored tensor wins and must be
   within ``MATCH_BOUND`` relative error, else the GGUF is not this model's conversion). Every
   other tensor is copied byte for byte.
3. A changed tensor keeps an F32/F16/BF16 type; a quantized one is written as F16 (re-quantizing
   would snap small LoRA deltas back onto the source grid). The output is staged and renamed.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

from sft.errors import SftError

#: relative error allowed between the base HF tensor and the dequantized base GGUF tensor (Q4 is ~0.1)
MATCH_BOUND = 0.35


def merge_hf(peft_model, tokenizer, out: Path, dtype: torch.dtype) -> Path:
    """Rule 1: fold the adapter in and save the merged model + tokenizer in ``out`` (staged, renamed)."""
    stage = out.with_name(f".{out.name}.partial-{os.getpid()}")
    import shutil

    shutil.rmtree(stage, ignore_errors=True)
    merged = peft_model.merge_and_unload()
    merged.to(dtype).save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(stage, out)
    return out


def _tensor_files(folder: Path) -> dict[str, Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return {k: folder / v for k, v in json.loads(index.read_text())["weight_map"].items()}
    from safetensors import safe_open

    files = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as fh:
            files.update({k: f for k in fh.keys()})  # noqa: SIM118 - safe_open has no __iter__
    return files


def _get(files: dict[str, Path], name: str) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(files[name]), "pt") as fh:
        return fh.get_tensor(name).to(torch.float32)


def changed_tensors(base: Path, merged: Path) -> list[str]:
    """HF names whose merged weight differs from the base weight."""
    bf, mf = _tensor_files(base), _tensor_files(merged)
    out = []
    for name in sorted(mf):
        if name not in bf:
            raise SftError(f"{merged}: tensor {name} is not in the base model {base}; merge against the model trained")
        if not torch.equal(_get(bf, name), _get(mf, name)):
            out.append(name)
    return out


def _permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _layouts(w: torch.Tensor, cfg: dict) -> dict[str, torch.Tensor]:
    out = {"as is": w}
    for key in ("num_attention_heads", "num_key_value_heads"):
        h = cfg.get(key) or (cfg.get("text_config") or {}).get(key)
        if isinstance(h, int) and h > 0 and w.ndim == 2 and w.shape[0] % (2 * h) == 0:
            out[f"rotary rows permuted ({key}={h})"] = _permute(w, h)
    return out


def merge_gguf(base_gguf: Path, base_hf: Path, merged_hf: Path, out: Path, provenance: dict | None = None) -> dict:
    """Rule 2-3: write ``out``, the base GGUF with the merged HF model's changed tensors; returns a report."""
    import gguf
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFValueType

    from abliterate.bake.gguf.codec import row_bytes
    from abliterate.bake.gguf.writer import gguf_header, read_source
    from abliterate.bake.stream import OutputStream

    t0 = time.monotonic()
    base_gguf, out = Path(base_gguf), Path(out)
    if not base_gguf.is_file():
        raise SftError(f"--gguf {base_gguf}: no such file; pass the base model's .gguf")
    if out.suffix.lower() != ".gguf":
        raise SftError(f"{out}: the merged GGUF's name must end in .gguf")
    src = read_source(base_gguf)
    cfg = json.loads((base_hf / "config.json").read_text())
    try:
        arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == src.arch)
    except StopIteration:
        raise SftError(f"{base_gguf}: architecture {src.arch} is unknown to the gguf library; update gguf") from None
    names = gguf.get_tensor_name_map(arch, src.n_layers)
    by_name = {t.name: t for t in src.tensors}
    bf, mf = _tensor_files(base_hf), _tensor_files(merged_hf)
    plan: dict[str, tuple[str, Q]] = {}  # GGUF name -> (HF name, output type)
    for hf_name in changed_tensors(base_hf, merged_hf):
        gname = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gname is None or gname not in by_name:
            raise SftError(f"{hf_name} changed but has no tensor in {base_gguf.name} (mapped to {gname}); "
                           "is the GGUF a conversion of this HF model?")
        t = by_name[gname]
        plan[gname] = (hf_name, t.qtype if t.qtype in (Q.F32, Q.F16, Q.BF16) else Q.F16)
    layout_rows = []
    for t in src.tensors:
        if t.name in plan:
            qtype = plan[t.name][1]
            layout_rows.append((t, qtype, math.prod(t.shape[:-1]) * row_bytes(qtype, t.shape[-1])))
        else:
            layout_rows.append((t, t.qtype, t.nbytes))
    S = GGUFValueType.STRING
    kv = [("sft.tool", "ablbench sft", S, None),
          ("sft.created_utc", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), S, None),
          ("sft.edited_tensors", len(plan), GGUFValueType.UINT32, None),
          ("sft.provenance", json.dumps(provenance or {}, sort_keys=True, default=str), S, None)]
    out.parent.mkdir(parents=True, exist_ok=True)
    header = gguf_header(src, out, layout_rows, kv)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    align = src.reader.alignment
    edited = []
    try:
        with OutputStream(base_gguf, staging) as stream:
            stream.write(header)
            for t in src.tensors:
                if t.name in plan:
                    hf_name, qtype = plan[t.name]
                    edited.append(_merged_tensor(stream, t, hf_name, qtype, bf, mf, cfg, base_gguf.name))
                    written = edited[-1].pop("nbytes")
                else:
                    stream.copy(t.start, t.nbytes)
                    written = t.nbytes
                pad = gguf.GGUFWriter.ggml_pad(written, align) - written
                if pad:
                    stream.write(bytes(pad))
            src_sha, out_sha = stream.finish()
        os.replace(staging, out)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return {"path": str(out), "sha256": out_sha, "base": str(base_gguf), "base_sha256": src_sha,
            "edited": edited, "copied": len(src.tensors) - len(plan), "elapsed_s": round(time.monotonic() - t0, 3)}


def _merged_tensor(stream, t, hf_name: str, qtype, bf: dict, mf: dict, cfg: dict, gguf_name: str) -> dict:
    """Write ``gguf_base + (merged - base)`` for one tensor (rule 2); its report row (+ bytes written)."""
    from abliterate.bake.gguf.codec import decode, encode

    view = stream.source(t.start, t.nbytes)
    stored = decode(view, t.qtype, math.prod(t.shape[:-1]), t.shape[-1]).reshape(t.shape).clone()
    del view
    base_w, merged_w = _get(bf, hf_name), _get(mf, hf_name)
    if tuple(base_w.shape) != tuple(t.shape):
        raise SftError(f"{hf_name} has shape {tuple(base_w.shape)} but {t.name} has {t.shape}; "
                       "is the GGUF a conversion of this HF model?")
    scale = float(stored.norm()) or 1.0
    errs = {k: float((w - stored).norm()) / scale for k, w in _layouts(base_w, cfg).items()}
    layout = min(errs, key=errs.get)
    if errs[layout] > MATCH_BOUND:
        raise SftError(f"{t.name} of {gguf_name} differs from the base model's {hf_name} by "
                       f"{errs[layout]:.0%}; pass --gguf the GGUF converted from --model")
    w = stored + _layouts(merged_w - base_w, cfg)[layout]
    data, _ = encode(w.reshape(-1, t.shape[-1]).contiguous(), qtype)
    stream.write(data)
    return {"hf": hf_name, "gguf": t.name, "layout": layout, "source_type": t.qtype.name,
            "output_type": qtype.name, "base_mismatch": round(errs[layout], 6), "nbytes": data.nbytes}
