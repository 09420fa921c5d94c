"""One typed options object per verb, each option declared once.

For the verbs on cyclopts, every flag is generated from exactly one field of the verb's frozen
options dataclass: the field's default is the flag's default and its docstring the help, and
today's flags, short flags and aliases still parse to the same values. The verbs still declared
with typer (mounted by harness/commands/_typer_bridge.py) keep the older check: every flag is a
field of the options class with the same default. The CLI hands the object down (the analysis
reads it).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from pathlib import Path

import pytest
import typer
from cli_helpers import CliRunner
from cyclopts import Parameter
from docstring_parser import parse_from_object
from typer.models import ArgumentInfo, OptionInfo

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
from harness.commands import serve as serve_cmd
from harness.commands import sft as sft_cmd
from harness.commands import smoke as smoke_cmd
from harness.commands.abliterate import abl_app
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


#: the verbs whose flags cyclopts generates: (options class, positional parameters beside it)
CYCLOPTS_VERBS: dict[str, tuple[type, frozenset[str]]] = {
    "run": (RunOptions, frozenset()),
    "analyze": (AnalyzeOptions, frozenset({"runs"})),
    "view": (ViewOptions, frozenset({"runs"})),
    "plan": (PlanOptions, frozenset()),
    "tasks list": (TasksListOptions, frozenset()),
    "tasks check": (TasksCheckOptions, frozenset()),
    "tasks diff": (TasksDiffOptions, frozenset()),
    "model embedded": (EmbeddedModelOptions, frozenset()),
}

TYPER_VERBS = {
    "serve": Verb(ServeOptions, beside=frozenset({"ctx"}), no_flag=frozenset({"extra_args"})),
    "smoke": Verb(SmokeOptions),
    "sft": Verb(SftOptions),
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


def _cyclopts_commands(group, prefix: tuple[str, ...] = ()):
    for name in group:
        if name.startswith("-"):
            continue
        sub = group[name]
        if sub.default_command is not None:
            yield " ".join((*prefix, name)), sub
        else:
            yield from _cyclopts_commands(sub, (*prefix, name))


def _typer_commands(group: typer.Typer, prefix: tuple[str, ...] = ()):
    for info in group.registered_commands:
        yield " ".join((*prefix, info.name or info.callback.__name__.replace("_", "-"))), info.callback


def _typer_group(module) -> typer.Typer:
    group = typer.Typer()
    module._register_typer(group)
    return group


CYCLOPTS = dict(_cyclopts_commands(app))
BRIDGED = {"abliterate", "serve", "smoke", "sft"}  # mounted from typer (harness/commands/_typer_bridge.py)
COMMANDS = {
    **{k: v.default_command for k, v in CYCLOPTS.items() if k not in BRIDGED and k != "doctor"},
    **dict(_typer_commands(abl_app, ("abliterate",))),
    **{verb: dict(_typer_commands(_typer_group(mod)))[verb]
       for verb, mod in (("serve", serve_cmd), ("smoke", smoke_cmd), ("sft", sft_cmd))},
}


def test_every_verb_has_an_options_entry():
    assert sorted(COMMANDS) == sorted({*CYCLOPTS_VERBS, *TYPER_VERBS})
    assert "doctor" in CYCLOPTS and not inspect.signature(CYCLOPTS["doctor"].default_command).parameters


def _help(cls: type) -> dict[str, str]:
    """Each field's help: its docstring, or the ``help`` of its ``Parameter``."""
    docs = {p.arg_name: p.description for p in parse_from_object(cls).params}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Parameter) and meta.help:
                docs[name] = meta.help
    return docs


@pytest.mark.parametrize("verb", sorted(CYCLOPTS_VERBS))
def test_every_flag_comes_from_one_field(verb):
    cls, beside = CYCLOPTS_VERBS[verb]
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    assert cls.__doc__ and "\n" not in cls.__doc__.strip()
    params = inspect.signature(COMMANDS[verb]).parameters
    objects = [p for p in params.values() if p.name not in beside]
    assert len(objects) == 1, f"{verb}: one options object, nothing else"
    assert set(params) - {objects[0].name} == beside
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "_"}
    arguments = [a for a in CYCLOPTS[verb].assemble_argument_collection() if a.field_info.name in fields]
    by_field = {a.field_info.name: a for a in arguments}
    assert len(by_field) == len(arguments), f"{verb}: a field with two flags"
    assert set(by_field) == set(fields), f"{verb}: fields without a flag"
    help_of = _help(cls)
    for name, field in fields.items():
        assert help_of.get(name, "").strip(), f"{verb} {name}: no help"
        default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
        assert by_field[name].field_info.default == (inspect.Parameter.empty if default is dataclasses.MISSING
                                                      else default), f"{verb} {name}"


def _parsed(argv: list[str]):
    _, bound, _ = app.parse_args(argv)
    return {k: v for k, v in bound.arguments.items()}


def test_todays_flags_and_short_flags_still_parse():
    assert _parsed(["run", "--max-turns", "3", "--max-turns", "5"])["opts"].max_turns == 5  # the last one wins
    run = _parsed(["run", "-n", "3", "-k", "2", "--include", "a*", "--include", "b*", "--exclude", "c",
                   "--no-network", "--offline", "--max-turns", "5", "--temperature", "0.2", "--context-length",
                   "4096", "--structured", "--rerun", "verifier_error", "--base-image-map", "x=y", "--quiet"])
    assert run["opts"] == RunOptions(parallel=3, attempts=2, include=("a*", "b*"), exclude=("c",), no_network=True,
                                     offline=True, max_turns=5, temperature=0.2, context_length=4096,
                                     structured=True, rerun=("verifier_error",), base_image_map=("x=y",),
                                     quiet=True)
    analyzed = _parsed(["analyze", "r1", "r2", "--names", "a,b", "--json", "-", "--markdown", "m.md", "--html",
                        "h.html", "--judge", "http://127.0.0.1:1", "judge", "--errors-as-failures"])
    assert analyzed["runs"] == [Path("r1"), Path("r2")]
    assert analyzed["options"] == AnalyzeOptions(names="a,b", json_out=Path("-"), markdown_out=Path("m.md"),
                                                 html_out=Path("h.html"), judge=("http://127.0.0.1:1", "judge"),
                                                 errors_as_failures=True)
    assert _parsed(["plan", "--base-solved", "3/89", "--json", "-"])["options"] == PlanOptions(
        base_solved="3/89", json_out=Path("-"))
    assert _parsed(["tasks", "list", "t", "-i", "a", "-e", "b"])["options"] == TasksListOptions(
        path=Path("t"), include=("a",), exclude=("b",))
    assert _parsed(["tasks", "diff", "o", "n"])["options"] == TasksDiffOptions(old=Path("o"), new=Path("n"))
    assert _parsed(["model", "embedded", "--format", "gguf"])["options"] == EmbeddedModelOptions(fmt="gguf")


@pytest.mark.parametrize("argv, message", [
    (["run", "-n", "0"], "-n"),
    (["run", "--bogus"], "--bogus"),
    (["analyze"], "runs"),
])
def test_bad_usage_is_one_line_and_exit_2(argv, message):
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and message.lower() in res.stderr.lower()


def _cli_default(param: inspect.Parameter, field_default):
    default = param.default.default
    if isinstance(default, list):
        return tuple(default)
    if isinstance(default, str) and isinstance(field_default, tuple):  # a comma list, split by the CLI
        return tuple(part for part in default.split(",") if part)
    return default


@pytest.mark.parametrize("verb", sorted(TYPER_VERBS))
def test_every_typer_flag_is_a_field_with_the_same_default(verb):
    spec, params = TYPER_VERBS[verb], inspect.signature(COMMANDS[verb]).parameters
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


@pytest.mark.parametrize("argv", [
    ["serve", "--model", "x.gguf", "--", "--n_ctx", "16384"],
    ["abliterate", "search", "--help"],
    ["sft", "--traces", "a", "--traces", "b"],
])
def test_mounted_typer_verbs_get_every_token(argv):
    _, bound, _ = app.parse_args(argv)
    assert list(bound.args) == argv[1:]  # `--` and --help reach typer untouched


def test_mounted_typer_verb_keeps_its_help_and_exit_codes():
    res = CliRunner().invoke(app, ["smoke", "--help"])
    assert res.exit_code == 0 and "--edited" in res.output
    res = CliRunner().invoke(app, ["abliterate", "bake", "--bogus"])
    assert res.exit_code == 2 and "--bogus" in res.output
