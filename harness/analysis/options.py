"""The options of ``ablbench analyze`` and ``ablbench plan`` as frozen, typed objects, and the ``--names`` rule.

Rules, in order:

1. The classes are declared in :mod:`harness.analysis_options` (light, for the CLI) and re-exported here;
   the CLI (``harness/commands/analyze.py``) builds one :class:`AnalyzeOptions` from its flags;
   :func:`harness.analysis.analyze` reads ``solved`` and ``errors_as_failures`` from it,
   :func:`harness.analysis.drift.compare_like_for_like` the ``allow_*`` fields, the command the
   output fields.
2. ``--names`` gives one non-empty name per run, comma-separated (:func:`run_labels`); without
   it every run is named by its folder.
3. ``ablbench plan`` builds one :class:`PlanOptions`; :func:`harness.analysis.plan_report.make_plan`
   reads all of it.
"""

from __future__ import annotations

from ablbench.errors import AblbenchError
from harness.analysis_options import AnalyzeOptions, PlanOptions, ViewOptions

__all__ = ["AnalyzeOptions", "PlanOptions", "ViewOptions", "run_labels"]


def run_labels(names: str | None, n_runs: int) -> list[str | None]:
    """One label per run from ``--names`` (rule 2); None leaves the run its own name."""
    labels: list[str | None] = [n.strip() for n in names.split(",")] if names else [None] * n_runs
    if len(labels) != n_runs or any(label == "" for label in labels):
        raise AblbenchError(f"--names has {len(labels)} name(s) for {n_runs} run(s); give one non-empty "
                            "name per RUN, comma-separated")
    return labels
