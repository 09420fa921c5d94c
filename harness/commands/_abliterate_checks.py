"""``ablbench abliterate control|bake-run|direction-report|judge-check``: controls and the refusal checks.

Library: :mod:`abliterate.control`, :mod:`abliterate.direction_report`, :mod:`abliterate.evaluate.judge`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from harness.commands._abliterate_shared import BATCH, DEVICE, DTYPE, JUDGE, LAYERS_PATH, cli_errors

if TYPE_CHECKING:
    from abliterate.direction_report import DirectionReportOptions
    from abliterate.evaluate.judge import JudgeCheckOptions


def control_cmd(
    model: Path = typer.Option(..., "--model", help="The HF model folder the run baked."),
    run: Path = typer.Option(..., "--run", help="Run folder with abliterated_model/ (or search/chosen.json)."),
    out: Path = typer.Option(..., "--out", help="Folder for the control model (new or empty)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random direction."),
    direction: Path | None = typer.Option(
        None, "--direction", help="Bake this direction instead (a second contrast's), with the same strengths."),
    layer: float | None = typer.Option(None, "--layer", help="Row of --direction when it is a per-layer stack."),
    gguf_type: str = typer.Option("auto", "--gguf-type",
                                  help="For a .gguf model: how edited tensors are stored (auto, f16, ...); "
                                  "f16 for partial-strength (search) edits of a quantized model."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Bake a control: a seeded random direction orthogonal to the run's, same layers, strengths, components."""
    from abliterate.control import ControlOptions, bake_control, bake_target

    rep = bake_control(ControlOptions(model=model, run=run, out=out, seed=seed, direction=direction, layer=layer,
                                      gguf_type=gguf_type, quiet=quiet))
    c = rep["control"]
    typer.echo(f"control ({c['kind']}, seed {c['seed']}): {len(rep['edited'])} tensor(s) edited, "
               f"cos to the run's direction {c['cos_to_reference']:.2e}")
    target = bake_target(model, out, "control")
    if target.suffix == ".gguf":  # the run's own edit is baked into the HF copy: bake it into a GGUF too
        abl = out.parent / "abliterated.gguf"
        typer.echo(f"the run's edit as a GGUF: ablbench abliterate bake-run --model {model} --run {run} --out {abl}")
    else:
        abl = run / "abliterated_model"
    typer.echo(f"three-arm benchmark: scripts/full_bench_parallel.sh --model base={model} "
               f"--model abl={abl} --model control={target}")
    typer.echo(target)


def bake_run_cmd(
    model: Path = typer.Option(..., "--model", help="The model to edit (an HF folder or a .gguf file)."),
    run: Path = typer.Option(..., "--run", help="Run folder with abliterated_model/ (or search/chosen.json)."),
    out: Path = typer.Option(..., "--out", help="Folder (or .gguf file) for the edited copy."),
    gguf_type: str = typer.Option("auto", "--gguf-type",
                                  help="For a .gguf model: how edited tensors are stored (auto, f16, ...); "
                                  "f16 for partial-strength (search) edits of a quantized model."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Bake the run's edit (its direction, components and strengths, search profile included) into another copy."""
    from abliterate.control import BakeRunOptions, bake_run

    rep = bake_run(BakeRunOptions(model=model, run=run, out=out, gguf_type=gguf_type, quiet=quiet))
    typer.echo(f"baked {len(rep['edited'])} tensor(s), the same edit as {rep['same_edit_as']['reference']}")
    typer.echo(out)


def direction_report_cmd(
    model: Path = typer.Option(..., "--model", help="The HF model folder the run was made from."),
    run: Path = typer.Option(..., "--run", help="Run folder with vectors/refusal_dir.pt and reports/choice.json."),
    prompts: int = typer.Option(32, "--prompts", help="Refuse-bucket prompts for the base marker rate."),
    gen_tokens: int = typer.Option(100, "--gen-tokens", help="Greedy tokens per reply."),
    floor: float = typer.Option(0.1, "--refusal-floor", help="'Measurably refuses' = Wilson lower bound >= this."),
    batch_size: int = BATCH, device: str = DEVICE, dtype: str = DTYPE, layers_path: str | None = LAYERS_PATH,
) -> None:
    """Does the base refuse the refuse bucket, and is the direction mostly 'a system prompt is present'?"""
    from abliterate.direction_report import DirectionReportOptions

    _direction_report(DirectionReportOptions(model=model, run=run, prompts=prompts, gen_tokens=gen_tokens,
                                             floor=floor, batch_size=batch_size, device=device, dtype=dtype,
                                             layers_path=layers_path))


def _direction_report(o: DirectionReportOptions) -> None:
    from abliterate.direction_report import MD_FILE, direction_report
    from abliterate.model import load_model

    lm = load_model(o.model, device=o.device, dtype=o.dtype, layers_path=o.layers_path)
    rep = direction_report(lm, o.run, n_prompts=o.prompts, gen_tokens=o.gen_tokens, refusal_floor=o.floor,
                           batch_size=o.batch_size)
    for sentence in rep["verdict"]:
        typer.echo(sentence)
    typer.echo(o.run / "reports" / MD_FILE)


def judge_check_cmd(
    judge: tuple[str, str] = JUDGE,
    out: Path | None = typer.Option(None, "--out", help="Write the agreement (with every item) as JSON here."),
    workers: int = typer.Option(4, "--workers", help="Requests in flight at once."),
) -> None:
    """Cohen's kappa of an LLM judge against the shipped labelled set (64 replies, four kinds)."""
    from abliterate.evaluate.judge import JudgeCheckOptions

    _judge_check(JudgeCheckOptions(judge=judge, out=out, workers=workers))


def _judge_check(o: JudgeCheckOptions) -> None:
    from abliterate.errors import AbliterationError
    from abliterate.evaluate.judge import Judge, agreement
    from abliterate.fsio import write_json

    if not o.judge or not o.judge[0]:
        raise AbliterationError("judge-check needs --judge URL MODEL (an OpenAI-compatible server)")
    ag = agreement(Judge(o.judge[0], o.judge[1], workers=o.workers))
    typer.echo(f"judge {ag['model']} ({ag['prompt_version']}): kappa {ag['kappa_binary']:.3f} binary, "
               f"{ag['kappa_4_labels']:.3f} on four labels, binary accuracy {ag['accuracy_binary']:.3f}, "
               f"unparsed {ag['unparsed']} of {ag['n']}; refusal markers: kappa {ag['markers_kappa_binary']:.3f}")
    if o.out:
        write_json(o.out, ag)
        typer.echo(o.out)


def register(abl_app: typer.Typer) -> None:
    """Add the commands to the ``abliterate`` group."""
    abl_app.command("control")(cli_errors(control_cmd))
    abl_app.command("direction-report")(cli_errors(direction_report_cmd))
    abl_app.command("judge-check")(cli_errors(judge_check_cmd))
    abl_app.command("bake-run")(cli_errors(bake_run_cmd))
