"""One typed options object per verb: every flag of every verb is a field of its frozen dataclass,
with the same default, and the CLI hands the object down (the analysis reads it)."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest
import typer
from typer.models import ArgumentInfo, OptionInfo
from typer.testing import CliRunner

from ablbench.errors import AblbenchError
from abliterate.bake.run import BakeOptions
from abliterate.capture import CaptureOptions
from abliterate.contrast import ContrastOptions
from abliterate.control import BakeRunOptions, ControlOptions
from abliterate.direction_report import DirectionReportOptions
from abliterate.directions import DirectionsOptions
from abliterate.evaluate.judge import JudgeCheckOptions
from abliterate.evaluate.run import EvaluationOptions
from abliterate.pipeline import PipelineOptions
from abliterate.search.run import DEMO_SEARCH, SearchOptions
from harness.analysis import AnalyzeOptions, analyze, load_run
from harness.analysis.live import ViewOptions
from harness.analysis.options import PlanOptions
from harness.analysis.report import to_json
from harness.cli import app
from harness.commands.serve import ServeOptions
from harness.commands.smoke import SmokeOptions
from harness.commands.tasks import TasksCheckOptions, TasksDiffOptions, TasksListOptions
from harness.embedded_model import EmbeddedModelOptions, embedded_model
from harness.run_options import RunOptions
from sft.run import SftOptions

TB_RUN = Path(__file__).parent / "fixtures" / "analysis" / "tb_runs" / "2025-06-01__09-30-00"


@dataclasses.dataclass(frozen=True)
class Verb:
    """How one verb's parameters reach its options class."""

    options: type | None
    beside: frozenset[str] = frozenset()  # parameters passed next to the object (operands, injected hooks)
    renamed: tuple[tuple[str, str], ...] = ()  # (parameter, field)
    no_flag: frozenset[str] = frozenset()  # fields no flag sets


VERBS = {
    "run": Verb(RunOptions),
    "analyze": Verb(AnalyzeOptions, beside=frozenset({"runs"})),
    "view": Verb(ViewOptions, beside=frozenset({"runs"})),
    "plan": Verb(PlanOptions),
    "serve": Verb(ServeOptions, beside=frozenset({"ctx"}), no_flag=frozenset({"extra_args"})),
    "smoke": Verb(SmokeOptions),
    "sft": Verb(SftOptions),
    "doctor": Verb(None),
    "tasks list": Verb(TasksListOptions),
    "tasks check": Verb(TasksCheckOptions),
    "tasks diff": Verb(TasksDiffOptions),
    "model embedded": Verb(EmbeddedModelOptions),
    "abliterate contrast": Verb(ContrastOptions),
    "abliterate capture": Verb(CaptureOptions),
    "abliterate directions": Verb(DirectionsOptions),
    "abliterate evaluate": Verb(EvaluationOptions),
    "abliterate bake": Verb(BakeOptions),
    "abliterate control": Verb(ControlOptions),
    "abliterate bake-run": Verb(BakeRunOptions),
    "abliterate direction-report": Verb(DirectionReportOptions),
    "abliterate judge-check": Verb(JudgeCheckOptions),
    "abliterate search": Verb(SearchOptions, beside=frozenset({"model", "run", "no_format"})),
    "abliterate pipeline": Verb(
        PipelineOptions,
        beside=frozenset({"model", "out", "prompts", "refuse_prompts", "comply_prompts", "limit"}),
        renamed=(("gen_tokens", "choose_gen_tokens"), ("search_tokens", "search_gen_tokens"), ("no_rd", "rd"),
                 ("quiet", "show_progress"), ("demo_search", "search")),
        no_flag=frozenset({"report"}),
    ),
}


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()):
    for info in group.registered_commands:
        yield " ".join((*prefix, info.name or info.callback.__name__.replace("_", "-"))), info.callback
    for sub in group.registered_groups:
        yield from _commands(sub.typer_instance, (*prefix, sub.name))


COMMANDS = dict(_commands(app))


def _cli_default(param: inspect.Parameter, field_default):
    default = param.default.default
    if isinstance(default, list):
        return tuple(default)
    if isinstance(default, str) and isinstance(field_default, tuple):  # a comma list, split by the CLI
        return tuple(part for part in default.split(",") if part)
    return default


def test_every_verb_has_an_options_entry():
    assert sorted(COMMANDS) == sorted(VERBS)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_flag_is_a_field_with_the_same_default(verb):
    spec, params = VERBS[verb], inspect.signature(COMMANDS[verb]).parameters
    if spec.options is None:
        assert not params, f"{verb} grew parameters: give it an options class"
        return
    assert dataclasses.is_dataclass(spec.options) and spec.options.__dataclass_params__.frozen
    assert spec.options.__doc__ and "\n" not in spec.options.__doc__.strip()
    fields = {f.name: f for f in dataclasses.fields(spec.options)}
    assert all(isinstance(f.type, str) and f.type for f in fields.values())  # every field typed
    renamed = dict(spec.renamed)
    flags = {name: p for name, p in params.items() if name not in spec.beside}
    assert all(isinstance(p.default, OptionInfo | ArgumentInfo) for p in flags.values())
    mapped = {renamed.get(name, name): name for name in flags}
    assert set(mapped) - set(fields) == set(), f"{verb}: flags without a field"
    assert set(fields) - set(mapped) == set(spec.no_flag), f"{verb}: fields no flag sets"
    for field_name, param_name in mapped.items():
        field, param = fields[field_name], flags[param_name]
        if param.default.default is ...:
            assert field.default is dataclasses.MISSING, f"{verb} {param_name}: required flag, optional field"
        elif param_name not in renamed:
            default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
            assert _cli_default(param, default) == default, f"{verb} {param_name}"


def test_options_are_frozen_and_presets_are_typed():
    options = AnalyzeOptions(solved="any")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.solved = "first"  # type: ignore[misc]
    assert isinstance(DEMO_SEARCH, SearchOptions) and DEMO_SEARCH.trials < SearchOptions().trials


def test_the_cli_builds_the_options_the_analysis_reads():
    res = CliRunner().invoke(app, ["analyze", str(TB_RUN), "--names", "tb", "--solved", "any", "--json", "-"])
    assert res.exit_code == 0, res.output
    via_cli = json.loads(res.output)
    direct = json.loads(to_json(analyze([load_run(TB_RUN, "tb")], AnalyzeOptions(solved="any"))))
    assert via_cli == direct and via_cli["solved_rule"] == "any"
    first = json.loads(to_json(analyze([load_run(TB_RUN, "tb")], AnalyzeOptions())))
    assert first["runs"][0]["passes"] != via_cli["runs"][0]["passes"]  # the option changes the answer


def test_model_embedded_checks_its_options():
    with pytest.raises(AblbenchError, match="--format 'onnx' is unknown"):
        embedded_model(EmbeddedModelOptions(fmt="onnx"))
    with pytest.raises(AblbenchError, match="--out applies to --format hf only"):
        embedded_model(EmbeddedModelOptions(out=Path("x"), fmt="gguf"))
