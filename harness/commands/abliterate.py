"""``ablbench abliterate contrast|capture|directions|bake|evaluate|pipeline`` (search etc.: _abliterate_search.py).

Each verb takes its options object (flags generated from :mod:`abliterate.options`), calls one
function of :mod:`harness.abliteration` (which wires the library to the agent's own prompt), and
prints what comes back.
"""

from __future__ import annotations

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
from harness import abliteration
from harness.commands._abliterate_checks import register as register_checks
from harness.commands._abliterate_search import register as register_search
from harness.commands._abliterate_shared import abl_app, cli_errors
from harness.errors import echo

_Options = Parameter(name="*")


@abl_app.command(name="contrast")
def contrast_cmd(options: Annotated[ContrastOptions, _Options]) -> None:
    """Render the contrast set with the model's chat template and split it (seeded)."""
    with cli_errors("contrast"):
        paths = abliteration.contrast(options, log=echo)
    for path in paths:
        echo(path)


@abl_app.command(name="capture")
def capture_cmd(options: Annotated[CaptureOptions, _Options]) -> None:
    """Last-prompt-token residual stream of every decoder layer, for both buckets."""
    with cli_errors("capture"):
        echo(abliteration.capture(options, log=echo))


@abl_app.command(name="directions")
def directions_cmd(options: Annotated[DirectionsOptions, _Options]) -> None:
    """Per-layer directions, eval-split diagnostics, and the behavioural layer choice."""
    with cli_errors("directions"):
        chosen = abliteration.directions(options, log=echo)
    if chosen is not None:
        echo(chosen)


@abl_app.command(name="evaluate")
def evaluate_cmd(options: Annotated[EvaluationOptions, _Options]) -> None:
    """Base vs edited side by side: refusal (markers, optional judge) with Wilson intervals, over-refusal, RRR / CE / RD, first-token KL, generations."""
    with cli_errors("evaluate"):
        report, out_dir = abliteration.run_evaluation(options)
    abliteration.print_evaluation(report, echo)
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
        summary = abliteration.pipeline(model, out, options, prompts=prompts, refuse_prompts=refuse_prompts,
                                        comply_prompts=comply_prompts, limit=limit, demo_search=demo_search, log=echo)
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
