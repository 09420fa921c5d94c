"""``ablbench abliterate bake``: stream a checkpoint and orthogonalize its residual writers.

No ``register()`` here: ``harness/commands/abliterate.py`` registers :func:`bake_command`
as ``abliterate bake``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ablbench.errors import AblbenchError
from harness.errors import fail

_PROFILE_HELP = (
    "Per-layer strength profile of one component, heretic style: "
    "COMPONENT:peak=W,pos=P,edge=E,width=H (repeatable; e.g. attn:peak=1.0,pos=14,edge=0.2,width=8). "
    "Layers further than width from pos get 0; inside, the weight falls linearly from peak to edge. "
    "COMPONENT=W alone sets a flat weight."
)


def bake_command(
    model: Path = typer.Option(..., "--model", help="Source HF model folder (safetensors) or a .gguf file."),
    direction: Path = typer.Option(
        ..., "--direction", help="Direction file: (d,) vector (.npy/.pt/.safetensors) or refusal_dirs.safetensors."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Destination folder (must not exist or be empty); for a .gguf model, a new .gguf file."
    ),
    layer: float | None = typer.Option(
        None, "--layer", help="Row of a per-layer direction stack; fractional blends the two neighbours."
    ),
    components: str = typer.Option(
        "embed,attn,mlp,experts", "--components",
        help="Comma list of what to edit: embed (embedding rows; a tied lm_head follows), attn (o_proj, "
        "linear_attn.out_proj), mlp (dense down_proj), experts (routed MoE experts, per-expert or fused, and "
        "shared experts). Default: all four (the recipe of embed+attn+mlp, plus the MoE writers).",
    ),
    weight: float = typer.Option(1.0, "--weight", help="Global strength alpha (1.0 removes the direction)."),
    profile: list[str] = typer.Option([], "--profile", help=_PROFILE_HELP),
    norm_preserve: bool = typer.Option(
        False, "--norm-preserve", help="Keep every input-neuron column of each writer at its original norm."
    ),
    postnorm_correction: str = typer.Option(
        "auto", "--postnorm-correction",
        help="auto|on|off: project out normalize(g*r) for writers followed by a post-norm "
        "(auto = on for gemma2/gemma3/olmo2 sandwich-norm families).",
    ),
    skip_unknown_writers: bool = typer.Option(
        False, "--skip-unknown-writers",
        help="Copy writer-like tensors the tool cannot edit unchanged (listed loudly) instead of stopping.",
    ),
    gguf_type: str = typer.Option(
        "auto", "--gguf-type",
        help="GGUF only: type of the edited tensors: auto (F32/F16/BF16 keep their type, Q8_0 ones become F16, "
        "other quantized ones Q8_0), f32, f16, bf16 or q8_0. Biases are always F32.",
    ),
    q8_bound: float | None = typer.Option(
        None, "--q8-bound",
        help="GGUF only: Q8_0 output must keep max|r^T w'| <= BOUND * max|W| per tensor, else the bake stops "
        "(default 0.01; Q8_0 rounding alone measured <= 0.0027 on SmolLM2's Q4_1 writers).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would change; write nothing."),
) -> None:
    """Orthogonalize every residual-stream writer of MODEL against a direction, streaming tensor by tensor."""
    from abliterate.bake.run import BakeOptions, run_bake

    options = BakeOptions(
        model=model, direction=direction, out=out, layer=layer,
        components=tuple(c.strip() for c in components.split(",") if c.strip()), weight=weight,
        profile=tuple(profile), norm_preserve=norm_preserve, postnorm_correction=postnorm_correction,
        skip_unknown_writers=skip_unknown_writers, gguf_type=gguf_type, q8_bound=q8_bound, dry_run=dry_run,
    )
    try:
        report = run_bake(options)
    except AblbenchError as exc:  # BakeError included (an AbliterationError)
        raise fail(str(exc)) from exc
    _print_summary(report, options.out, options.dry_run)


def _print_summary(report: dict, out: Path, dry_run: bool) -> None:
    """One short human summary; the full record is abliteration.json (or stdout on a dry run)."""
    edited = report.get("edited", [])
    skipped = report.get("skipped", [])
    if dry_run:
        typer.echo(json.dumps({"would_edit": [e["key"] for e in edited], "skipped": skipped}, indent=2))
        typer.echo(f"dry run: {len(edited)} tensor(s) would be edited, {len(skipped)} skipped; nothing written")
        return
    for s in skipped:
        typer.secho(f"SKIPPED {s['key']}: {s['reason']}", err=True, fg=typer.colors.YELLOW)
    for f in report.get("not_copied", []):
        typer.secho(f"NOT COPIED {f['file']}: {f['reason']}", err=True, fg=typer.colors.YELLOW)
    where = out.parent if report.get("format") == "gguf" else out
    typer.echo(f"baked {len(edited)} tensor(s) into {out} (provenance: {where / 'abliteration.json'})")
