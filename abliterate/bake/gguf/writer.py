"""Bake a direction into a GGUF file: IN.gguf -> OUT.gguf, streamed tensor by tensor.

Rules, in order:
1. The source is parsed with ``gguf.GGUFReader`` (metadata, tensor infos) and every tensor is
   classified from its llama.cpp name and shape (:mod:`abliterate.bake.gguf.keys`) before a byte
   is written. Unknown writers (unless ``skip_unknown_writers``), types the gguf library cannot
   dequantize, split or big-endian files, overlapping tensor data and a direction whose size is
   not ``<arch>.embedding_length`` stop the bake with a one-line error.
2. Each residual writer chosen by ``components`` with a non-zero strength is dequantized, edited
   in fp32 with the safetensors bake's math and written in its output type
   (:mod:`abliterate.bake.gguf.codec`). ``gguf_type`` auto keeps F32/F16/BF16 writers in their
   type, writes Q8_0 ones as F16 (re-quantizing onto the same grid would snap small edits back)
   and other quantized ones as Q8_0 (checked against ``q8_bound``); f32/f16/bf16/q8_0 force a
   type. Biases are always F32; Q8_0 becomes F16 where a row is not a multiple of 32 values.
3. Every other tensor is copied byte for byte (same type, same data), in the source's data order,
   each tensor padded to the file's alignment.
4. Metadata: every source key/value is copied through the gguf library, in order; abliteration.*
   keys of an earlier bake move into ``abliteration.parent`` (JSON); provenance keys
   ``abliteration.*`` are added. File hashes are known only after the data, so they live in
   ``abliteration.json`` beside OUT (one baked GGUF per folder).
5. Sandwich-norm architectures (gemma2/3/4, olmo2; ``postnorm_correction`` on forces it for any):
   writers followed by ``blk.N.post_attention_norm`` / ``post_ffw_norm`` project out
   normalize(g * r), g the stored norm weight (llama.cpp's converters store the effective scale,
   Gemma's 1 + w included). Another architecture with ``post_ffw_norm`` tensors stops auto.
6. One pass over the source (:mod:`abliterate.bake.stream`): both sha256s are taken while
   streaming (the source's is skipped when known: HF blob name, abliterate.bake.hashes); OUT is
   staged beside itself and renamed once abliteration.json is written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

from abliterate.bake.common import (
    REPORT_NAME,
    ByteProgress,
    check_components,
    hf_blob_sha256,
    hf_origin,
    resolve_profiles,
    sha_of_vector,
)
from abliterate.bake.direction import Direction, load_direction
from abliterate.bake.errors import BakeError
from abliterate.bake.gguf.codec import OUTPUT_TYPES, Q8_BOUND, can_decode, decode, edit_tensor, row_bytes
from abliterate.bake.gguf.keys import POSTNORMS, SANDWICH_ARCHS, classify_gguf
from abliterate.bake.hashes import cached_sha256, remember_sha256
from abliterate.bake.keys import KeyClass
from abliterate.bake.math import EditStats, Workspace, math_threads
from abliterate.bake.profile import COMPONENTS, StrengthProfile
from abliterate.bake.stream import OutputStream, StreamTiming
from abliterate.fsio import write_json

log = logging.getLogger(__name__)

Q = GGMLQuantizationType
_FLOATS = {Q.F32, Q.F16, Q.BF16}


@dataclass(frozen=True)
class GgufTensor:
    """One tensor of the source: numpy-order shape (ggml dims reversed), absolute byte range."""

    name: str
    qtype: Q
    shape: tuple[int, ...]
    start: int
    nbytes: int

    @property
    def end(self) -> int:
        return self.start + self.nbytes


@dataclass
class GgufEdit:
    """One tensor to edit, how, and into which type."""

    tensor: GgufTensor
    kc: KeyClass
    alpha: float
    u: torch.Tensor
    direction_label: str
    out_type: Q
    out_nbytes: int
    note: str
    stats: EditStats


@dataclass
class _Source:
    reader: GGUFReader
    arch: str
    hidden: int
    n_layers: int
    tensors: list[GgufTensor]  # in data order
    tied: bool


class _Reader(GGUFReader):
    """GGUFReader slicing a plain ndarray view of its map: the same parse, ~5x faster on a big vocabulary.

    ``np.memmap`` pays a Python-level ``__array_finalize__`` on every slice, and the reader takes
    several slices per token of the vocabulary (6 s for SmolLM2's 49k tokens, 1.2 s this way).
    """

    def _get(self, offset: int, dtype, count: int = 1, override_order=None) -> np.ndarray:
        plain = self.__dict__.get("_plain")
        if plain is None:
            plain = self._plain = self.data.view(np.ndarray)
        dt = np.dtype(dtype)
        count = int(count)
        arr = plain[offset:offset + dt.itemsize * count].view(dt)[:count]
        order = self.byte_order if override_order is None else override_order
        return arr if order == "I" else arr.view(arr.dtype.newbyteorder(order))


def _field(reader: GGUFReader, key: str):
    f = reader.get_field(key)
    return None if f is None else f.contents()


def read_source(model: Path) -> _Source:
    """Open ``model`` (a .gguf) and read what a writer needs: tensors, metadata, alignment (sft's merge uses it too)."""
    try:
        reader = _Reader(model)
    except (ValueError, IndexError, OSError) as exc:
        raise BakeError(f"{model} is not a readable GGUF file ({exc}); re-download or re-convert it") from exc
    if reader.byte_order != "I":
        raise BakeError(f"{model} is a big-endian GGUF; convert it with gguf's gguf_convert_endian first")
    if (_field(reader, "split.count") or 1) > 1:
        raise BakeError(f"{model} is one part of a split GGUF; merge the parts (llama-gguf-split --merge) first")
    arch = _field(reader, "general.architecture")
    hidden, n_layers = _field(reader, f"{arch}.embedding_length"), _field(reader, f"{arch}.block_count")
    if not arch or not isinstance(hidden, int) or not isinstance(n_layers, int):
        raise BakeError(f"{model} lacks general.architecture / <arch>.embedding_length / <arch>.block_count; "
                        "is it a decoder-only LM GGUF?")
    size = model.stat().st_size
    tensors = sorted((GgufTensor(t.name, Q(int(t.tensor_type)), tuple(int(x) for x in reversed(t.shape.tolist())),
                                 int(t.data_offset), int(t.n_bytes)) for t in reader.tensors),
                     key=lambda t: t.start)
    pos = reader.data_offset
    for t in tensors:
        if t.start < pos or t.end > size:
            raise BakeError(f"{model}: tensor {t.name} overlaps another or runs past the end of the file; "
                            "re-download it")
        pos = t.end
    tied = not any(t.name == "output.weight" for t in tensors)
    return _Source(reader, str(arch), hidden, n_layers, tensors, tied)


def _out_type(t: GgufTensor, kc: KeyClass, mode: str) -> tuple[Q, str]:
    """Output type of an edited tensor, and a note when a rule changed the requested one."""
    if kc.role == "bias" or len(t.shape) == 1:
        return Q.F32, "" if t.qtype == Q.F32 else "biases are written as F32"
    if mode == "auto" and t.qtype == Q.Q8_0:
        return Q.F16, "a Q8_0 source re-quantized to Q8_0 snaps edits smaller than half a step back: written as F16"
    if mode == "auto":
        want = t.qtype if t.qtype in _FLOATS else (Q.F32 if t.qtype == Q.F64 else Q.Q8_0)
    else:
        want = OUTPUT_TYPES[mode]
    if want == Q.Q8_0 and t.shape[-1] % 32:
        return Q.F16, f"rows of {t.shape[-1]} values are not a multiple of Q8_0's 32: written as F16"
    return want, ""


def _vector(src: _Source, t: GgufTensor) -> torch.Tensor:
    """A small 1-D tensor (a norm weight) as fp64."""
    rt = next(x for x in src.reader.tensors if x.name == t.name)
    raw = memoryview(np.ascontiguousarray(rt.data).view(np.uint8)).cast("B")
    return decode(raw, t.qtype, 1, t.shape[-1]).flatten().to(torch.float64)


def _postnorm_dirs(src: _Source, writers: list[tuple[GgufTensor, KeyClass]], r: torch.Tensor,
                   mode: str) -> dict[tuple[int, str], torch.Tensor]:
    """normalize(g * r) per (layer, post-norm) that follows a planned writer."""
    if mode not in {"auto", "on", "off"}:
        raise BakeError(f"--postnorm-correction must be auto, on or off, not {mode!r}")
    if mode == "off":
        return {}
    by_name = {t.name: t for t in src.tensors}
    if mode == "auto" and src.arch not in SANDWICH_ARCHS:
        if any(name.endswith(".post_ffw_norm.weight") for name in by_name):
            raise BakeError(f"architecture {src.arch} has post_ffw_norm tensors (sandwich-norm blocks?) but the bake "
                            f"knows post-norm layouts only for {', '.join(sorted(SANDWICH_ARCHS))}: pass "
                            "--postnorm-correction on to correct for them, or off to bake without")
        return {}
    found = {(kc.layer, POSTNORMS[kc.component]) for _, kc in writers
             if kc.layer is not None and f"blk.{kc.layer}.{POSTNORMS[kc.component]}.weight" in by_name}
    if not found:
        if mode == "on":
            raise BakeError("--postnorm-correction on: this GGUF has no post_attention_norm/post_ffw_norm tensors; "
                            "use auto or off")
        return {}
    dirs = {}
    for layer, norm in sorted(found):
        g = _vector(src, by_name[f"blk.{layer}.{norm}.weight"])
        if g.numel() != r.numel():
            raise BakeError(f"blk.{layer}.{norm}.weight has {g.numel()} values, not the hidden size {r.numel()}")
        v = g * r
        n = float(v.norm())
        if n == 0.0:
            raise BakeError(f"blk.{layer}.{norm}.weight zeroes the direction; the post-norm correction is undefined")
        dirs[(layer, norm)] = v / n
    return dirs


def _check_out(model: Path, out: Path) -> None:
    if out.suffix.lower() != ".gguf":
        raise BakeError(f"--out {out} must be a .gguf file when --model is a GGUF")
    if out.resolve() == model.resolve():
        raise BakeError(f"--out {out} is the source file; choose a new file name")
    if out.exists():
        raise BakeError(f"--out {out} exists; choose a new file name or remove it")
    report = out.parent / REPORT_NAME
    if report.exists():
        try:
            other = json.loads(report.read_text()).get("output", {}).get("path")
        except (OSError, ValueError, AttributeError):
            other = None
        if other != str(out.resolve()):
            raise BakeError(f"{report} describes another baked file ({other}); bake each GGUF into its own folder")


def _kv_records(src: _Source) -> tuple[list[tuple], dict]:
    """(the source's key/values to copy, in order; abliteration.* keys of an earlier bake)."""
    keep, parent = [], {}
    for field in src.reader.fields.values():
        name = field.name
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        main = field.types[0]
        if main == GGUFValueType.ARRAY and len(field.types) > 2:
            raise BakeError(f"metadata key {name} is a nested array, which the gguf library cannot copy")
        value = field.contents()
        if name.startswith("abliteration."):
            parent[name] = value
            continue
        keep.append((name, value, main, field.types[-1] if main == GGUFValueType.ARRAY else None))
    return keep, parent


def gguf_header(src: _Source, out: Path, layout: list[tuple[GgufTensor, Q, int]], extra: list[tuple]) -> bytes:
    """The output's header, metadata and tensor infos, padded to the alignment (gguf's own writer)."""
    keep, _ = _kv_records(src)
    w = GGUFWriter(path=None, arch=src.arch)
    w.data_alignment = src.reader.alignment
    for name, value, vtype, sub in [*keep, *extra]:
        w.add_key_value(name, value, vtype, sub_type=sub)
    for t, qtype, nbytes in layout:
        w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
    tmp = out.with_name(f".{out.name}.header-{os.getpid()}")
    try:
        w.write_header_to_file(tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        w.close()
        data = tmp.read_bytes()
    finally:
        w.close()
        tmp.unlink(missing_ok=True)
    return data + bytes(GGUFWriter.ggml_pad(len(data), src.reader.alignment) - len(data))


def _provenance_kv(model: Path, d: Direction, comps, weight: float, norm_preserve: bool, n_edits: int,
                   settings: dict, parent: dict, created: str) -> list[tuple]:
    S, A = GGUFValueType.STRING, GGUFValueType.ARRAY
    kv = [("abliteration.tool", "ablbench abliterate bake", S, None),
          ("abliteration.format_version", 1, GGUFValueType.UINT32, None),
          ("abliteration.created_utc", created, S, None),
          ("abliteration.source", model.name, S, None),
          ("abliteration.direction_sha256", d.sha256, S, None),
          ("abliteration.unit_vector_sha256", sha_of_vector(d.vector), S, None),
          ("abliteration.components", list(comps), A, S),
          ("abliteration.weight", float(weight), GGUFValueType.FLOAT64, None),
          ("abliteration.norm_preserve", bool(norm_preserve), GGUFValueType.BOOL, None),
          ("abliteration.edited_tensors", n_edits, GGUFValueType.UINT32, None),
          ("abliteration.settings", json.dumps(settings, sort_keys=True, default=str), S, None)]
    if d.layer is not None:
        kv.append(("abliteration.layer", float(d.layer), GGUFValueType.FLOAT64, None))
    if parent:
        kv.append(("abliteration.parent", json.dumps(parent, sort_keys=True, default=str), S, None))
    return kv


def bake_gguf(model: Path, direction, out: Path, *, layer: float | None = None, components=COMPONENTS,
              weight: float = 1.0, norm_preserve: bool = False, dry_run: bool = False, progress: bool = True,
              postnorm_correction: str = "auto", skip_unknown_writers: bool = False, gguf_type: str = "auto",
              q8_bound: float | None = None, **profile) -> dict:
    """Orthogonalize every residual writer of the GGUF ``model`` against ``direction``; write ``out``.

    Same options and report as :func:`abliterate.bake.run.bake`, plus ``gguf_type`` (auto, f32, f16,
    bf16, q8_0) and ``q8_bound`` (Q8_0 output needs max|u^T w'| <= q8_bound * max|W| per tensor).
    Returns the abliteration.json content (written beside ``out`` unless ``dry_run``).
    """
    t0 = time.monotonic()
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise BakeError(f"GGUF file {model} not found; pass --model a .gguf file or an HF model folder")
    if gguf_type not in {"auto", *OUTPUT_TYPES}:
        raise BakeError(f"--gguf-type {gguf_type!r} is not one of auto, {', '.join(OUTPUT_TYPES)}")
    bound = Q8_BOUND if q8_bound is None else float(q8_bound)
    if not (math.isfinite(bound) and bound > 0):
        raise BakeError(f"--q8-bound {q8_bound} must be a positive number")
    comps = check_components(components)
    profiles = resolve_profiles(profile)
    if not math.isfinite(weight):
        raise BakeError(f"--weight {weight} is not a finite number")
    src = read_source(model)
    d = load_direction(direction, layer)
    if d.vector.numel() != src.hidden:
        raise BakeError(f"direction has {d.vector.numel()} dims but {model.name} has embedding_length {src.hidden}; "
                        "use a direction computed on this model")

    writers, skipped, unknown, not_selected = [], [], [], Counter()
    for t in src.tensors:
        kc = classify_gguf(t.name, t.shape, hidden=src.hidden, n_layers=src.n_layers, tied=src.tied)
        if kc.action == "unknown":
            unknown.append({"key": t.name, "file": model.name, "reason": kc.reason})
        elif kc.action == "skip":
            skipped.append({"key": t.name, "file": model.name, "reason": kc.reason})
        elif kc.action == "edit" and t.nbytes:
            if kc.component not in comps:
                not_selected[kc.component] += 1
            elif not can_decode(t.qtype):
                raise BakeError(f"{t.name} is stored as {t.qtype.name}, which the gguf library cannot dequantize; "
                                "bake a GGUF with another quantization (or the F16 original)")
            else:
                writers.append((t, kc))
    if unknown and not skip_unknown_writers:
        raise BakeError(f"{len(unknown)} writer-like tensor(s) the bake cannot edit, e.g. {unknown[0]['key']} "
                        f"({unknown[0]['reason']}); pass --skip-unknown-writers to copy them unedited (listed)")
    skipped += [{**u, "reason": f"unknown writer, copied unedited (--skip-unknown-writers): {u['reason']}"}
                for u in unknown]
    if not writers and not not_selected:
        raise BakeError(f"no residual-stream writers found in {model}; is it a supported decoder-only LM?")

    r = d.vector
    pn_dirs = _postnorm_dirs(src, writers, r, postnorm_correction)
    plan: list[GgufEdit] = []
    zero_strength = []
    for t, kc in writers:
        alpha = weight * profiles[kc.component].at(kc.layer)
        if alpha == 0.0:
            zero_strength.append(t.name)
            continue
        u, label = r, "r"
        norm = POSTNORMS.get(kc.component or "")
        if kc.layer is not None and (kc.layer, norm) in pn_dirs:
            u, label = pn_dirs[(kc.layer, norm)], f"normalize(g*r), g = blk.{kc.layer}.{norm}.weight"
        out_type, note = _out_type(t, kc, gguf_type)
        n_rows = math.prod(t.shape[:-1])
        plan.append(GgufEdit(t, kc, alpha, u, label, out_type, n_rows * row_bytes(out_type, t.shape[-1]),
                             "; ".join(x for x in (kc.reason, note) if x), EditStats()))
    for sk in skipped:
        log.warning("bake: NOT edited %s: %s", sk["key"], sk["reason"])

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    settings = {"profiles": {c: p.as_dict() for c, p in profiles.items()}, "postnorm_correction": postnorm_correction,
                "gguf_type": gguf_type, "q8_bound": bound}
    report = _report_head(model, out, src, d, comps, weight, profiles, norm_preserve, dry_run, created,
                          postnorm_correction, bool(pn_dirs), gguf_type, bound)
    report.update(skipped=skipped, untouched_towers={}, not_selected=dict(not_selected), zero_strength=zero_strength)
    _, parent = _kv_records(src)
    if parent:
        report["parent_bake"] = parent
    if dry_run:
        report["edited"] = [_edit_entry(e, model, with_stats=False) for e in plan]
        report["elapsed_s"] = round(time.monotonic() - t0, 3)
        return report

    _check_out(model, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    edits = {e.tensor.name: e for e in plan}
    layout = [(t, edits[t.name].out_type, edits[t.name].out_nbytes) if t.name in edits else (t, t.qtype, t.nbytes)
              for t in src.tensors]
    kv = _provenance_kv(model, d, comps, weight, norm_preserve, len(plan), settings, parent, created)
    header = gguf_header(src, out, layout, kv)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    from_blob = hf_blob_sha256(model)
    known = from_blob or cached_sha256(model)
    timing = StreamTiming()
    try:
        with math_threads(1 if known else 2) as timing.math_threads:
            src_sha, out_sha = _stream(model, staging, src, header, edits, norm_preserve, bound, known, progress,
                                       timing)
        report["source"]["files"] = {model.name: src_sha}
        report["source"]["sha256_from_hf_blob_names"] = [model.name] if from_blob else []
        report["source"]["sha256_from_cache"] = [model.name] if known and not from_blob else []
        report["output"]["files"] = {out.name: out_sha}
        report["output"]["tensor_types"] = dict(Counter(q.name for _, q, _ in layout))
        report["edited"] = [_edit_entry(e, model, with_stats=True) for e in plan]
        report["timing"] = timing.as_dict()
        report["elapsed_s"] = round(time.monotonic() - t0, 3)
        write_json(out.parent / REPORT_NAME, report)
        os.replace(staging, out)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    remember_sha256({out: out_sha} | ({} if known else {model: src_sha}))
    return report


def _stream(model: Path, staging: Path, src: _Source, header: bytes, edits: dict[str, GgufEdit],
            norm_preserve: bool, bound: float, known: str | None, progress: bool,
            timing: StreamTiming) -> tuple[str, str]:
    """Write the staged output in one pass over the source; returns (source, output) sha256."""
    align = src.reader.alignment
    work, back = Workspace(), Workspace()
    with ByteProgress(progress, model.stat().st_size) as tick, \
            OutputStream(model, staging, src_sha=known, on_bytes=tick, timing=timing) as stream:
        stream.write(header)
        for t in src.tensors:
            e = edits.get(t.name)
            if e is None:
                stream.copy(t.start, t.nbytes)
                written = t.nbytes
            else:
                view = stream.source(t.start, t.nbytes)
                written = stream.write_all(edit_tensor(view, t.shape, t.qtype, e.out_type, e.kc.layout or "cols",
                                                       e.u, e.alpha, norm_preserve, e.stats, bound, t.name,
                                                       work, back))
                del view
                if written != e.out_nbytes:
                    raise BakeError(f"internal: {t.name} came out as {written} bytes, not {e.out_nbytes}")
            pad = GGUFWriter.ggml_pad(written, align) - written
            if pad:
                stream.write(bytes(pad))
        return stream.finish()


def _report_head(model: Path, out: Path, src: _Source, d: Direction, comps, weight: float,
                 profiles: dict[str, StrengthProfile], norm_preserve: bool, dry_run: bool, created: str,
                 pn_mode: str, pn_active: bool, gguf_type: str, bound: float) -> dict:
    return {
        "tool": "ablbench abliterate bake",
        "format_version": 1,
        "format": "gguf",
        "created_utc": created,
        "dry_run": dry_run,
        "source": {"path": str(model.resolve()), "hf": hf_origin(model.parent), "architecture": src.arch,
                   "hidden_size": src.hidden, "num_hidden_layers": src.n_layers, "tie_word_embeddings": src.tied,
                   "alignment": src.reader.alignment,
                   "tensor_types": dict(Counter(t.qtype.name for t in src.tensors))},
        "direction": {"source": d.source, "sha256": d.sha256, "layer": d.layer, "blend": d.blend,
                      "raw_norm": d.raw_norm, "unit_vector_sha256": sha_of_vector(d.vector)},
        "components": list(comps),
        "weight": weight,
        "profiles": {c: p.as_dict() for c, p in profiles.items()},
        "norm_preserve": norm_preserve,
        "postnorm_correction": {"mode": pn_mode, "active": pn_active, "scale": "stored weight" if pn_active else None},
        "gguf": {"output_type": gguf_type, "q8_bound": bound,
                 "q8_rule": "Q8_0 output needs max|u^T w'| <= q8_bound * max|W| per tensor"},
        "output": {"path": str(out.resolve())},
    }


def _edit_entry(e: GgufEdit, model: Path, with_stats: bool) -> dict:
    t = e.tensor
    entry = {"key": t.name, "file": model.name, "component": e.kc.component, "layer": e.kc.layer,
             "role": e.kc.role, "layout": e.kc.layout, "source_type": t.qtype.name, "output_type": e.out_type.name,
             "shape": list(t.shape), "alpha": e.alpha, "direction": e.direction_label}
    if e.note:
        entry["note"] = e.note
    if with_stats:
        mx, res = e.stats.extra.get("max_abs", 0.0), e.stats.extra.get("residual_max", 0.0)
        entry.update(r_norm_before=e.stats.before, r_norm_after=e.stats.after, residual_max=res, max_abs=mx,
                     residual_ratio=res / mx if mx else 0.0)
        if e.stats.zero_norm_columns:
            entry["zero_norm_vectors"] = e.stats.zero_norm_columns
    return entry
