"""The options of ``ablbench analyze``, ``plan`` and ``view``: frozen dataclasses, one field per flag.

Rules, in order:

1. Each option is declared once, here: the field's name, type, default and docstring are the
   flag's name, type, default and help (cyclopts generates the flags; ``Parameter(name=...)``
   where the flag is not the field's name).
2. This module stays light (no scipy): the CLI imports it at start-up; the analysis
   (:mod:`harness.analysis`) re-exports the classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

_SOLVED_HELP = ("With several attempts per task: mean (default: the headline test compares per-task success rates "
                "over all attempts; 0/1 views use attempt 1) | first | any | majority (the headline is McNemar on "
                "that 0/1 rule).")


@dataclass(frozen=True, kw_only=True)
class AnalyzeOptions:
    """The options of one ``ablbench analyze`` invocation (paths ``-`` mean stdout)."""

    names: str | None = None
    """Comma-separated run names, one per RUN."""
    json_out: Annotated[Path | None, Parameter(name="--json", allow_leading_hyphen=True)] = None
    """Write the analysis as JSON here ('-' = stdout)."""
    markdown_out: Annotated[Path | None, Parameter(name="--markdown", allow_leading_hyphen=True)] = None
    """Write the markdown report here ('-' = stdout)."""
    plots: Path | None = None
    """Folder for the PNG figures."""
    html_out: Annotated[Path | None, Parameter(name="--html")] = None
    """Write one self-contained HTML report here: the tables, the figures, a task x run matrix and every trajectory."""
    solved: Annotated[str, Parameter(help=_SOLVED_HELP)] = "mean"  # a key of harness.analysis.compare.SOLVED_RULES
    errors_as_failures: bool = False
    """Count tasks with infra/llm/verifier errors as failures in the paired tests (default: they leave the pair's test, with the count stated)."""
    judge: Annotated[tuple[str, str] | None, Parameter(name="--judge")] = None
    """Also ask an LLM judge (OpenAI-compatible server URL, model name) about every turn where a refusal marker fired: --judge URL MODEL."""
    allow_mixed_structured: bool = False
    """Compare runs even when only some used --structured."""
    allow_harness_drift: bool = False  # pair runs whose harness identity differs (harness.analysis.drift)
    """Compare runs even when their harness identity (ablbench version and commit, prompt, parser rules, turns, tokens, sampling, timeout multiplier) differs."""
    allow_task_drift: bool = False
    """Keep same-named tasks whose content differs between runs (default: they leave the analysis, listed in the report)."""


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    """The options of one ``ablbench plan`` invocation (harness.analysis.plan_report reads them)."""

    tasks: int | None = None
    """Tasks in the study (default: the denominator of --base-solved, or the pilot's task count)."""
    base_rate: float | None = None
    """The base model's mean success rate, e.g. 0.034."""
    base_solved: str | None = None
    """The base as solved/tasks, e.g. 3/89."""
    pilot: Path | None = None
    """A pilot run (results folder, master_summary.csv, harbor job or tb run): its per-task rates set the rate model."""
    model: str = "beta"  # a key of harness.analysis.plan.MODELS
    """beta: per-task rates drawn from a Beta in every simulated study | pilot: the pilot's own tasks at their empirical-Bayes rates."""
    concentration: float = 2.0
    """a + b of the Beta of per-task rates, used when the data cannot tell (no pilot, or one attempt per task): small = tasks differ a lot (solved often or never), large = all tasks alike."""
    effect: float = 5.0
    """The hoped-for rise in mean-of-k accuracy, percentage points."""
    alpha: float = 0.05
    """Two-sided significance level."""
    power: float = 0.8
    """Target power for the minimum detectable effect."""
    attempts: str = "1,3,5,10"
    """Attempts per task to compare, comma-separated."""
    trial_minutes: float | None = None
    """GPU minutes per trial: fills the GPU-hours column."""
    studies: int = 2000
    """Simulated studies per k."""
    seed: int = 0
    """Random seed of the simulation."""
    json_out: Annotated[Path | None, Parameter(name="--json", allow_leading_hyphen=True)] = None
    """Also write the plan as JSON here ('-' = stdout)."""


@dataclass(frozen=True, kw_only=True)
class ViewOptions:
    """The options of one ``ablbench view`` invocation."""

    names: str | None = None
    """Comma-separated run names, one per RUN."""
    port: int = 8765
    """Port on 127.0.0.1 (0 = any free port)."""
    solved: str = "mean"
    """With several attempts per task: mean (the headline test uses every attempt; 0/1 views use attempt 1) | first | any | majority."""
    poll: float = 3.0
    """Seconds between the page's checks for finished trials."""
    allow_harness_drift: bool = False
    """As for `analyze`: compare runs whose harness identity differs."""
    allow_task_drift: bool = False
    """As for `analyze`: keep tasks whose content differs between runs."""
