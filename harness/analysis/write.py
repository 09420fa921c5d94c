"""Analyse results folders and write the reports ``AnalyzeOptions`` asks for, in one call.

Rules, in order:

1. ``analyze_paths`` loads each run (results folder, master_summary.csv, harbor job, tb run),
   names it from ``--names``, checks that ``--structured`` runs are not mixed (a warning, or an
   error without ``allow_mixed_structured``), analyses (harness and task drift become warnings), asks the judge when one is given, and
   writes the JSON, markdown, plots and HTML it was asked for. It prints nothing.
2. An output path ``-`` means stdout: it is left to the caller (``Analysis.report`` holds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablbench.errors import AblbenchError
from harness.analysis.options import AnalyzeOptions


@dataclass
class Analysis:
    """One analysis: the report (JSON-ready), the runs it read, its warnings and the files it wrote."""

    report: Any
    runs: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def analyze_paths(paths: list[Path], o: AnalyzeOptions = AnalyzeOptions()) -> Analysis:
    """Rule 1 over ``paths``; raises ``AblbenchError`` on unreadable runs or bad options."""
    from ablbench.atomic import write_text_atomic
    from harness.analysis.compare import analyze
    from harness.analysis.drift import drift_notes
    from harness.analysis.loaders import load_run
    from harness.analysis.options import run_labels
    from harness.analysis.report import to_json, to_markdown
    from harness.analysis.structured import check_structured_pairing

    labels = run_labels(o.names, len(paths))
    if str(o.json_out) == "-" and str(o.markdown_out) == "-":
        raise AblbenchError("--json - and --markdown - both want stdout; send one of them to a file")
    loaded = [load_run(Path(path), label) for path, label in zip(paths, labels, strict=True)]
    result = Analysis(report=None, runs=loaded, warnings=list(check_structured_pairing(loaded, o.allow_mixed_structured)))
    res = result.report = analyze(loaded, o)
    result.warnings += drift_notes(res["harness_drift"], res["task_drift"])
    if o.judge is not None and o.judge[0] is not None:
        from harness.analysis.pass_judge import judge_passes
        from harness.analysis.refusal_judge import judge_refusals

        judge_refusals(res["behaviour"], *o.judge)
        drifted = frozenset() if res["task_drift"]["kept"] else frozenset(d["task"] for d in res["task_drift"]["tasks"])
        judge_passes(res["audit"], loaded, *o.judge, skip_tasks=drifted)
    for out, text in ((o.json_out, to_json), (o.markdown_out, to_markdown)):
        if out is not None and str(out) != "-":
            write_text_atomic(Path(out), text(res))
            result.written.append(Path(out))
    made: list[Path] | None = None
    if o.plots is not None:
        from harness.analysis.plots import make_plots

        made = make_plots(res, o.plots)
        result.written += made
    if o.html_out is not None:
        from harness.analysis.html import build_report

        write_text_atomic(Path(o.html_out), build_report(res, loaded, made))
        result.written.append(Path(o.html_out))
    return result
