"""Control edits: the same bake with a direction that is NOT the one found, to tell "removing
this direction changed the model" from "any edit of this size changes the model".

Rules, in order:
1. The reference edit is the run's bake (``RUN/abliterated_model/abliteration.json``: its unit
   direction, components, weight, per-component profiles, norm preservation, post-norm mode);
   without one, the search's chosen trial (``RUN/search/chosen.json``).
2. A random control direction is drawn from a seeded standard normal (numpy's PCG64), its
   component along the reference direction removed, and scaled to unit norm: orthogonal to r,
   reproducible from the seed.
3. A second-contrast control bakes a given direction (e.g. the system-prompt-presence direction
   of the directions report, or another run's ``refusal_dir.pt``) with the same strengths.
4. The control's ``abliteration.json`` gains a ``control`` section: kind, seed, the reference's
   direction hash and the cosine between the two directions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from abliterate.errors import AbliterationError
from abliterate.fsio import atomic_path, write_json
from abliterate.options import BakeRunOptions, ControlOptions

REFERENCE_BAKE = Path("abliterated_model") / "abliteration.json"


def random_orthogonal(reference, seed: int) -> np.ndarray:
    """A seeded random unit vector orthogonal to ``reference`` (float64)."""
    r = np.asarray(reference, dtype=np.float64).ravel()
    norm = np.linalg.norm(r)
    if not np.isfinite(norm) or norm == 0:
        raise AbliterationError("the reference direction is zero or not finite: recompute it")
    r = r / norm
    rng = np.random.default_rng(seed)
    while True:  # a draw parallel to r (only when r itself came from the same stream) is drawn again
        v = rng.standard_normal(r.shape[0])
        v -= (v @ r) * r
        v -= (v @ r) * r  # a second pass leaves ~1e-17 of r instead of ~1e-16
        n = np.linalg.norm(v)
        if n > 1e-6:
            return v / n


def reference_edit(run: Path) -> dict:
    """The reference edit of a run (rule 1): ``{"direction": unit float64 vector, "bake": bake kwargs, "source"}``."""
    from abliterate.bake.direction import load_direction

    run = Path(run)
    report_path = run / REFERENCE_BAKE
    if report_path.is_file():
        rep = json.loads(report_path.read_text())
        d = rep["direction"]
        src = Path(d["source"])
        if not src.is_file():
            raise AbliterationError(f"{report_path} names direction {src}, which is gone: rerun the bake")
        vec = load_direction(src, d.get("layer")).vector.numpy()
        kw = {"layer": d.get("layer"), "components": tuple(rep["components"]), "weight": rep["weight"],
              "norm_preserve": rep["norm_preserve"], "postnorm_correction": rep["postnorm_correction"]["mode"],
              **{c: p for c, p in rep["profiles"].items()}}
        return {"direction": vec, "bake": kw, "source": str(report_path), "sha256": d.get("unit_vector_sha256")}
    from abliterate.search.run import CHOSEN_FILE, SEARCH_DIR, bake_kwargs, read_chosen

    if (run / SEARCH_DIR / CHOSEN_FILE).is_file():
        chosen = read_chosen(run)
        vec = load_direction(Path(chosen["direction_file"]), None).vector.numpy()
        return {"direction": vec, "bake": bake_kwargs(chosen), "source": str(run / SEARCH_DIR / CHOSEN_FILE),
                "sha256": None}
    raise AbliterationError(f"{run} has neither {REFERENCE_BAKE} nor search/chosen.json: bake the run first "
                            "(`ablbench abliterate pipeline`) so the control can copy its strengths")


def bake_control(options: ControlOptions) -> dict:
    """Bake the control edit of ``options.run`` into ``options.out``; returns its abliteration.json content."""
    import torch

    from abliterate.bake.direction import load_direction
    from abliterate.bake.run import REPORT_NAME, bake

    model, run, out, seed, direction, layer = (options.model, options.run, options.out, options.seed,
                                               options.direction, options.layer)
    ref = reference_edit(run)
    r = ref["direction"]
    if direction is None:
        vec, kind = random_orthogonal(r, seed), "random_orthogonal"
        source = f"numpy default_rng({seed}) normal, r-component removed, unit norm"
    else:
        vec, kind = load_direction(Path(direction), layer).vector.numpy(), "second_contrast"
        source = str(Path(direction).resolve()) + (f" @ layer {layer}" if layer is not None else "")
    if vec.shape != r.shape:
        raise AbliterationError(f"the control direction has {vec.shape[0]} dims, the run's has {r.shape[0]}: "
                                "use a direction computed on the same model")
    vectors = Path(run) / "vectors"
    vec_path = vectors / (f"control_seed{seed}.pt" if direction is None else "control_second_contrast.pt")
    with atomic_path(vec_path) as tmp:
        torch.save(torch.from_numpy(vec.astype(np.float64)).contiguous(), tmp)
    kw = dict(ref["bake"])
    kw["layer"] = None  # a single vector: the reference's layer is recorded in the control section
    target = bake_target(model, out, "control")
    report = bake(model, vec_path, target, progress=not options.quiet, **_gguf_kw(model, options.gguf_type), **kw)
    report["control"] = {
        "kind": kind, "seed": seed if direction is None else None, "direction_source": source,
        "direction_file": str(vec_path.resolve()), "reference": ref["source"],
        "reference_direction_sha256": ref.get("sha256"), "reference_layer": ref["bake"].get("layer"),
        "cos_to_reference": float(vec @ r / (np.linalg.norm(vec) * np.linalg.norm(r))),
        "same_as_reference": ["components", "weight", "profiles", "norm_preserve", "postnorm_correction"],
    }
    write_json(_report_dir(target) / REPORT_NAME, report)
    return report


def bake_target(model: Path, out: Path, tag: str) -> Path:
    """Where a bake of ``model`` goes: ``out`` itself (a folder, or a ``.gguf`` file), or for a GGUF
    model and a folder ``out``, ``out/<stem>.<tag>.gguf`` (the bake puts abliteration.json beside it)."""
    from abliterate.model import has_gguf_suffix

    out = Path(out)
    if has_gguf_suffix(model) and out.suffix.lower() != ".gguf":
        return out / f"{Path(model).stem}.{tag}.gguf"
    return out


def _report_dir(target: Path) -> Path:
    return target.parent if target.suffix.lower() == ".gguf" else target


def _gguf_kw(model: Path, gguf_type: str) -> dict:
    from abliterate.model import has_gguf_suffix

    return {"gguf_type": gguf_type} if has_gguf_suffix(model) else {}


def bake_run(options: BakeRunOptions) -> dict:
    """Bake the run's own edit (direction, components, strengths) into another copy of the model,
    e.g. its GGUF, so every arm of a benchmark carries the same edit; returns abliteration.json."""
    import torch

    from abliterate.bake.run import REPORT_NAME, bake

    model = options.model
    ref = reference_edit(options.run)
    kw = dict(ref["bake"])
    layer = kw.pop("layer", None)
    target = bake_target(model, options.out, "abliterated")
    report = bake(model, torch.from_numpy(ref["direction"]), target, progress=not options.quiet, layer=None,
                  **_gguf_kw(model, options.gguf_type), **kw)
    report["same_edit_as"] = {"reference": ref["source"], "reference_direction_sha256": ref.get("sha256"),
                              "reference_layer": layer}
    write_json(_report_dir(target) / REPORT_NAME, report)
    return report
