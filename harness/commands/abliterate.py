"""``ablbench abliterate contrast|capture|directions|bake|evaluate|pipeline`` (search etc.: _abliterate_search.py).

The library lives in :mod:`abliterate` (which knows nothing of the harness); this module wires
it to the agent's own prompt (:mod:`harness.prompt`), so the contrast set is what the model
sees on a benchmark's first turn: "refuse" = the task without the agent system prompt,
"comply" = with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from abliterate.options import (
    CaptureOptions,
    ComplyPrompts,
    ContrastOptions,
    DirectionsOptions,
    EvaluationOptions,
    Limit,
    PipelineOptions,
    Prompts,
    RefusePrompts,
)
from harness.abliteration import agent_format_ok, contrast_inputs, print_evaluation, run_evaluation
from harness.commands._abliterate_checks import register as register_checks
from harness.commands._abliterate_search import register as register_search
from harness.commands._abliterate_shared import abl_app, cli_errors
from harness.errors import echo

_Options = Parameter(name="*")


@abl_app.command(name="contrast")
def contrast_cmd(options: Annotated[ContrastOptions, _Options]) -> None:
    """Render the contrast set with the model's chat template and split it (seeded)."""
    with cli_errors("contrast"):
        _contrast(options)


def _contrast(o: ContrastOptions) -> None:
    from abliterate.contrast import build_contrast, select, write_contrast
    from abliterate.model import load_tokenizer

    ri, ci, rb, cb, mode = contrast_inputs(o.prompts, o.refuse_prompts, o.comply_prompts, o.limit)
    refuse, comply = build_contrast(
        load_tokenizer(o.model), refuse_items=ri, comply_items=ci, refuse_messages=rb, comply_messages=cb,
        eval_fraction=o.eval_fraction, seed=o.seed, disjoint_categories=o.disjoint_categories,
    )
    paths = write_contrast(o.out, refuse, comply)
    echo(f"{mode}: {len(refuse)} refuse ({len(select(refuse, 'eval'))} eval), "
               f"{len(comply)} comply ({len(select(comply, 'eval'))} eval)")
    for p in paths:
        echo(p)


@abl_app.command(name="capture")
def capture_cmd(options: Annotated[CaptureOptions, _Options]) -> None:
    """Last-prompt-token residual stream of every decoder layer, for both buckets."""
    with cli_errors("capture"):
        _capture(options)


def _capture(o: CaptureOptions) -> None:
    from abliterate.capture import capture
    from abliterate.contrast import read_contrast
    from abliterate.model import load_model

    refuse, comply = read_contrast(o.run)
    lm = load_model(o.model, device=o.device, dtype=o.dtype, layers_path=o.layers_path)
    echo(f"{lm.architecture}: {lm.n_layers} layers at {lm.layers_path}, d_model {lm.d_model}")
    meta = capture(lm, refuse, comply, o.run / "activations", batch_size=o.batch_size,
                   save_activations=not o.no_save_activations, show_progress=not o.quiet)
    for b, info in meta["buckets"].items():
        echo(f"{b}: {info['n']} prompts, {info['tokens']} tokens, {info['seconds']} s")
    echo(o.run / "activations")


@abl_app.command(name="directions")
def directions_cmd(options: Annotated[DirectionsOptions, _Options]) -> None:
    """Per-layer directions, eval-split diagnostics, and the behavioural layer choice."""
    with cli_errors("directions"):
        _directions(options)


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
        echo(f"layer {row['layer']:3d}  auc {row['auc']:.3f}  sep {row['separation']:7.2f}  "
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
    echo(f"chosen layer {rep['chosen_layer']}: {rep['reason']}")
    echo(vectors / "refusal_dir.pt")


@abl_app.command(name="evaluate")
def evaluate_cmd(options: Annotated[EvaluationOptions, _Options]) -> None:
    """Base vs edited side by side: refusal (markers, optional judge) with Wilson intervals, over-refusal, RRR / CE / RD, first-token KL, generations."""
    with cli_errors("evaluate"):
        report, out_dir = run_evaluation(options)
    print_evaluation(report, echo)
    echo(out_dir / "evaluation.md")


@abl_app.command(name="pipeline")
def pipeline_cmd(
    *,
    model: Annotated[Path, Parameter(help="HF model folder, or a .gguf file (then the bake writes a GGUF: GGUF in, GGUF out).")],
    out: Annotated[Path, Parameter(help="Run folder (created; rerunning resumes).")],
    prompts: Prompts = None,
    refuse_prompts: RefusePrompts = None,
    comply_prompts: ComplyPrompts = None,
    limit: Limit = None,
    demo_search: Annotated[bool, Parameter(help="A search small enough for a CPU demo (a few minutes on SmolLM2).")] = False,
    options: Annotated[PipelineOptions, _Options] = PipelineOptions(),
) -> None:
    """contrast -> capture -> directions -> choose | search -> report -> bake -> evaluate, resumable."""
    with cli_errors("pipeline"):
        _pipeline(model, out, prompts, refuse_prompts, comply_prompts, limit, demo_search, options)


def _pipeline(model: Path, out: Path, prompts: Path | None, refuse_prompts: Path | None,
              comply_prompts: Path | None, limit: int | None, demo_search: bool, opts: PipelineOptions) -> None:
    from dataclasses import replace

    from abliterate.pipeline import run_pipeline
    from abliterate.search.run import DEMO_SEARCH

    if demo_search:
        opts = replace(opts, search=True, search_trials=DEMO_SEARCH.trials, search_prompts=DEMO_SEARCH.prompts,
                       search_gen_tokens=DEMO_SEARCH.gen_tokens, search_format_tokens=DEMO_SEARCH.format_tokens)
    ri, ci, rb, cb, mode = contrast_inputs(prompts, refuse_prompts, comply_prompts, limit)
    echo(mode)
    if opts.judge and not opts.judge[0]:
        opts = replace(opts, judge=None)
    summary = run_pipeline(model, out, refuse_items=ri, comply_items=ci, refuse_messages=rb, comply_messages=cb,
                           options=opts, format_check=agent_format_ok)
    echo(f"chosen layer {summary['chosen_layer']:g}" + (" (search)" if summary.get("search") else "")
               + f"; edited model: {summary['edited_model']}")
    for sentence in summary.get("direction_verdict") or []:
        echo(sentence)
    for name, rr in summary["refusal_rate"].items():
        kl = summary["kl_first_token"].get(name, {}).get("mean")
        echo(f"{name}: refusal rate {rr['base']:.3f} -> {rr['edited']:.3f}"
                   + (f"; first-token KL {kl:.4f}" if kl is not None else ""))
    echo(out)


def register(app: App) -> None:
    """Add the ``abliterate`` verb group."""
    from harness.commands._bake_cmd import bake_command

    abl_app.command(bake_command, name="bake")
    register_search(abl_app)
    register_checks(abl_app)
    app.command(abl_app)
