"""Bake a direction into a checkpoint: orthogonalize every residual-stream writer, streaming.

Rules, in order:
1. The source folder is planned and vetted from safetensors headers first (writers found by key
   and model type, quantized or unknown writers refused) before a byte is written.
2. Each shard is rewritten tensor by tensor in one pass (abliterate.bake.stream); untouched bytes
   are copied verbatim, both sha256s are taken in the same pass. A source sha256 already known
   (an HF cache blob name, or abliterate.bake.hashes from an earlier bake) is not recomputed.
3. The output folder is staged and renamed at the end; ``abliteration.json`` in it records what
   was done (and the per-stage timing). A ``.gguf`` model goes to abliterate.bake.gguf.writer instead.
Math and traps: ``shared/reference/abliteration.md``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

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
from abliterate.bake.hashes import cached_sha256, remember_sha256
from abliterate.bake.io import (
    ShardHeader,
    TensorInfo,
    copy_file_atomic,
    read_header,
    rewrite_shards,
)
from abliterate.bake.keys import POSTNORM_AFTER, POSTNORM_FAMILIES, TRANSPOSED_FUSED, KeyClass, classify
from abliterate.bake.math import EditStats, Workspace, make_editor, math_threads
from abliterate.bake.profile import COMPONENTS, parse_profile_specs
from abliterate.bake.stream import StreamTiming
from abliterate.fsio import write_json
from abliterate.options import BakeOptions

log = logging.getLogger(__name__)

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
#: weights in other formats are never copied next to the edited safetensors (a loader could pick
#: them up and silently serve the unedited model)
_OTHER_WEIGHTS = {".bin", ".pth", ".pt", ".ckpt", ".gguf", ".h5", ".msgpack", ".safetensors", ".onnx"}
_SKIP_DIRS = {".git", ".cache", "__pycache__"}


@dataclass
class ModelInfo:
    """What the bake needs from config.json."""

    model_type: str
    text_model_type: str
    hidden: int
    n_layers: int
    tied: bool | None

    def families(self) -> set[str]:
        """Top-level and text-config model types."""
        return {self.model_type, self.text_model_type}


@dataclass
class PlannedEdit:
    """One tensor to edit and how."""

    shard: ShardHeader
    info: TensorInfo
    kc: KeyClass
    alpha: float
    u: torch.Tensor  # unit direction actually projected out (fp64)
    direction_label: str
    stats: EditStats


def _read_config(model: Path) -> tuple[dict, ModelInfo]:
    path = model / "config.json"
    if not path.is_file():
        raise BakeError(f"{model} has no config.json; pass --model a Hugging Face model folder")
    cfg = json.loads(path.read_text())
    text = cfg.get("text_config") or {}
    for c in (cfg, text):
        q = c.get("quantization_config")
        if q:
            method = q.get("quant_method", "unknown") if isinstance(q, dict) else "unknown"
            raise BakeError(
                f"{model} is quantized (quant_method={method}); the bake edits only bf16/fp16/fp32 "
                "weights: dequantize to bf16 first (or bake the unquantized original)"
            )

    def pick(name: str):
        return text.get(name, cfg.get(name))

    hidden, n_layers = pick("hidden_size"), pick("num_hidden_layers")
    if not isinstance(hidden, int) or not isinstance(n_layers, int):
        raise BakeError(f"{path} lacks hidden_size/num_hidden_layers; is this a decoder-only LM checkpoint?")
    tied = cfg.get("tie_word_embeddings", text.get("tie_word_embeddings"))
    mt = str(cfg.get("model_type", ""))
    return cfg, ModelInfo(mt, str(text.get("model_type", mt)), hidden, n_layers, tied)


def _find_shards(model: Path) -> tuple[list[Path], Path | None, dict[str, str]]:
    index = model / INDEX_NAME
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text()).get("weight_map") or {}
        if not weight_map:
            raise BakeError(f"{index} has an empty weight_map; re-download the checkpoint")
        names = list(dict.fromkeys(weight_map.values()))
        missing = [n for n in names if not (model / n).is_file()]
        if missing:
            raise BakeError(f"{index} names shard(s) {missing[:3]} that are missing; re-download the checkpoint")
        return [model / n for n in names], index, weight_map
    single = model / SINGLE_NAME
    if single.is_file():
        return [single], None, {}
    raise BakeError(
        f"{model} has neither {INDEX_NAME} nor {SINGLE_NAME}; save the model as safetensors "
        "(model.save_pretrained(dir, safe_serialization=True)) first"
    )


def _postnorm_mode(mode: str, info: ModelInfo) -> tuple[bool, bool | None, str | None]:
    """(active, plus_one, family) for the post-norm correction."""
    fam = next((f for f in (info.text_model_type, info.model_type) if f in POSTNORM_FAMILIES), None)
    if mode not in {"auto", "on", "off"}:
        raise BakeError(f"--postnorm-correction must be auto, on or off, not {mode!r}")
    if mode == "off":
        return False, None, fam
    if fam is None:
        if mode == "on":
            raise BakeError(
                f"--postnorm-correction on: model type {info.model_type!r} has no known post-norm layout "
                f"(known: {', '.join(sorted(POSTNORM_FAMILIES))}); use auto or off"
            )
        return False, None, None
    return True, POSTNORM_FAMILIES[fam], fam


def _postnorm_dirs(plan: list[tuple[ShardHeader, TensorInfo, KeyClass]], shards: list[ShardHeader],
                   r: torch.Tensor, plus_one: bool) -> dict[tuple[str, int, str], torch.Tensor]:
    """normalize(g * r) for every (prefix, layer, norm) a planned writer is followed by."""
    from safetensors import safe_open

    where = {t.key: s.path for s in shards for t in s.tensors}
    needed = {(kc.prefix, kc.layer, POSTNORM_AFTER[kc.component])
              for _, _, kc in plan if kc.component in POSTNORM_AFTER and kc.layer is not None}
    dirs = {}
    for prefix, layer, norm in sorted(needed):
        key = f"{prefix}layers.{layer}.{norm}.weight"
        if key not in where:
            raise BakeError(f"post-norm correction needs {key}, which the checkpoint lacks; "
                            "pass --postnorm-correction off if this model has no post-norms")
        with safe_open(str(where[key]), framework="pt") as f:
            w = f.get_tensor(key).to(torch.float64)
        g = 1.0 + w if plus_one else w
        v = g * r
        n = float(v.norm())
        if n == 0.0:
            raise BakeError(f"post-norm {key} zeroes the direction; the correction is undefined here")
        dirs[(prefix, layer, norm)] = v / n
    return dirs


@dataclass
class _Scan:
    """Every tensor of the checkpoint, sorted into what the bake will do with it."""

    writers: list[tuple[ShardHeader, TensorInfo, KeyClass]] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    kept_groups: Counter = field(default_factory=Counter)
    not_selected: Counter = field(default_factory=Counter)


def _scan(shards: list[ShardHeader], info: ModelInfo, comps: tuple[str, ...], weight_map: dict[str, str],
          skip_unknown: bool) -> _Scan:
    """Classify every tensor from the headers; refuse quantized or unknown writers before any write."""
    scan = _Scan()
    seen: dict[str, str] = {}
    # a multimodal wrapper (llama4) names the transposed-experts family only in its text config
    model_type = next((m for m in sorted(info.families()) if m in TRANSPOSED_FUSED), info.model_type)
    unknown, quantized = [], []
    for s in shards:
        for t in s.tensors:
            if t.key in seen:
                raise BakeError(f"tensor {t.key} appears in both {seen[t.key]} and {s.path.name}; fix the checkpoint")
            seen[t.key] = s.path.name
            kc = classify(t.key, t.shape, t.dtype, model_type=model_type, hidden=info.hidden,
                          n_layers=info.n_layers, tied=bool(info.tied))
            if kc.action == "quantized":
                quantized.append(f"{t.key} ({kc.reason})")
            elif kc.action == "unknown":
                unknown.append({"key": t.key, "file": s.path.name, "reason": kc.reason})
            elif kc.action == "skip":
                scan.skipped.append({"key": t.key, "file": s.path.name, "reason": kc.reason})
            elif kc.action == "keep" and kc.group:
                scan.kept_groups[kc.group] += 1
            elif kc.action == "edit" and t.nbytes:
                if kc.component in comps:
                    scan.writers.append((s, t, kc))
                else:
                    scan.not_selected[kc.component] += 1
    absent = [k for k in weight_map if k not in seen]
    if absent:
        raise BakeError(f"index lists {len(absent)} tensor(s) not in any shard (e.g. {absent[0]}); "
                        "re-download the checkpoint")
    if quantized:
        raise BakeError(f"quantized tensors found ({len(quantized)}, e.g. {quantized[0]}); the bake refuses to "
                        "edit quantized weights: dequantize to bf16 first or bake the unquantized original")
    if unknown and not skip_unknown:
        raise BakeError(f"{len(unknown)} writer-like tensor(s) the bake cannot edit, e.g. {unknown[0]['key']} "
                        f"({unknown[0]['reason']}); pass --skip-unknown-writers to copy them unedited (listed)")
    for u in unknown:
        scan.skipped.append({**u, "reason": f"unknown writer, copied unedited (--skip-unknown-writers): "
                             f"{u['reason']}"})
    return scan


def bake(model: Path, direction: Path | torch.Tensor | np.ndarray, out: Path, *, layer: float | None = None,
         components=COMPONENTS, weight: float = 1.0, norm_preserve: bool = False, dry_run: bool = False,
         progress: bool = True, postnorm_correction: str = "auto", skip_unknown_writers: bool = False,
         gguf_type: str = "auto", q8_bound: float | None = None, **profile) -> dict:
    """Orthogonalize every residual writer of ``model`` against ``direction``; write ``out``.

    ``components``: subset of embed, attn (o_proj, linear_attn.out_proj), mlp (dense down_proj),
    experts (routed experts, per-expert or fused, and shared experts). ``weight`` scales every
    edit; ``**profile`` maps a component to a per-layer StrengthProfile (or a number / dict).
    ``layer`` picks (and blends, if fractional) a row of a per-layer direction stack; with a single
    vector it is only recorded. ``postnorm_correction`` (auto|on|off) projects out normalize(g * r)
    for writers followed by a post-norm (Gemma 2/3, OLMo 2). Unknown writer-like tensors stop the
    bake unless ``skip_unknown_writers``; every skip is listed in the report and logged.
    Returns the abliteration.json content (written to ``out`` unless ``dry_run``).
    A ``.gguf`` file as ``model`` is baked by :func:`abliterate.bake.gguf.writer.bake_gguf` into the
    ``.gguf`` file ``out`` (``gguf_type``/``q8_bound`` choose how edited tensors are stored).
    """
    t0 = time.monotonic()
    model, out = Path(model), Path(out)
    if model.suffix.lower() == ".gguf":
        # the gguf package is an optional extra ([gguf]): imported only for a .gguf model
        from abliterate.bake.gguf.writer import bake_gguf

        return bake_gguf(model, direction, out, layer=layer, components=components, weight=weight,
                         norm_preserve=norm_preserve, dry_run=dry_run, progress=progress,
                         postnorm_correction=postnorm_correction, skip_unknown_writers=skip_unknown_writers,
                         gguf_type=gguf_type, q8_bound=q8_bound, **profile)
    if gguf_type != "auto" or q8_bound is not None:
        raise BakeError("--gguf-type and --q8-bound apply to a .gguf --model only; this model is a safetensors folder")
    if not model.is_dir():
        raise BakeError(f"model folder {model} not found; pass --model a Hugging Face model folder")
    comps = check_components(components)
    profiles = resolve_profiles(profile)
    if not np.isfinite(weight):
        raise BakeError(f"--weight {weight} is not a finite number")
    _, info = _read_config(model)
    shard_paths, index_path, weight_map = _find_shards(model)
    shards = [read_header(p) for p in shard_paths]
    d = load_direction(direction, layer)
    if d.vector.numel() != info.hidden:
        raise BakeError(f"direction has {d.vector.numel()} dims but the model's hidden_size is {info.hidden}; "
                        "use a direction computed on this model")
    r = d.vector
    pn_active, plus_one, pn_family = _postnorm_mode(postnorm_correction, info)

    scan = _scan(shards, info, comps, weight_map, skip_unknown_writers)
    if not scan.writers and not scan.not_selected:
        raise BakeError(f"no residual-stream writers found in {model}; is it a supported decoder-only LM?")
    writers, skipped = scan.writers, scan.skipped
    zero_strength: list[str] = []
    pn_dirs = _postnorm_dirs(writers, shards, r, bool(plus_one)) if pn_active else {}
    plan: list[PlannedEdit] = []
    for s, t, kc in writers:
        alpha = weight * profiles[kc.component].at(kc.layer)
        if alpha == 0.0:
            zero_strength.append(t.key)
            continue
        u, label = r, "r"
        if pn_active and kc.layer is not None and kc.component in POSTNORM_AFTER:
            norm = POSTNORM_AFTER[kc.component]
            u = pn_dirs[(kc.prefix, kc.layer, norm)]
            label = f"normalize(g*r), g = {'1 + ' if plus_one else ''}{kc.prefix}layers.{kc.layer}.{norm}.weight"
        plan.append(PlannedEdit(s, t, kc, alpha, u, label, EditStats()))

    for sk in skipped:
        log.warning("bake: NOT edited %s: %s", sk["key"], sk["reason"])
    report = _report_head(model, out, d, info, comps, weight, profiles, norm_preserve, dry_run,
                          pn_active, pn_family, plus_one, postnorm_correction)
    report["skipped"] = skipped
    report["untouched_towers"] = dict(scan.kept_groups)
    report["not_selected"] = dict(scan.not_selected)
    report["zero_strength"] = zero_strength
    if dry_run:
        report["edited"] = [_edit_entry(p, with_stats=False) for p in plan]
        report["elapsed_s"] = round(time.monotonic() - t0, 3)
        return report

    staging = _prepare_out(model, out)
    known = _known_hashes(shards)
    try:
        with math_threads(1 + (len(known) < len(shards))) as threads:
            _write_all(model, staging, shards, plan, index_path, norm_preserve, progress, report, known)
        report["timing"]["math_threads"] = threads
        report["elapsed_s"] = round(time.monotonic() - t0, 3)
        write_json(staging / REPORT_NAME, report)
        if out.is_dir():
            out.rmdir()  # checked empty above; the staged folder takes its place
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    remember_sha256({out / s.path.name: report["output"]["files"][s.path.name] for s in shards})
    return report


def run_bake(options: BakeOptions) -> dict:
    """:func:`bake` as ``options`` asks for it, its profile specs parsed first."""
    o = options
    return bake(o.model, o.direction, o.out, layer=o.layer, components=o.components, weight=o.weight,
                norm_preserve=o.norm_preserve, dry_run=o.dry_run, progress=True,
                postnorm_correction=o.postnorm_correction, skip_unknown_writers=o.skip_unknown_writers,
                gguf_type=o.gguf_type, q8_bound=o.q8_bound, **parse_profile_specs(list(o.profile)))


def _known_hashes(shards: list[ShardHeader]) -> dict[Path, tuple[str, str]]:
    """(sha256, where from) of each shard whose hash is known without reading it: blob name or hash cache."""
    known = {}
    for s in shards:
        if sha := hf_blob_sha256(s.path):
            known[s.path] = (sha, "blob")
        elif sha := cached_sha256(s.path):
            known[s.path] = (sha, "cache")
    return known


def _write_all(model: Path, out: Path, shards: list[ShardHeader], plan: list[PlannedEdit],
               index_path: Path | None, norm_preserve: bool, progress: bool, report: dict,
               known: dict[Path, tuple[str, str]]) -> None:
    """Rewrite every shard and copy every side file into ``out``; fill the report's file sections."""
    by_shard: dict[Path, dict] = {s.path: {} for s in shards}
    ws = Workspace()
    for p in plan:
        by_shard[p.shard.path][p.info.key] = make_editor(p.kc.layout, p.u, p.alpha, norm_preserve, p.stats, ws)
    src_files: dict[str, str] = {}
    out_files: dict[str, str] = {}
    total = sum(s.file_size for s in shards)
    timing = StreamTiming()
    with ByteProgress(progress, total) as tick:
        jobs = [(s, out / s.path.name, by_shard[s.path], known.get(s.path, (None,))[0]) for s in shards]
        for s, (src_sha, out_sha) in zip(shards, rewrite_shards(jobs, on_bytes=tick, timing=timing), strict=True):
            src_files[s.path.name], out_files[s.path.name] = src_sha, out_sha
    remember_sha256({s.path: src_files[s.path.name] for s in shards if s.path not in known})
    where = {path: how for path, (_, how) in known.items()}
    report["source"]["sha256_from_hf_blob_names"] = [s.path.name for s in shards if where.get(s.path) == "blob"]
    report["source"]["sha256_from_cache"] = [s.path.name for s in shards if where.get(s.path) == "cache"]
    report["timing"] = timing.as_dict()
    not_copied = []
    shard_names = {s.path.name for s in shards}
    for f in sorted(model.rglob("*")):
        rel = f.relative_to(model)
        if not f.is_file() or any(part in _SKIP_DIRS for part in rel.parts) or str(rel) in shard_names:
            continue
        if str(rel) == REPORT_NAME:
            report["parent_bake"] = json.loads(f.read_text())
            continue
        if f.suffix.lower() in _OTHER_WEIGHTS:
            not_copied.append({"file": str(rel), "bytes": f.stat().st_size,
                               "reason": "weights outside the safetensors index: not edited, so not copied"})
            log.warning("bake: not copied %s (weights outside the safetensors index)", rel)
            continue
        sha = copy_file_atomic(f, out / rel)
        src_files[str(rel)] = out_files[str(rel)] = sha
    report["source"]["files"] = src_files
    report["source"]["index"] = index_path.name if index_path else None
    report["not_copied"] = not_copied
    report["edited"] = [_edit_entry(p, with_stats=True) for p in plan]
    report["output"]["files"] = out_files


def _report_head(model: Path, out: Path, d: Direction, info: ModelInfo, comps, weight, profiles,
                 norm_preserve, dry_run, pn_active, pn_family, plus_one, pn_mode) -> dict:
    return {
        "tool": "ablbench abliterate bake",
        "format_version": 1,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dry_run": dry_run,
        "source": {"path": str(model.resolve()), "hf": hf_origin(model), "model_type": info.model_type,
                   "text_model_type": info.text_model_type, "hidden_size": info.hidden,
                   "num_hidden_layers": info.n_layers, "tie_word_embeddings": info.tied},
        "direction": {"source": d.source, "sha256": d.sha256, "layer": d.layer, "blend": d.blend,
                      "raw_norm": d.raw_norm, "unit_vector_sha256": sha_of_vector(d.vector)},
        "components": list(comps),
        "weight": weight,
        "profiles": {c: p.as_dict() for c, p in profiles.items()},
        "norm_preserve": norm_preserve,
        "postnorm_correction": {"mode": pn_mode, "active": pn_active, "family": pn_family,
                                "scale": None if not pn_active else ("1 + weight" if plus_one else "weight")},
        "output": {"path": str(out.resolve())},
    }


def _edit_entry(p: PlannedEdit, with_stats: bool) -> dict:
    e = {"key": p.info.key, "file": p.shard.path.name, "component": p.kc.component, "layer": p.kc.layer,
         "role": p.kc.role, "layout": p.kc.layout, "dtype": p.info.dtype, "shape": list(p.info.shape),
         "alpha": p.alpha, "direction": p.direction_label}
    if p.kc.reason:
        e["note"] = p.kc.reason
    if with_stats:
        e["r_norm_before"] = p.stats.before
        e["r_norm_after"] = p.stats.after
        if p.stats.zero_norm_columns:
            e["zero_norm_vectors"] = p.stats.zero_norm_columns
    return e


def _prepare_out(model: Path, out: Path) -> Path:
    """Check ``out`` and return a fresh staging folder next to it (renamed onto ``out`` at the end)."""
    src, dst = model.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise BakeError(f"--out {out} is inside the source model folder; choose a separate folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise BakeError(f"--out {out} exists and is not empty; choose a new folder or remove it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = dst.parent / f".{dst.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


