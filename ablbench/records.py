"""Typed records of a results folder: ``result.json``, ``run.json`` and the analysis (``analyze --json``).

Rules, in order:

1. Each file is a pydantic model here; its JSON schema is published in ``ablbench/schemas/``
   (``python -m ablbench.records`` writes them; a test keeps them equal to the models).
2. Unknown keys are kept (``extra="allow"``): older and newer writers differ, and a reader must
   not drop or refuse what it does not know. Every key a writer may leave out has a default, so
   folders written before a key existed still load.
3. Writers keep building plain dicts (the JSON on disk keeps its keys and order); they check
   them against the model before writing (:func:`check_record`).
4. Readers validate on read (:func:`read_record`): a malformed file raises :class:`RecordError`
   with ONE line naming the file, the first bad field and the fix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ablbench.agent_api import AgentStop, Outcome
from ablbench.errors import AblbenchError

#: where the published JSON schemas live (rule 1)
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
#: what a user does about a malformed file in a results folder
RESULTS_FIX = "fix or delete the file and rerun with --resume"


class RecordError(AblbenchError):
    """A results file that does not match its model (one line: file, field, fix)."""


class Record(BaseModel):
    """A JSON object of a results folder: unknown keys are kept (rule 2)."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------------------- result.json
class Counters(Record):
    """What the agent counted (``AgentResult``'s counters)."""

    turns: int = 0
    parse_fail: int = 0
    no_cmd: int = 0
    retries: int = 0
    context_events: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cut_off: int = 0


class Timings(Record):
    """Seconds per trial stage."""

    env_setup: float = 0.0
    agent: float = 0.0
    verifier: float = 0.0
    total: float = 0.0


class VerifierRecord(Record):
    """How the task's tests graded the final state."""

    exit_code: int | None = None
    timed_out: bool = False
    reward: float | None = None
    reward_source: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    warnings: list[str] = Field(default_factory=list)


class ProcessRecord(Record):
    """A process alive in the container when the verifier started."""

    pid: int
    ppid: int
    cmdline: str = ""
    kind: str = ""


class ExceptionRecord(Record):
    """An unexpected exception inside the trial (infrastructure)."""

    type: str
    message: str = ""
    traceback: str = ""


class TrialResult(Record):
    """``<task>/<attempt>/result.json``: one trial. Only a ``finished`` one counts (and needs an outcome)."""

    task: str
    attempt: int = Field(ge=1)
    finished: bool = False
    interrupted: bool = False
    agent: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    image: str | None = None
    container: str | None = None
    reward: float | None = None
    outcome: Outcome | None = None
    error: str | None = None
    agent_stop: AgentStop | None = None
    counters: Counters | None = None
    agent_extra: dict[str, Any] | None = None
    verifier: VerifierRecord | None = None
    timings: Timings | None = None
    phases: dict[str, float] | None = None
    agent_commands_killed: list[int] | None = None
    procs_before_verifier: list[ProcessRecord] | None = None
    leftover_procs: int | None = None
    exception: ExceptionRecord | None = None
    #: the agent's own error when the trial went on to score (a pass after an agent crash shows here)
    agent_error: str | None = None
    #: processes the kernel OOM-killed in the task container
    oom_kills: int | None = None

    @model_validator(mode="after")
    def _finished_has_outcome(self) -> TrialResult:
        if self.finished and self.outcome is None:
            raise ValueError("outcome: a finished trial needs an outcome")
        return self


# ---------------------------------------------------------------------------------- run.json
class Invocation(Record):
    """One ``ablbench run`` on the folder (command, versions, times)."""

    command: list[str] = Field(default_factory=list)
    start: str | None = None
    end: str | None = None
    status: str | None = None
    pid: int | None = None
    versions: dict[str, Any] = Field(default_factory=dict)


class RunRecord(Record):
    """``run.json``: the experiment at the top, then one entry per invocation."""

    run_id: str | None = None
    name: str | None = None
    out_dir: str | None = None
    tasks_root: str | None = None
    tasks: list[str] = Field(default_factory=list)
    attempts: int | None = None
    timeout_multiplier: float | None = None
    no_network: bool | None = None
    structured: bool | None = None
    agent: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None
    fingerprint_digest: str | None = None
    start: str | None = None
    end: str | None = None
    status: str | None = None
    invocations: list[Invocation] = Field(default_factory=list)


# ---------------------------------------------------------------------------------- analysis
class Leaderboard(Record):
    """The TB2 leaderboard's figure: mean over trials ± half_width (1.96 SE; None with one attempt)."""

    mean: float
    half_width: float | None = None


class RunSummary(Record):
    """One run's rates over the shared tasks."""

    name: str
    n: int
    passes: int
    rate: float
    wilson95: list[float]
    source: str
    kind: str
    tasks_in_run: int
    dropped_tasks: list[str] = Field(default_factory=list)
    attempts_min: int
    attempts_max: int
    trials: int
    trial_passes: int
    mean_pass_at_1: float
    mean_of_task_rates: float
    leaderboard: Leaderboard | None = None
    per_task_rate: dict[str, float] = Field(default_factory=dict)


class MeanOfK(Record):
    """The mean-of-k test of a pair (several attempts per task): per-task rates, permutation p."""

    n: int
    n_nonzero: int
    diff: float | None = None
    p: float
    method: str
    ci95: list[float] | None = None
    ci_method: str = ""
    left_out_no_scored_trial: list[str] = Field(default_factory=list)
    design_mde80: dict[str, Any] = Field(default_factory=dict)
    holm_p: float | None = None


class PairStats(Record):
    """Two runs compared task by task (paired tests)."""

    a: str
    b: str
    n: int
    both: int
    a_only: int
    b_only: int
    neither: int
    diff: float | None = None
    newcombe95: list[float | None]
    mcnemar_exact_p: float
    mcnemar_midp: float
    fisher_two_sided_p: float
    fisher_one_sided_p: float
    a_only_tasks: list[str] = Field(default_factory=list)
    b_only_tasks: list[str] = Field(default_factory=list)
    excluded_errors: list[dict[str, Any]] = Field(default_factory=list)
    mcnemar_holm_p: float | None = None
    mean_of_k: MeanOfK | None = None


class CochranQ(Record):
    """Cochran's Q over three or more runs."""

    q: float
    df: int
    p: float
    p_exact: float
    exact_method: str
    n: int
    excluded_errors: int


class OverlapRegion(Record):
    """The tasks solved by exactly this set of runs."""

    runs: list[str]
    label: str
    tasks: list[str]


class Analysis(Record):
    """``ablbench analyze --json``: runs compared on the tasks they all share."""

    n_tasks: int
    solved_rule: str
    solved_rule_text: str
    multi_attempt: bool
    headline_test: str | None = None
    unusual_rule: str
    errors_as_failures: bool
    errors_rule: str
    runs: list[RunSummary]
    pairs: list[PairStats]
    cochran_q: CochranQ | None = None
    overlap: list[OverlapRegion] = Field(default_factory=list)
    unsolved_by_all: int = 0
    notes: list[str] = Field(default_factory=list)
    behaviour: dict[str, Any] = Field(default_factory=dict)


#: the published models, by schema file name (rule 1)
SCHEMAS: dict[str, type[Record]] = {"result.schema.json": TrialResult, "run.schema.json": RunRecord,
                                    "analysis.schema.json": Analysis}

R = TypeVar("R", bound=Record)


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error as ``field.path: message`` (plus how many more)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    text = f"{loc}: {msg}" if loc and not msg.startswith(f"{loc}:") else msg
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def check_record(model: type[R], data: Any, where: str | Path) -> R:
    """``data`` as ``model``; :class:`RecordError` naming ``where`` and the field when it does not fit (rule 3)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecordError(f"{where}: {describe(exc)}") from None


def read_record(model: type[R], path: Path, fix: str = RESULTS_FIX) -> tuple[R, dict[str, Any]]:
    """(the model, the raw dict) of the JSON file ``path``; one-line :class:`RecordError` when malformed (rule 4)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordError(f"{path}: cannot read it ({exc.strerror or exc}) — {fix}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({exc}) — {fix}") from None
    try:
        return model.model_validate(data), data
    except ValidationError as exc:
        raise RecordError(f"{path}: {describe(exc)} — {fix}") from None


def schema_text(model: type[Record]) -> str:
    """The model's JSON schema as the committed file holds it."""
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    """Write every published schema into ``folder`` (rule 1); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in SCHEMAS.items():
        path = folder / name
        path.write_text(schema_text(model), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(p)
