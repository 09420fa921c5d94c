"""The abliteration steps wired to the agent: what ``abliterate`` may not import from the harness.

Rules, in order:

1. The contrast set is what the model sees on a benchmark's first turn (``harness.prompt``):
   "refuse" = the task without the agent system prompt, "comply" = with it
   (``agent_builders``); a labelled prompt file or two bucket files give a classic contrast
   instead (``contrast_inputs``).
2. ``agent_format_ok`` is the search's format-damage check: the agent's action parser.
3. ``run_evaluation`` is ``ablbench abliterate evaluate`` (and ``smoke``): the run's eval split
   or the built-in prompts, the smoke prompt and the benign prompts, evaluated base vs edited.
4. ``smoke`` is ``ablbench smoke``: ``run_evaluation`` with smoke's fixed choices.
5. Each ``ablbench abliterate`` verb is one function here over its options (``contrast``,
   ``capture``, ``directions``, ``pipeline``, ``control``, ``direction_report``, ``judge_check``):
   it logs its progress lines through ``log`` and returns what the verb prints last.
6. Nothing here parses flags; ``print_evaluation`` prints through the ``echo`` it is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import Parameter

from ablbench.errors import AblbenchError
from abliterate.options import (
    CaptureOptions,
    ContrastOptions,
    ControlOptions,
    DirectionReportOptions,
    DirectionsOptions,
    JudgeCheckOptions,
    PipelineOptions,
)

Log = Callable[[str], Any]

if TYPE_CHECKING:
    from abliterate.evaluate.run import EvaluationOptions


@dataclass(frozen=True, kw_only=True)
class SmokeOptions:
    """The options of ``ablbench smoke``: a quick look at a base (and an edited) model."""

    base: Path | None = None
    """Original model folder or .gguf (default: bundled SmolLM2)."""
    edited: Path | None = None
    """Edited model folder or .gguf (omit: base only)."""
    run: Path | None = None
    """Use this run's eval prompts instead of built-ins."""
    limit: int = 4
    """Prompts per bucket (benign ones too)."""
    max_new_tokens: int = 100
    """Greedy tokens per generation."""
    out: Path | None = None
    """Folder for evaluation.json/.md (default: .)."""
    device: Annotated[str, Parameter(help="auto, cpu, cuda, cuda:1 ...")] = "auto"
    dtype: Annotated[str, Parameter(help="auto (fp32 on CPU, stored dtype on GPU), float32, bfloat16 ...")] = "auto"
    quiet: bool = False
    """No progress bars."""


def agent_format_ok(text: str) -> bool:
    """True when ``text`` parses as an agent action (``harness.parser``; "no commands" still parses)."""
    from harness.parser import parse_action

    return parse_action(text).status != "parse_fail"


def agent_builders():
    """(refuse, comply) message builders from the harness's agent prompt."""
    from harness.prompt import initial_messages

    def refuse(prompt: str) -> list[dict]:
        return initial_messages(prompt, with_system=False)

    def comply(prompt: str) -> list[dict]:
        return initial_messages(prompt, with_system=True)

    return refuse, comply


def contrast_inputs(prompts: Path | None, refuse_file: Path | None, comply_file: Path | None, limit: int | None):
    """(refuse items, comply items, refuse builder, comply builder, description) for the chosen mode."""
    from abliterate.contrast import plain_user
    from abliterate.prompts import builtin_prompts, load_prompt_file, split_by_label

    if prompts and (refuse_file or comply_file):
        raise AblbenchError("pass either --prompts (labelled) or --refuse-prompts/--comply-prompts, not both")
    if bool(refuse_file) != bool(comply_file):
        raise AblbenchError("--refuse-prompts and --comply-prompts go together: a contrast needs both buckets")
    if prompts:
        refuse_items, comply_items = split_by_label(load_prompt_file(prompts), str(prompts))
        mode = f"classic contrast from {prompts}"
    elif refuse_file:
        refuse_items, comply_items = load_prompt_file(refuse_file), load_prompt_file(comply_file)
        mode = f"classic contrast from {refuse_file} / {comply_file}"
    else:
        items = builtin_prompts()
        if limit:
            items = spread(items, limit)
        r, c = agent_builders()
        return items, items, r, c, f"{len(items)} built-in shell tasks without / with the agent system prompt"
    if limit:
        refuse_items, comply_items = refuse_items[:limit], comply_items[:limit]
    return refuse_items, comply_items, plain_user, plain_user, mode


def spread(items: list, n: int) -> list:
    """``n`` items taken round-robin over categories (so a small set still covers every kind of work)."""
    by_cat: dict[str, list] = {}
    for it in items:
        by_cat.setdefault(it.category, []).append(it)
    out: list = []
    while len(out) < min(n, len(items)):
        for cat in list(by_cat):
            if by_cat[cat] and len(out) < n:
                out.append(by_cat[cat].pop(0))
    return out


def judge_for(spec: tuple[str, str] | None):
    """An ``abliterate.evaluate.judge.Judge`` for ``--judge URL MODEL`` (None when not given)."""
    if not spec or not spec[0]:
        return None
    from abliterate.evaluate.judge import Judge

    return Judge(spec[0], spec[1])


def run_evaluation(o: EvaluationOptions) -> tuple[dict, Path]:
    """Records (run's eval split, or built-in prompts) + smoke prompt + benign prompts -> evaluate()."""
    from abliterate.contrast import build_contrast, read_contrast, select
    from abliterate.evaluate.run import evaluate
    from abliterate.model import load_tokenizer
    from abliterate.pipeline import benign_records, smoke_records
    from abliterate.prompts import builtin_prompts

    rb, cb = agent_builders()
    tok = load_tokenizer(o.base)
    if o.run is not None:
        refuse, comply = read_contrast(o.run)
        refuse, comply = select(refuse, "eval") or refuse, select(comply, "eval") or comply
    else:
        items = spread(builtin_prompts(), o.limit or 12)
        refuse, comply = build_contrast(tok, refuse_items=items, comply_items=items, refuse_messages=rb,
                                        comply_messages=cb, eval_fraction=0.0)
    if o.limit:
        refuse, comply = refuse[:o.limit], comply[:o.limit]
    out_dir = o.out or (o.run / "reports" if o.run else Path("."))
    report = evaluate(o.base, o.edited, refuse=refuse, comply=comply, smoke=smoke_records(tok, rb, cb),
                      max_new_tokens=o.max_new_tokens, batch_size=o.batch_size, device=o.device, dtype=o.dtype,
                      out_dir=out_dir, show_progress=not o.quiet,
                      benign=benign_records(tok)[:o.benign] if o.benign else [], judge=judge_for(o.judge),
                      rd=not o.no_rd)
    return report, out_dir


def print_evaluation(report: dict, echo: Callable[[str], Any] = print) -> None:
    """Rates, KL and the smoke prompt's replies, one line at a time through ``echo``."""
    from abliterate.pipeline import log_evaluation

    log_evaluation(report, echo)
    for row in report["samples"].get("smoke", []):
        echo(f"\n[{row['id']}] {row['prompt']}")
        echo(f"  base:   {row['base'][:300]!r}")
        if row["edited"] is not None:
            echo(f"  edited: {row['edited'][:300]!r}")


def smoke(o: SmokeOptions) -> tuple[dict, Path]:
    """The evaluation ``o`` asks for, with smoke's fixed choices: 8 per batch, ``limit`` benign prompts, no RD."""
    from harness.extras import require

    require("abliterate", "smoke")
    base = o.base
    if base is None:
        from harness.embedded_model import materialize

        base = materialize()
    from ablbench.paths import cache_dir
    from abliterate.evaluate.run import EvaluationOptions
    from abliterate.progress import warnings_to_file

    with warnings_to_file(cache_dir() / "logs" / "smoke.log"):
        return run_evaluation(EvaluationOptions(
            base=base, edited=o.edited, run=o.run, out=o.out, max_new_tokens=o.max_new_tokens, limit=o.limit,
            benign=o.limit, no_rd=True, batch_size=8, device=o.device, dtype=o.dtype, quiet=o.quiet,
        ))


def contrast(o: ContrastOptions, log: Log = print) -> list[Path]:
    """``abliterate contrast``: render and split the contrast set; the files written."""
    from abliterate.contrast import build_contrast, select, write_contrast
    from abliterate.model import load_tokenizer

    ri, ci, rb, cb, mode = contrast_inputs(o.prompts, o.refuse_prompts, o.comply_prompts, o.limit)
    refuse, comply = build_contrast(
        load_tokenizer(o.model), refuse_items=ri, comply_items=ci, refuse_messages=rb, comply_messages=cb,
        eval_fraction=o.eval_fraction, seed=o.seed, disjoint_categories=o.disjoint_categories,
    )
    paths = write_contrast(o.out, refuse, comply)
    log(f"{mode}: {len(refuse)} refuse ({len(select(refuse, 'eval'))} eval), "
               f"{len(comply)} comply ({len(select(comply, 'eval'))} eval)")
    return paths


def capture(o: CaptureOptions, log: Log = print) -> Path:
    """``abliterate capture``: both buckets through the model; the activations folder."""
    from abliterate.capture import capture as capture_activations
    from abliterate.contrast import read_contrast
    from abliterate.model import load_model

    refuse, comply = read_contrast(o.run)
    lm = load_model(o.model, device=o.device, dtype=o.dtype, layers_path=o.layers_path)
    log(f"{lm.architecture}: {lm.n_layers} layers at {lm.layers_path}, d_model {lm.d_model}")
    meta = capture_activations(lm, refuse, comply, o.run / "activations", batch_size=o.batch_size,
                               save_activations=not o.no_save_activations, show_progress=not o.quiet)
    for b, info in meta["buckets"].items():
        log(f"{b}: {info['n']} prompts, {info['tokens']} tokens, {info['seconds']} s")
    return o.run / "activations"


def directions(o: DirectionsOptions, log: Log = print) -> Path | None:
    """``abliterate directions``: per-layer directions, then the choice; the chosen direction (None: no choice)."""
    from abliterate.contrast import read_contrast
    from abliterate.directions import write_directions
    from abliterate.fsio import write_json
    from abliterate.model import load_model
    from abliterate.pipeline import StepLog, choose_step

    run = o.run
    acts, vectors, reports = run / "activations", run / "vectors", run / "reports"
    res = write_directions(acts, vectors, variant=o.variant)
    write_json(reports / "directions.json", res)
    for row in res["layers"]:
        log(f"layer {row['layer']:3d}  auc {row['auc']:.3f}  sep {row['separation']:7.2f}  "
                   f"norm {row['norm']:9.3f}  cos_prev {row['cos_prev']:.3f}")
    if o.no_choose:
        return None
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
    log(f"chosen layer {rep['chosen_layer']}: {rep['reason']}")
    return vectors / "refusal_dir.pt"


def pipeline(model: Path, out: Path, opts: PipelineOptions, *, prompts: Path | None = None,
             refuse_prompts: Path | None = None, comply_prompts: Path | None = None, limit: int | None = None,
             demo_search: bool = False, log: Log = print) -> dict:
    """``abliterate pipeline``: every step, resumable; the run's summary (``demo_search``: the CPU-sized search)."""
    from dataclasses import replace

    from abliterate.pipeline import run_pipeline
    from abliterate.search.run import DEMO_SEARCH

    if demo_search:
        opts = replace(opts, search=True, search_trials=DEMO_SEARCH.trials, search_prompts=DEMO_SEARCH.prompts,
                       search_gen_tokens=DEMO_SEARCH.gen_tokens, search_format_tokens=DEMO_SEARCH.format_tokens)
    ri, ci, rb, cb, mode = contrast_inputs(prompts, refuse_prompts, comply_prompts, limit)
    log(mode)
    if opts.judge and not opts.judge[0]:
        opts = replace(opts, judge=None)
    return run_pipeline(model, out, refuse_items=ri, comply_items=ci, refuse_messages=rb, comply_messages=cb,
                        options=opts, format_check=agent_format_ok)


def control(o: ControlOptions, log: Log = print) -> Path:
    """``abliterate control``: bake the control edit; the control model (what to benchmark is logged)."""
    from abliterate.control import bake_control, bake_target

    model, run, out = o.model, o.run, o.out
    rep = bake_control(o)
    c = rep["control"]
    log(f"control ({c['kind']}, seed {c['seed']}): {len(rep['edited'])} tensor(s) edited, "
               f"cos to the run's direction {c['cos_to_reference']:.2e}")
    target = bake_target(model, out, "control")
    if target.suffix == ".gguf":  # the run's own edit is baked into the HF copy: bake it into a GGUF too
        abl = out.parent / "abliterated.gguf"
        log(f"the run's edit as a GGUF: ablbench abliterate bake-run --model {model} --run {run} --out {abl}")
    else:
        abl = run / "abliterated_model"
    log(f"three-arm benchmark: scripts/full_bench_parallel.sh --model base={model} "
               f"--model abl={abl} --model control={target}")
    return target


def direction_report(o: DirectionReportOptions, log: Log = print) -> Path:
    """``abliterate direction-report``: its verdict logged; the markdown report."""
    from abliterate.direction_report import MD_FILE
    from abliterate.direction_report import direction_report as report_direction
    from abliterate.model import load_model

    lm = load_model(o.model, device=o.device, dtype=o.dtype, layers_path=o.layers_path)
    rep = report_direction(lm, o.run, n_prompts=o.prompts, gen_tokens=o.gen_tokens, refusal_floor=o.floor,
                           batch_size=o.batch_size)
    for sentence in rep["verdict"]:
        log(sentence)
    return o.run / "reports" / MD_FILE


def judge_check(o: JudgeCheckOptions, log: Log = print) -> dict:
    """``abliterate judge-check``: the judge's agreement with the labelled set (written to ``o.out`` when given)."""
    from abliterate.errors import AbliterationError
    from abliterate.evaluate.judge import Judge, agreement
    from abliterate.fsio import write_json

    if not o.judge or not o.judge[0]:
        raise AbliterationError("judge-check needs --judge URL MODEL (an OpenAI-compatible server)")
    ag = agreement(Judge(o.judge[0], o.judge[1], workers=o.workers))
    log(f"judge {ag['model']} ({ag['prompt_version']}): kappa {ag['kappa_binary']:.3f} binary, "
               f"{ag['kappa_4_labels']:.3f} on four labels, binary accuracy {ag['accuracy_binary']:.3f}, "
               f"unparsed {ag['unparsed']} of {ag['n']}; refusal markers: kappa {ag['markers_kappa_binary']:.3f}")
    if o.out:
        write_json(o.out, ag)
    return ag
