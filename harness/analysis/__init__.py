"""Compare agent runs: pass rates, exact paired tests, overlap of solved tasks, power, plots.

``load_run`` reads a results folder / master_summary.csv / harbor job / tb run;
``analyze`` turns runs into one JSON-ready dict; ``report`` writes it as markdown or JSON;
``plots`` draws it. The dict's ``behaviour`` section (``behaviour``, ``paired_stats``,
``behaviour_report``, ``behaviour_plots``, ``refusal_judge``) reads the trajectories.
"""

from harness.analysis.compare import SOLVED_RULES, analyze
from harness.analysis.loaders import load_run
from harness.analysis.model import Run, Trial
from harness.analysis.options import AnalyzeOptions

__all__ = ["SOLVED_RULES", "AnalyzeOptions", "Run", "Trial", "analyze", "load_run"]
