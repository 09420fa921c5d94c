"""``RunOptions``: everything ``ablbench run`` was asked to do, as one frozen, typed object.

Rules, in order:

1. Each field is declared once: its docstring is the flag's help, its default the flag's default;
   the CLI (``harness/commands/run.py``) has cyclopts build one ``RunOptions`` from the flags, and
   Python users build one by hand (``harness.api``); ``Job`` reads nothing else.
2. Every field says what it is for in its ``role`` metadata:
   ``experiment`` (changes what is measured: part of the resume fingerprint),
   ``agent`` (a Terminus knob: it reaches the fingerprint through the agent's own settings,
   so an oracle run does not care about ``--max-turns``),
   ``run`` (how this invocation runs: parallelism, output, resume flags; never fingerprinted).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter
from cyclopts.validators import Number

from harness.agents import defaults
from harness.structured_check import GRAMMAR_LIMIT_S

EXPERIMENT = {"role": "experiment"}
AGENT = {"role": "agent"}
RUN = {"role": "run"}
AT_LEAST_0 = Number(gte=0)
AT_LEAST_1 = Number(gte=1)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """The options of one ``ablbench run`` invocation (see the module doc for ``role``)."""

    agent: str = field(default="terminus", metadata=EXPERIMENT)
    """terminus | oracle | nop | replay (the reference solution through the Terminus loop)."""
    tasks: Path | None = field(default=None, metadata=RUN)  # the tasks' names and hashes are fingerprinted
    """A task folder or a folder of tasks (default: the bundled tasks)."""
    include: tuple[str, ...] = field(default=(), metadata=RUN)
    """Only tasks matching this glob (repeatable)."""
    exclude: tuple[str, ...] = field(default=(), metadata=RUN)
    """Skip tasks matching this glob (repeatable)."""
    model_url: str | None = field(default=None, metadata=RUN)  # a restarted server gets another port
    """OpenAI-compatible server root, e.g. http://127.0.0.1:8123 (terminus agent only)."""
    model: str | None = field(default=None, metadata=RUN)  # fingerprinted as the served identity
    """Model name as served (terminus agent only)."""
    attempts: Annotated[int, Parameter(alias="-k", validator=AT_LEAST_1)] = field(default=1, metadata=EXPERIMENT)
    """Attempts per task."""
    timeout_multiplier: Annotated[float, Parameter(validator=Number(gte=0.01))] = field(
        default=1.0, metadata=EXPERIMENT)
    """Multiply every task's agent timeout."""
    base_image_map: tuple[str, ...] = field(default=(), metadata=EXPERIMENT)
    """FROM=TO: use image TO wherever a task names FROM (repeatable)."""
    offline: bool = field(default=False, metadata=EXPERIMENT)
    """Never pull; base images not present locally become the local base image (with a warning)."""
    no_network: bool = field(default=False, metadata=EXPERIMENT)
    """No network in task containers, whatever allow_internet says."""
    max_turns: Annotated[int, Parameter(validator=AT_LEAST_1)] = field(default=defaults.MAX_TURNS, metadata=AGENT)
    """Agent turns per trial (terminus)."""
    max_tokens: Annotated[int, Parameter(validator=AT_LEAST_1)] = field(default=defaults.MAX_TOKENS, metadata=AGENT)
    """Tokens per model reply (terminus)."""
    temperature: Annotated[float, Parameter(validator=AT_LEAST_0)] = field(
        default=defaults.TEMPERATURE, metadata=AGENT)
    """Sampling temperature (terminus)."""
    top_p: float = field(default=defaults.TOP_P, metadata=AGENT)
    """Nucleus sampling (terminus)."""
    seed: int = field(default=defaults.SEED, metadata=AGENT)
    """Run seed (terminus): each request's seed derives from it, the task, the attempt and the turn, so attempts differ and runs of two models share seeds."""
    context_length: Annotated[int | None, Parameter(validator=Number(gte=256))] = field(default=None, metadata=AGENT)
    """Model context in tokens (terminus; default: max_model_len from /v1/models)."""
    structured: bool = field(default=False, metadata=AGENT)  # fingerprinted as the agent's response_format
    """Constrain replies to the action JSON schema (response_format; the server must honour it: llama.cpp, sglang, vLLM). Changes what is measured: use it in every arm or none."""
    grammar_limit: Annotated[float, Parameter(validator=AT_LEAST_0)] = field(default=GRAMMAR_LIMIT_S, metadata=RUN)
    """--structured: stop before any trial when the action schema delays the first token of a reply by more than this many seconds (measured once by the preflight)."""
    parallel: Annotated[int, Parameter(alias="-n", validator=AT_LEAST_1)] = field(default=1, metadata=RUN)
    """Trials running at once."""
    out: Path | None = field(default=None, metadata=RUN)
    """Results folder (default: results/<timestamp>)."""
    resume: bool = field(default=False, metadata=RUN)
    """Keep finished trials in --out, rerun the rest."""
    rerun_errors: bool = field(default=False, metadata=RUN)
    """With --resume: also rerun trials that ended in infra or llm errors."""
    rerun: tuple[str, ...] = field(default=(), metadata=RUN)
    """With --resume: also rerun finished trials with this outcome, e.g. verifier_error (repeatable)."""
    rerun_unscored: bool = field(default=False, metadata=RUN)
    """With --resume: rerun every trial the verifier did not score (infra, llm and verifier errors, agent crashes); keep every scored trial, failed or passed."""
    infra_retries: Annotated[int, Parameter(validator=AT_LEAST_0)] = field(default=1, metadata=RUN)
    """Retries of a trial that hits an infrastructure error."""
    llm_stall_s: Annotated[float, Parameter(validator=Number(gte=1.0))] = field(default=60.0, metadata=RUN)
    """Seconds a model request may go unanswered before the client checks that the server still answers HTTP; one that does not is hung and the request is retried (a busy server is waited for)."""
    quiet: bool = field(default=False, metadata=RUN)
    """No live progress display."""

    def with_role(self, role: str) -> dict[str, Any]:
        """The fields whose ``role`` metadata is ``role``, as JSON-ready values."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.metadata.get("role") == role}

    def as_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (for run.json's provenance)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
