"""``ablbench abliterate control|bake-run|direction-report|judge-check``: controls and the refusal checks.

Library: :mod:`abliterate.control`, :mod:`abliterate.direction_report`, :mod:`abliterate.evaluate.judge`.
"""

from __future__ import annotations

from typing import Annotated

from cyclopts import App, Parameter

from abliterate.options import BakeRunOptions, ControlOptions, DirectionReportOptions, JudgeCheckOptions
from harness.commands._abliterate_shared import cli_errors
from harness.errors import echo

_Options = Parameter(name="*")


def control_cmd(options: Annotated[ControlOptions, _Options]) -> None:
    """Bake a control: a seeded random direction orthogonal to the run's, same layers, strengths, components."""
    with cli_errors("control"):
        _control(options)


def _control(o: ControlOptions) -> None:
    from abliterate.control import bake_control, bake_target

    model, run, out = o.model, o.run, o.out
    rep = bake_control(o)
    c = rep["control"]
    echo(f"control ({c['kind']}, seed {c['seed']}): {len(rep['edited'])} tensor(s) edited, "
               f"cos to the run's direction {c['cos_to_reference']:.2e}")
    target = bake_target(model, out, "control")
    if target.suffix == ".gguf":  # the run's own edit is baked into the HF copy: bake it into a GGUF too
        abl = out.parent / "abliterated.gguf"
        echo(f"the run's edit as a GGUF: ablbench abliterate bake-run --model {model} --run {run} --out {abl}")
    else:
        abl = run / "abliterated_model"
    echo(f"three-arm benchmark: scripts/full_bench_parallel.sh --model base={model} "
               f"--model abl={abl} --model control={target}")
    echo(target)


def bake_run_cmd(options: Annotated[BakeRunOptions, _Options]) -> None:
    """Bake the run's edit (its direction, components and strengths, search profile included) into another copy."""
    from abliterate.control import bake_run

    with cli_errors("bake_run"):
        rep = bake_run(options)
    out = options.out
    echo(f"baked {len(rep['edited'])} tensor(s), the same edit as {rep['same_edit_as']['reference']}")
    echo(out)


def direction_report_cmd(options: Annotated[DirectionReportOptions, _Options]) -> None:
    """Does the base refuse the refuse bucket, and is the direction mostly 'a system prompt is present'?"""
    with cli_errors("direction_report"):
        _direction_report(options)


def _direction_report(o: DirectionReportOptions) -> None:
    from abliterate.direction_report import MD_FILE, direction_report
    from abliterate.model import load_model

    lm = load_model(o.model, device=o.device, dtype=o.dtype, layers_path=o.layers_path)
    rep = direction_report(lm, o.run, n_prompts=o.prompts, gen_tokens=o.gen_tokens, refusal_floor=o.floor,
                           batch_size=o.batch_size)
    for sentence in rep["verdict"]:
        echo(sentence)
    echo(o.run / "reports" / MD_FILE)


def judge_check_cmd(options: Annotated[JudgeCheckOptions, _Options] = JudgeCheckOptions()) -> None:
    """Cohen's kappa of an LLM judge against the shipped labelled set (64 replies, four kinds)."""
    with cli_errors("judge_check"):
        _judge_check(options)


def _judge_check(o: JudgeCheckOptions) -> None:
    from abliterate.errors import AbliterationError
    from abliterate.evaluate.judge import Judge, agreement
    from abliterate.fsio import write_json

    if not o.judge or not o.judge[0]:
        raise AbliterationError("judge-check needs --judge URL MODEL (an OpenAI-compatible server)")
    ag = agreement(Judge(o.judge[0], o.judge[1], workers=o.workers))
    echo(f"judge {ag['model']} ({ag['prompt_version']}): kappa {ag['kappa_binary']:.3f} binary, "
               f"{ag['kappa_4_labels']:.3f} on four labels, binary accuracy {ag['accuracy_binary']:.3f}, "
               f"unparsed {ag['unparsed']} of {ag['n']}; refusal markers: kappa {ag['markers_kappa_binary']:.3f}")
    if o.out:
        write_json(o.out, ag)
        echo(o.out)


def register(abl_app: App) -> None:
    """Add the commands to the ``abliterate`` group."""
    abl_app.command(control_cmd, name="control")
    abl_app.command(direction_report_cmd, name="direction-report")
    abl_app.command(judge_check_cmd, name="judge-check")
    abl_app.command(bake_run_cmd, name="bake-run")
