"""``ablbench abliterate contrast|capture|directions|bake|evaluate|pipeline`` (search etc.: _abliterate_search.py).

The library lives in :mod:`abliterate` (which knows nothing of the harness); this module wires
it to the agent's own prompt (:mod:`harness.prompt`), so the contrast set is what the model
sees on a benchmark's first turn: "refuse" = the task without the agent system prompt,
"comply" = with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from cyclopts import App

from harness.abliteration import agent_format_ok, contrast_inputs, print_evaluation, run_evaluation
from harness.commands._abliterate_checks import register as register_checks
from harness.commands._abliterate_search import register as register_search
from harness.commands._abliterate_shared import BATCH as _BATCH
from harness.commands._abliterate_shared import DEVICE as _DEVICE
from harness.commands._abliterate_shared import DTYPE as _DTYPE
from harness.commands._abliterate_shared import JUDGE as _JUDGE
from harness.commands._abliterate_shared import LAYERS_PATH as _LAYERS_PATH
from harness.commands._abliterate_shared import cli_errors as _errors
from harness.commands._typer_bridge import mount

if TYPE_CHECKING:
    from abliterate.capture import CaptureOptions
    from abliterate.contrast import ContrastOptions
    from abliterate.directions import DirectionsOptions

abl_app = typer.Typer(help="Find, choose, bake and evaluate a refusal direction.", no_args_is_help=True)


_PROMPTS = typer.Option(None, "--prompts", help="Labelled prompt file (.jsonl/.csv: prompt,label[,category]).")
_REFUSE = typer.Option(None, "--refuse-prompts", help="Prompts of the refuse bucket (.txt/.jsonl/.csv).")
_COMPLY = typer.Option(None, "--comply-prompts", help="Prompts of the comply bucket (.txt/.jsonl/.csv).")
_LIMIT = typer.Option(None, "--limit", help="Use at most N prompts per bucket (built-ins: spread over categories).")
_EVAL_FRACTION = typer.Option(0.2, "--eval-fraction", help="Share of prompts held out for evaluation.")
_SEED = typer.Option(0, "--seed", help="Seed of the train/eval split.")
_DISJOINT = typer.Option(False, "--disjoint-categories", help="Hold out whole categories (no category in both).")
_QUIET = typer.Option(False, "--quiet", help="No progress bars.")


@abl_app.command("contrast")
@_errors
def contrast_cmd(
    model: Path = typer.Option(
        ..., "--model", help="HF model folder or .gguf file (its chat template renders the prompts)."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder to write contrast_refuse/comply.jsonl into."),
    prompts: Path | None = _PROMPTS, refuse_prompts: Path | None = _REFUSE, comply_prompts: Path | None = _COMPLY,
    limit: int | None = _LIMIT, eval_fraction: float = _EVAL_FRACTION, seed: int = _SEED,
    disjoint_categories: bool = _DISJOINT,
) -> None:
    """Render the contrast set with the model's chat template and split it (seeded)."""
    from abliterate.contrast import ContrastOptions

    _contrast(ContrastOptions(model=model, out=out, prompts=prompts, refuse_prompts=refuse_prompts,
                              comply_prompts=comply_prompts, limit=limit, eval_fraction=eval_fraction, seed=seed,
                              disjoint_categories=disjoint_categories))


def _contrast(o: ContrastOptions) -> None:
    from abliterate.contrast import build_contrast, select, write_contrast
    from abliterate.model import load_tokenizer

    ri, ci, rb, cb, mode = contrast_inputs(o.prompts, o.refuse_prompts, o.comply_prompts, o.limit)
    refuse, comply = build_contrast(
        load_tokenizer(o.model), refuse_items=ri, comply_items=ci, refuse_messages=rb, comply_messages=cb,
        eval_fraction=o.eval_fraction, seed=o.seed, disjoint_categories=o.disjoint_categories,
    )
    paths = write_contrast(o.out, refuse, comply)
    typer.echo(f"{mode}: {len(refuse)} refuse ({len(select(refuse, 'eval'))} eval), "
               f"{len(comply)} comply ({len(select(comply, 'eval'))} eval)")
    for p in paths:
        typer.echo(p)


@abl_app.command("capture")
@_errors
def capture_cmd(
    model: Path = typer.Option(..., "--model", help="HF model folder or .gguf file (read through transformers)."),
    run: Path = typer.Option(..., "--run", help="Run folder holding the contrast files; writes run/activations."),
    batch_size: int = _BATCH, device: str = _DEVICE, dtype: str = _DTYPE, layers_path: str | None = _LAYERS_PATH,
    no_save_activations: bool = typer.Option(False, "--no-save-activations", help="Keep only the means."),
    quiet: bool = _QUIET,
) -> None:
    """Last-prompt-token residual stream of every decoder layer, for both buckets."""
    from abliterate.capture import CaptureOptions

    _capture(CaptureOptions(model=model, run=run, batch_size=batch_size, device=device, dtype=dtype,
                            layers_path=layers_path, no_save_activations=no_save_activations, quiet=quiet))


def _capture(o: CaptureOptions) -> None:
    from abliterate.capture import capture
    from abliterate.contrast import read_contrast
    from abliterate.model import load_model

    refuse, comply = read_contrast(o.run)
    lm = load_model(o.model, device=o.device, dtype=o.dtype, layers_path=o.layers_path)
    typer.echo(f"{lm.architecture}: {lm.n_layers} layers at {lm.layers_path}, d_model {lm.d_model}")
    meta = capture(lm, refuse, comply, o.run / "activations", batch_size=o.batch_size,
                   save_activations=not o.no_save_activations, show_progress=not o.quiet)
    for b, info in meta["buckets"].items():
        typer.echo(f"{b}: {info['n']} prompts, {info['tokens']} tokens, {info['seconds']} s")
    typer.echo(o.run / "activations")


@abl_app.command("directions")
@_errors
def directions_cmd(
    run: Path = typer.Option(..., "--run", help="Run folder with activations/ (and the contrast files)."),
    model: Path | None = typer.Option(None, "--model", help="Model for the behavioural choice (default: captured)."),
    variant: str = typer.Option("diff", "--variant", help="diff (mean difference) or projected."),
    layer: float | None = typer.Option(None, "--layer", help="Use this layer (fractional blends); skip the search."),
    candidates: str | None = typer.Option(None, "--candidates", help="Comma list of candidate layers."),
    n_candidates: int = typer.Option(6, "--n-candidates", help="Evenly spaced candidates outside the last 20%."),
    kl_bound: float = typer.Option(0.1, "--kl-bound", help="Reject candidates with comply-prompt KL above this."),
    gen_tokens: int = typer.Option(24, "--gen-tokens", help="Tokens of the short marker generations (0: none)."),
    no_choose: bool = typer.Option(False, "--no-choose", help="Only directions + diagnostics; no layer choice."),
    batch_size: int = _BATCH, device: str = _DEVICE, dtype: str = _DTYPE, layers_path: str | None = _LAYERS_PATH,
    quiet: bool = _QUIET,
) -> None:
    """Per-layer directions, eval-split diagnostics, and the behavioural layer choice."""
    from abliterate.directions import DirectionsOptions

    _directions(DirectionsOptions(
        run=run, model=model, variant=variant, layer=layer, candidates=_layer_list(candidates),
        n_candidates=n_candidates, kl_bound=kl_bound, gen_tokens=gen_tokens, no_choose=no_choose,
        batch_size=batch_size, device=device, dtype=dtype, layers_path=layers_path, quiet=quiet,
    ))


def _layer_list(candidates: str | None) -> tuple[int, ...] | None:
    """``--candidates 1,2`` as layer numbers (None when not given)."""
    return tuple(int(c) for c in candidates.split(",") if c.strip()) if candidates else None


def _directions(o: DirectionsOptions) -> None:
    from abliterate.contrast import read_contrast
    from abliterate.directions import write_directions
    from abliterate.fsio import write_json
    from abliterate.model import load_model
    from abliterate.pipeline import PipelineOptions, StepLog, choose_step

    run = o.run
    acts, vectors, reports = run / "activations", run / "vectors", run / "reports"
    res = write_directions(acts, vectors, variant=o.variant)
    write_json(reports / "directions.json", res)
    for row in res["layers"]:
        typer.echo(f"layer {row['layer']:3d}  auc {row['auc']:.3f}  sep {row['separation']:7.2f}  "
                   f"norm {row['norm']:9.3f}  cos_prev {row['cos_prev']:.3f}")
    if o.no_choose:
        return
    refuse, comply = read_contrast(run)
    model = o.model or Path(json.loads((acts / "meta.json").read_text())["model"])
    opts = PipelineOptions(
        variant=o.variant, layer=o.layer, n_candidates=o.n_candidates, kl_bound=o.kl_bound,
        choose_gen_tokens=o.gen_tokens, candidates=None if o.candidates is None else list(o.candidates),
        batch_size=o.batch_size, device=o.device, dtype=o.dtype, layers_path=o.layers_path,
        show_progress=not o.quiet,
    )
    rep = choose_step(lambda: load_model(model, device=o.device, dtype=o.dtype, layers_path=o.layers_path),
                      acts, vectors, reports, refuse, comply, opts, StepLog(run / "notes", "choose"))
    typer.echo(f"chosen layer {rep['chosen_layer']}: {rep['reason']}")
    typer.echo(vectors / "refusal_dir.pt")


@abl_app.command("evaluate")
@_errors
def evaluate_cmd(
    base: Path = typer.Option(..., "--base", help="The original HF model folder or .gguf file."),
    edited: Path | None = typer.Option(None, "--edited", help="The edited HF folder or .gguf (any abliteration)."),
    run: Path | None = typer.Option(None, "--run", help="Use this run's eval split (else the built-in prompts)."),
    out: Path | None = typer.Option(None, "--out", help="Folder for evaluation.json/.md (default: run/reports)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Greedy tokens per generation."),
    limit: int | None = typer.Option(None, "--limit", help="At most N prompts per bucket."),
    benign: int = typer.Option(12, "--benign", help="Everyday prompts for the over-refusal figure (0: none)."),
    judge: tuple[str, str] | None = _JUDGE,
    no_rd: bool = typer.Option(False, "--no-rd", help="Skip the SBERT drift (RD) of base vs edited replies."),
    batch_size: int = _BATCH, device: str = _DEVICE, dtype: str = _DTYPE, quiet: bool = _QUIET,
) -> None:
    """Base vs edited side by side: refusal (markers, optional judge) with Wilson intervals, over-refusal,
    RRR / CE / RD, first-token KL, generations."""
    from abliterate.evaluate.run import EvaluationOptions

    report, out_dir = run_evaluation(EvaluationOptions(
        base=base, edited=edited, run=run, out=out, max_new_tokens=max_new_tokens, limit=limit, benign=benign,
        judge=judge, no_rd=no_rd, batch_size=batch_size, device=device, dtype=dtype, quiet=quiet,
    ))
    print_evaluation(report, typer.echo)
    typer.echo(out_dir / "evaluation.md")


@abl_app.command("pipeline")
@_errors
def pipeline_cmd(
    model: Path = typer.Option(
        ..., "--model", help="HF model folder, or a .gguf file (then the bake writes a GGUF: GGUF in, GGUF out)."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder (created; rerunning resumes)."),
    prompts: Path | None = _PROMPTS, refuse_prompts: Path | None = _REFUSE, comply_prompts: Path | None = _COMPLY,
    limit: int | None = _LIMIT, eval_fraction: float = _EVAL_FRACTION, seed: int = _SEED,
    disjoint_categories: bool = _DISJOINT,
    variant: str = typer.Option("diff", "--variant", help="diff or projected."),
    layer: float | None = typer.Option(None, "--layer", help="Override the behavioural choice."),
    candidates: str | None = typer.Option(None, "--candidates", help="Comma list of candidate layers."),
    n_candidates: int = typer.Option(6, "--n-candidates", help="Evenly spaced candidates outside the last 20%."),
    kl_bound: float = typer.Option(0.1, "--kl-bound", help="Reject candidates with comply-prompt KL above this."),
    gen_tokens: int = typer.Option(24, "--gen-tokens", help="Tokens of the choice's marker generations (0: none)."),
    components: str = typer.Option("embed,attn,mlp,experts", "--components", help="What bake edits."),
    weight: float = typer.Option(1.0, "--weight", help="Bake strength (1.0 removes the direction)."),
    norm_preserve: bool = typer.Option(False, "--norm-preserve", help="Norm-preserving bake."),
    eval_tokens: int = typer.Option(128, "--eval-tokens", help="Greedy tokens per evaluation generation."),
    eval_limit: int | None = typer.Option(None, "--eval-limit", help="At most N eval prompts per bucket."),
    search: bool | None = typer.Option(None, "--search/--no-search",
                                       help="Optuna search instead of the one-layer choice (default: on with a GPU)."),
    search_trials: int = typer.Option(200, "--search-trials", help="Complete search trials (heretic: 200)."),
    search_prompts: int | None = typer.Option(None, "--search-prompts", help="Eval prompts per bucket per trial."),
    search_tokens: int = typer.Option(100, "--search-tokens", help="Greedy tokens of the refusal objective."),
    search_format_tokens: int = typer.Option(128, "--search-format-tokens", help="Tokens of the first agent reply."),
    demo_search: bool = typer.Option(False, "--demo-search",
                                     help="A search small enough for a CPU demo (a few minutes on SmolLM2)."),
    report_prompts: int = typer.Option(32, "--report-prompts", help="Refuse prompts for the direction report."),
    report_tokens: int = typer.Option(100, "--report-tokens", help="Greedy tokens for the direction report."),
    judge: tuple[str, str] | None = _JUDGE,
    no_rd: bool = typer.Option(False, "--no-rd", help="Skip the SBERT drift (RD) in the evaluation."),
    force: str = typer.Option("", "--force", help="Comma list of steps to rerun (or 'all')."),
    batch_size: int = _BATCH, device: str = _DEVICE, dtype: str = _DTYPE, layers_path: str | None = _LAYERS_PATH,
    quiet: bool = _QUIET,
) -> None:
    """contrast -> capture -> directions -> choose | search -> report -> bake -> evaluate, resumable."""
    from abliterate.pipeline import PipelineOptions, run_pipeline
    from abliterate.search.run import DEMO_SEARCH

    if demo_search:
        search = True
        search_trials, search_prompts = DEMO_SEARCH.trials, DEMO_SEARCH.prompts
        search_tokens, search_format_tokens = DEMO_SEARCH.gen_tokens, DEMO_SEARCH.format_tokens

    ri, ci, rb, cb, mode = contrast_inputs(prompts, refuse_prompts, comply_prompts, limit)
    typer.echo(mode)
    layers = _layer_list(candidates)
    opts = PipelineOptions(
        eval_fraction=eval_fraction, seed=seed, disjoint_categories=disjoint_categories, batch_size=batch_size,
        device=device, dtype=dtype, layers_path=layers_path, variant=variant, layer=layer,
        candidates=None if layers is None else list(layers), n_candidates=n_candidates, kl_bound=kl_bound,
        choose_gen_tokens=gen_tokens,
        components=tuple(c.strip() for c in components.split(",") if c.strip()), weight=weight,
        norm_preserve=norm_preserve, eval_tokens=eval_tokens, eval_limit=eval_limit, search=search,
        search_trials=search_trials, search_prompts=search_prompts, search_gen_tokens=search_tokens,
        search_format_tokens=search_format_tokens, report_prompts=report_prompts, report_tokens=report_tokens,
        judge=tuple(judge) if judge and judge[0] else None, rd=not no_rd,
        force=tuple(s.strip() for s in force.split(",") if s.strip()), show_progress=not quiet,
    )
    summary = run_pipeline(model, out, refuse_items=ri, comply_items=ci, refuse_messages=rb, comply_messages=cb,
                           options=opts, format_check=agent_format_ok)
    typer.echo(f"chosen layer {summary['chosen_layer']:g}" + (" (search)" if summary.get("search") else "")
               + f"; edited model: {summary['edited_model']}")
    for sentence in summary.get("direction_verdict") or []:
        typer.echo(sentence)
    for name, rr in summary["refusal_rate"].items():
        kl = summary["kl_first_token"].get(name, {}).get("mean")
        typer.echo(f"{name}: refusal rate {rr['base']:.3f} -> {rr['edited']:.3f}"
                   + (f"; first-token KL {kl:.4f}" if kl is not None else ""))
    typer.echo(out)


def _register_bake() -> None:
    """``abliterate bake`` is the bake engineer's command (harness/commands/_bake_cmd.py)."""
    from harness.commands._bake_cmd import bake_command

    abl_app.command("bake")(bake_command)


def register(app: App) -> None:
    """Add the ``abliterate`` verb group (still declared with typer: harness/commands/_typer_bridge.py)."""
    _register_bake()
    register_search(abl_app)
    register_checks(abl_app)
    mount(app, abl_app, "abliterate", "Find, choose, bake and evaluate a refusal direction.")
