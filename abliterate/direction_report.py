"""What the baked direction is: a refusal direction, or "a system prompt is present"?

The report, in order:
1. Does the base model measurably refuse the "refuse" bucket? Greedy replies of ``gen_tokens``
   tokens (100) to up to ``n_prompts`` refuse-bucket prompts (spread evenly over the bucket)
   are checked for refusal markers. The base model measurably refuses when the LOWER end of the
   95% Wilson interval of its marker rate is at least ``refusal_floor`` (0.1).
2. A second contrast measures "system-prompt presence": neutral everyday questions rendered
   without a system message (what the model gets by default) and with a neutral system prompt
   (abliterate/prompts.py). Its per-layer direction is ``p_l = normalize(mean_without -
   mean_with)``, signed like the refusal direction (refuse = no agent system prompt), and is
   saved as ``vectors/sysprompt_dirs.safetensors`` (usable as a control direction).
3. The projection of the baked direction onto p at the chosen (fractional) layer: the cosine,
   and its square, the share of the direction that lies along p. Per-layer cosines between the
   refusal and presence directions are listed too.
4. Verdict: "mostly system-prompt presence" when that share is >= 0.5 (|cos| >= 0.71), with a
   plain warning sentence; "partly" when |cos| >= 0.3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from abliterate.capture import capture_records
from abliterate.contrast import make_records, read_contrast
from abliterate.directions import blend, compute_directions, load_directions, unit_rows
from abliterate.errors import AbliterationError
from abliterate.evaluate.markers import is_refusal
from abliterate.evaluate.refusal_stats import rate_with_ci
from abliterate.fsio import atomic_path, write_json, write_text
from abliterate.infer import generate
from abliterate.model import LoadedModel
from abliterate.options import DirectionReportOptions as DirectionReportOptions  # re-exported: the step's own options
from abliterate.prompts import NEUTRAL_SYSTEM_PROMPT, neutral_prompts

JSON_FILE = "direction_report.json"
MD_FILE = "direction_report.md"
PRESENCE_FILE = "sysprompt_dirs.safetensors"
MOSTLY_SHARE = 0.5
PARTLY_COS = 0.3


def spread(records: list[dict], n: int | None) -> list[dict]:
    """At most ``n`` records, evenly spaced over the list (all when ``n`` is None)."""
    if not n or n >= len(records):
        return list(records)
    idx = np.linspace(0, len(records) - 1, n).round().astype(int)
    return [records[i] for i in sorted(set(idx.tolist()))]


def presence_directions(lm: LoadedModel, batch_size: int = 8) -> tuple[np.ndarray, int]:
    """Per-layer unit "system-prompt presence" directions [L, d] (rule 2) and the prompt count."""
    items = neutral_prompts()
    split = {it.id: "train" for it in items}

    def without(p: str) -> list[dict]:
        return [{"role": "user", "content": p}]

    def with_system(p: str) -> list[dict]:
        return [{"role": "system", "content": NEUTRAL_SYSTEM_PROMPT}, {"role": "user", "content": p}]

    means = []
    for builder in (without, with_system):
        recs = make_records(lm.tokenizer, items, builder, "neutral", split)
        sums, _ = capture_records(lm, recs, None, batch_size=batch_size)
        means.append(sums["all"] / len(recs))
    dirs = compute_directions(means[0], means[1])["diff"]
    return dirs, len(items)


def verdict_sentences(base_refusal: dict, floor: float, cos: float, layer: float, refuses: bool) -> list[str]:
    """Plain sentences for the report (rules 1 and 4)."""
    lo, hi = base_refusal["ci"]
    out = []
    if refuses:
        out.append(f"The base model measurably refuses the 'refuse' bucket: marker rate {base_refusal['rate']:.3f} "
                   f"(95% CI {lo:.2f}-{hi:.2f}, n={base_refusal['n']}), lower bound >= {floor:g}.")
    else:
        out.append(f"The base model does NOT measurably refuse the 'refuse' bucket: marker rate "
                   f"{base_refusal['rate']:.3f} (95% CI {lo:.2f}-{hi:.2f}, n={base_refusal['n']}), lower bound "
                   f"below {floor:g}. This contrast is not shown to be a refusal contrast: the direction is whatever "
                   "separates the two buckets.")
    share = cos * cos
    if share >= MOSTLY_SHARE:
        out.append(f"WARNING: the baked direction is mostly 'a system prompt is present / absent' (cosine {cos:+.2f} "
                   f"with the system-prompt-presence direction at layer {layer:g}; {share:.0%} of it lies along "
                   "that direction). Removing it changes how the model treats having a system prompt at all, not "
                   "refusal as such.")
    elif abs(cos) >= PARTLY_COS:
        out.append(f"The baked direction is partly system-prompt presence (cosine {cos:+.2f} at layer {layer:g}, "
                   f"{share:.0%} of it).")
    else:
        out.append(f"The baked direction is not mainly system-prompt presence (cosine {cos:+.2f} at layer "
                   f"{layer:g}).")
    return out


def direction_report(lm: LoadedModel, run: Path, *, direction=None, layer: float | None = None,
                     n_prompts: int | None = 32, gen_tokens: int = 100, refusal_floor: float = 0.1,
                     batch_size: int = 8, out_dir: Path | None = None) -> dict:
    """Build the report for ``run`` (default direction: vectors/refusal_dir.pt at the chosen layer)."""
    import json

    import torch
    from safetensors.torch import save_file

    run = Path(run)
    if direction is None or layer is None:
        choice_path = run / "reports" / "choice.json"
        vec_path = run / "vectors" / "refusal_dir.pt"
        if not choice_path.is_file() or not vec_path.is_file():
            raise AbliterationError(f"{run} has no chosen direction yet: run `ablbench abliterate directions` "
                                    "(or the pipeline) first")
        layer = float(json.loads(choice_path.read_text())["chosen_layer"]) if layer is None else layer
        direction = torch.load(vec_path, weights_only=True).numpy() if direction is None else direction
    r = np.asarray(direction, dtype=np.float64).ravel()
    r = r / np.linalg.norm(r)
    refuse, _ = read_contrast(run)
    probe = spread(refuse, n_prompts)
    replies = generate(lm, probe, max_new_tokens=gen_tokens, batch_size=batch_size)
    base_refusal = rate_with_ci([is_refusal(t) for t in replies])
    refuses = base_refusal["ci"][0] >= refusal_floor
    presence, n_neutral = presence_directions(lm, batch_size)
    with atomic_path(run / "vectors" / PRESENCE_FILE) as tmp:
        save_file({"directions": torch.from_numpy(presence).float().contiguous()}, str(tmp),
                  metadata={"contrast": "neutral questions without - with a neutral system prompt"})
    p = blend(presence, float(layer))
    cos = float(r @ p)
    stack, _ = load_directions(run / "vectors")
    stack_u, _ = unit_rows(np.asarray(stack, dtype=np.float64))
    per_layer = [float(x) for x in np.sum(stack_u * presence, axis=1)]
    report = {
        "direction_layer": layer, "gen_tokens": gen_tokens, "refusal_floor": refusal_floor,
        "base_refusal": {**base_refusal, "prompts": [r_["id"] for r_ in probe]},
        "base_measurably_refuses": refuses,
        "presence_contrast": {"n_prompts": n_neutral, "system_prompt": NEUTRAL_SYSTEM_PROMPT,
                              "file": str(run / "vectors" / PRESENCE_FILE)},
        "cos_with_presence": cos, "share_along_presence": cos * cos,
        "mostly_presence": cos * cos >= MOSTLY_SHARE,
        "cos_per_layer": per_layer,
        "samples": [{"id": rec["id"], "prompt": rec["prompt"], "reply": t} for rec, t in zip(probe, replies,
                                                                                          strict=True)][:5],
    }
    report["verdict"] = verdict_sentences(base_refusal, refusal_floor, cos, float(layer), refuses)
    out_dir = Path(out_dir) if out_dir else run / "reports"
    write_json(out_dir / JSON_FILE, report)
    write_text(out_dir / MD_FILE, to_markdown(report))
    return report


def to_markdown(rep: dict) -> str:
    """The report as a short page."""
    lines = ["# What the direction is", "", *[f"- {s}" for s in rep["verdict"]], "",
             "| layer | cos(refusal dir, presence dir) |", "|---|---|"]
    lines += [f"| {k} | {c:+.3f} |" for k, c in enumerate(rep["cos_per_layer"])]
    lines += ["", f"Presence contrast: {rep['presence_contrast']['n_prompts']} neutral questions without / with the "
              f"system prompt \"{rep['presence_contrast']['system_prompt']}\".", "",
              f"Base replies ({rep['gen_tokens']} greedy tokens) to the first refuse-bucket prompts:", ""]
    for s in rep["samples"]:
        lines += [f"- **{s['prompt']}**: {s['reply'][:300]!r}"]
    return "\n".join(lines) + "\n"
