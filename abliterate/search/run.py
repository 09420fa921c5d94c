"""``abliterate search``: a heretic-style parameter search, evaluated with hooks, resumable.

Reads a run folder that already has the contrast and the direction stacks (``abliterate
pipeline``, or contrast + capture + directions) and writes ``RUN/search/``:

    study.sqlite3      the Optuna study (kill the search at any time; rerun to resume)
    base.json          the unedited model's objectives on the same prompts
    trials.csv         every complete trial: objectives (counts, Wilson intervals) and parameters
    pareto.csv         the non-dominated trials, with the chosen one marked
    pareto.png         the front, pair of objectives by pair
    chosen.json        the chosen trial (rule: abliterate/search/front.py) as a bake profile
    chosen_direction.pt  its unit direction, for ``abliterate bake --direction``

Prompts are the held-out (eval) split of each bucket (the train split when eval is empty),
at most ``prompts`` per bucket. Search space: abliterate/search/space.py; objectives:
abliterate/search/objectives.py; study and resume rules: abliterate/search/study.py.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from abliterate.contrast import read_contrast, select
from abliterate.directions import DIRS_FILE
from abliterate.errors import AbliterationError
from abliterate.fsio import atomic_path, file_sha256, write_json
from abliterate.options import SearchOptions
from abliterate.search.front import PARETO_CSV, PLOT_FILE, TRIALS_CSV, choose_trial, plot_front, trial_row, write_rows
from abliterate.search.objectives import Budget, FormatCheck, TrialEvaluator
from abliterate.search.space import SEARCH_COMPONENTS, from_params, suggest
from abliterate.search.study import STUDY_FILE, completed, pareto_trials, run_study

SEARCH_DIR = "search"
CHOSEN_FILE = "chosen.json"
CHOSEN_DIRECTION = "chosen_direction.pt"
BASE_FILE = "base.json"


#: ``abliterate pipeline --demo-search``: a few minutes on SmolLM2 on two CPU cores
DEMO_SEARCH = SearchOptions(trials=8, prompts=4, gen_tokens=48, format_tokens=64)


def search_prompts(run: Path, limit: int | None) -> tuple[list[dict], list[dict]]:
    """The eval split of each bucket (train when eval is empty), at most ``limit`` each."""
    refuse, comply = read_contrast(run)
    refuse, comply = select(refuse, "eval") or refuse, select(comply, "eval") or comply
    if limit:
        refuse, comply = refuse[:limit], comply[:limit]
    return refuse, comply


def load_stacks(run: Path) -> dict[str, np.ndarray]:
    """Both direction variants [L, d] from ``vectors/refusal_dirs.safetensors``."""
    from safetensors import safe_open

    path = Path(run) / "vectors" / DIRS_FILE
    if not path.is_file():
        raise AbliterationError(f"{path} not found: run `ablbench abliterate pipeline` (or contrast, capture and "
                                "directions) on this run folder first")
    with safe_open(str(path), framework="numpy") as fh:
        return {v: fh.get_tensor(f"directions_{v}") for v in ("diff", "projected")}


def _settings(model: Path, run: Path, refuse: list[dict], comply: list[dict], opts: SearchOptions,
              objectives: list[str]) -> tuple[dict, str]:
    prompts = hashlib.sha256(json.dumps([[r["id"], r["text"]] for r in refuse + comply]).encode()).hexdigest()[:16]
    settings = {
        "model": (file_sha256(Path(model) / "config.json") if Path(model).is_dir()
                  else [Path(model).name, Path(model).stat().st_size]),
        "directions_sha256": file_sha256(Path(run) / "vectors" / DIRS_FILE),
        "prompts_sha256": prompts, "n_refuse": len(refuse), "n_comply": len(comply),
        "gen_tokens": opts.gen_tokens, "format_tokens": opts.format_tokens, "objectives": objectives,
        "components": list(SEARCH_COMPONENTS), "dtype": opts.dtype,
    }
    return settings, hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _fmt_ci(res: dict, name: str) -> str:
    ci = res.get(f"{name}_ci")
    return f"{res[name]:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def run_search(model: Path, run: Path, opts: SearchOptions | None = None, *, format_check: FormatCheck | None = None,
               log: Callable[[str], None] = print, lm=None) -> dict:
    """Run or resume the search, then write the front and the chosen trial; returns chosen.json's content."""
    from abliterate.model import load_model

    opts = opts or SearchOptions()
    model, run = Path(model), Path(run)
    folder = run / SEARCH_DIR
    stacks = load_stacks(run)
    refuse, comply = search_prompts(run, opts.prompts)
    objectives = ["refusal", "kl", "format_damage"] if format_check else ["refusal", "kl"]
    settings, key = _settings(model, run, refuse, comply, opts, objectives)
    if lm is None:
        lm = load_model(model, device=opts.device, dtype=opts.dtype, layers_path=opts.layers_path)
    if stacks["diff"].shape != (lm.n_layers, lm.d_model):
        raise AbliterationError(f"the directions in {run} have shape {stacks['diff'].shape}, not "
                                f"({lm.n_layers}, {lm.d_model}): they were computed on another model")
    folder.mkdir(parents=True, exist_ok=True)
    if opts.fresh:
        (folder / BASE_FILE).unlink(missing_ok=True)
    evaluator = TrialEvaluator(lm, stacks, refuse, comply, budget=Budget(opts.gen_tokens, opts.format_tokens,
                                                                          opts.batch_size), format_check=format_check)
    base = _base_objectives(folder, evaluator, key, log)
    log(f"{len(refuse)} refuse / {len(comply)} comply prompts; base model: refusal {_fmt_ci(base, 'refusal')}"
        + (f", format damage {_fmt_ci(base, 'format_damage')}" if format_check else ""))

    def on_trial(t) -> None:
        if t.values is None:
            return
        res = {**t.user_attrs, **dict(zip(objectives, t.values, strict=True))}
        log(f"trial {t.number}: refusal {_fmt_ci(res, 'refusal')}, KL {res['kl']:.4f}"
            + (f", format damage {_fmt_ci(res, 'format_damage')}" if format_check else "")
            + f" ({res.get('seconds', 0):.1f} s)")

    study = run_study(folder, objectives=objectives, space=lambda t: suggest(t, lm.n_layers), evaluate=evaluator,
                      trials=opts.trials, seed=opts.seed, startup=opts.startup, settings_key=key, fresh=opts.fresh,
                      log=log, on_trial=on_trial)
    return write_outputs(model, run, study, objectives, base, lm.n_layers, stacks, opts, settings)


def _base_objectives(folder: Path, evaluator: TrialEvaluator, key: str, log: Callable[[str], None]) -> dict:
    path = folder / BASE_FILE
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("settings_key") == key:
            return cached["objectives"]
    log("measuring the unedited model on the search prompts")
    base = evaluator.base()
    write_json(path, {"settings_key": key, "objectives": base})
    return base


def write_outputs(model: Path, run: Path, study, objectives: list[str], base: dict, n_layers: int,
                  stacks: dict[str, np.ndarray], opts: SearchOptions, settings: dict) -> dict:
    """trials.csv, pareto.csv, pareto.png, chosen.json and chosen_direction.pt from the study."""
    import torch

    from abliterate.directions import blend

    folder = Path(run) / SEARCH_DIR
    rows = [trial_row(t, objectives) for t in completed(study)]
    front_ids = {t.number for t in pareto_trials(study)}
    front = [r for r in rows if r["trial"] in front_ids]
    if opts.trial is not None:
        picked = [r for r in rows if r["trial"] == opts.trial]
        if not picked:
            raise AbliterationError(f"--trial {opts.trial} is not a complete trial of this study: pick one from "
                                    f"{folder / TRIALS_CSV}")
        chosen, reason = picked[0], f"--trial {opts.trial} (chosen by the user)"
    else:
        chosen, reason = choose_trial(front, objectives, base, kl_bound=opts.kl_bound,
                                      damage_tolerance=opts.damage_tolerance)
    for r in rows:
        r["pareto"] = int(r["trial"] in front_ids)
        r["chosen"] = int(r["trial"] == chosen["trial"])
    write_rows(folder / TRIALS_CSV, rows)
    write_rows(folder / PARETO_CSV, [r for r in rows if r["pareto"]])
    plot_front(folder / PLOT_FILE, rows, front_ids, objectives, chosen["trial"], base)
    trial = next(t for t in completed(study) if t.number == chosen["trial"])
    params = from_params(trial.params, n_layers)
    vec = blend(stacks[params.variant], params.direction_index)
    with atomic_path(folder / CHOSEN_DIRECTION) as tmp:
        torch.save(torch.from_numpy(np.asarray(vec, dtype=np.float32)).contiguous(), tmp)
    profiles = {c: p.as_dict() for c, p in params.profiles().items()}
    doc = {
        "trial": chosen["trial"], "rule": reason,
        "objectives": {o: chosen[o] for o in objectives},
        "intervals": {o: [chosen.get(f"{o}_ci_low"), chosen.get(f"{o}_ci_high")] for o in objectives
                      if chosen.get(f"{o}_ci_low") is not None},
        "base": {o: base.get(o) for o in objectives if o in base},
        "variant": params.variant, "direction_index": params.direction_index, "params": dict(trial.params),
        "components": list(SEARCH_COMPONENTS), "profiles": profiles,
        "direction_file": str((folder / CHOSEN_DIRECTION).resolve()),
        "front_size": len(front), "trials_complete": len(rows), "study": str((folder / STUDY_FILE).resolve()),
        "settings": {**settings, **{k: v for k, v in asdict(opts).items() if k not in {"fresh"}}},
        "bake_command": bake_command(model, folder / CHOSEN_DIRECTION, params.direction_index, profiles),
    }
    write_json(folder / CHOSEN_FILE, doc)
    return doc


def bake_command(model: Path, direction: Path, layer: float, profiles: dict[str, dict]) -> str:
    """The equivalent ``ablbench abliterate bake`` command line."""
    parts = ["ablbench", "abliterate", "bake", "--model", str(model), "--direction", str(direction),
             "--layer", f"{layer:.6g}", "--components", ",".join(SEARCH_COMPONENTS), "--out", "EDITED_DIR"]
    for comp, p in profiles.items():
        width = "inf" if p["width"] is None else f"{p['width']:.6g}"
        parts += ["--profile", f"{comp}:peak={p['peak']:.6g},pos={p['pos']:.6g},edge={p['edge']:.6g},width={width}"]
    return shlex.join(parts)


def read_chosen(run: Path) -> dict:
    """``RUN/search/chosen.json`` (clear error when the search has not run)."""
    path = Path(run) / SEARCH_DIR / CHOSEN_FILE
    if not path.is_file():
        raise AbliterationError(f"{path} not found: run `ablbench abliterate search` on {run} first")
    return json.loads(path.read_text())


def bake_kwargs(chosen: dict) -> dict:
    """Keyword arguments for ``abliterate.bake.run.bake`` that reproduce the chosen trial's edit."""
    return {"layer": float(chosen["direction_index"]), "components": tuple(chosen["components"]),
            **{c: dict(p) for c, p in chosen["profiles"].items()}}
