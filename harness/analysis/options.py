"""The options of ``ablbench analyze`` and ``ablbench plan`` as frozen, typed objects, and the ``--names`` rule.

Rules, in order:

1. The CLI (``harness/commands/analyze.py``) builds one :class:`AnalyzeOptions` from its flags;
   :func:`harness.analysis.analyze` reads ``solved`` and ``errors_as_failures`` from it, the
   command the output fields.
2. ``--names`` gives one non-empty name per run, comma-separated (:func:`run_labels`); without
   it every run is named by its folder.
3. ``ablbench plan`` builds one :class:`PlanOptions`; :func:`harness.analysis.plan_report.make_plan`
   reads all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ablbench.errors import AblbenchError


@dataclass(frozen=True)
class AnalyzeOptions:
    """The options of one ``ablbench analyze`` invocation (paths ``-`` mean stdout)."""

    names: str | None = None  # comma-separated, one per run
    json_out: Path | None = None
    markdown_out: Path | None = None
    plots: Path | None = None
    html_out: Path | None = None
    solved: str = "mean"  # a key of harness.analysis.compare.SOLVED_RULES
    errors_as_failures: bool = False
    judge: tuple[str, str] | None = None  # (OpenAI-compatible URL, model name)
    allow_mixed_structured: bool = False


def run_labels(names: str | None, n_runs: int) -> list[str | None]:
    """One label per run from ``--names`` (rule 2); None leaves the run its own name."""
    labels: list[str | None] = [n.strip() for n in names.split(",")] if names else [None] * n_runs
    if len(labels) != n_runs or any(label == "" for label in labels):
        raise AblbenchError(f"--names has {len(labels)} name(s) for {n_runs} run(s); give one non-empty "
                            "name per RUN, comma-separated")
    return labels


@dataclass(frozen=True)
class PlanOptions:
    """The options of one ``ablbench plan`` invocation (harness.analysis.plan_report reads them)."""

    tasks: int | None = None  # default: the denominator of --base-solved, or the pilot's task count
    base_rate: float | None = None
    base_solved: str | None = None  # "3/89"
    pilot: Path | None = None  # a results folder (or anything analyze reads) whose per-task rates set the model
    model: str = "beta"  # a key of harness.analysis.plan.MODELS
    concentration: float = 2.0  # a + b of the Beta of per-task rates, when the data cannot tell
    effect: float = 5.0  # percentage points, mean-of-k accuracy of the edited model minus the base
    alpha: float = 0.05
    power: float = 0.8  # the target of the minimum detectable effect
    attempts: str = "1,3,5,10"  # comma-separated k values
    trial_minutes: float | None = None  # per trial, for GPU-hours
    studies: int = 2000  # simulated studies per k
    seed: int = 0
    json_out: Path | None = None
