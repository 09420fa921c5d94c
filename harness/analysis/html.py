"""The HTML report: one self-contained page per comparison (``analyze --html``, ``ablbench view``).

Rules, in order:

1. The statistics are not recomputed: the page embeds the analysis JSON exactly as
   :func:`harness.analysis.report.to_json` writes it, and the tables are
   :func:`~harness.analysis.report.to_markdown`'s markdown rendered to HTML (markdown-it, raw HTML
   off), so the page says what the markdown says.
2. The figures are the PNG files :func:`harness.analysis.plots.make_plots` writes, embedded as
   base64 ``data:`` images; the page never draws them a second way. Without the [plots] extra
   the page has no figures and says which install brings them.
3. The task x run matrix comes from the loaded runs' trials (one cell per trial, coloured by
   outcome). In a results folder, trial folders without a finished result.json are ``running``,
   and tasks x attempts that run.json plans but no trial has reached are ``pending``.
4. Each trial's record (:func:`harness.analysis.trials.trial_record`) is embedded as gzip +
   base64 in its own ``<script type="application/gzip+base64">``; the page decodes one only when
   it is opened. ``ablbench view`` embeds none and serves them from ``/api/trial`` instead.
   A passing trial the audit flagged carries its flags in its matrix cell (``audit``): the cell
   shows a flag mark and the trial view lists them.
5. Nothing is fetched: a Content-Security-Policy meta tag allows no source but the page's own
   hashed script and style and ``data:`` images (``view`` adds ``connect-src 'self'`` for its
   polling). The template, CSS and JS are package files in ``report_assets/``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from ablbench.results import read_run_meta
from harness.analysis.audit import RULE_TEXT, flags_by_trial
from harness.analysis.model import Run
from harness.analysis.trials import InstructionSource, trial_folder, trial_record, unfinished_trials

PLOT_CAPTIONS = {
    "pass_rates.png": "Pass rates with Wilson 95% intervals",
    "overlap_upset.png": "Overlap of solved tasks (UpSet)",
    "overlap_venn.png": "Overlap of solved tasks (Venn)",
    "task_heatmap.png": "Per-task pass rate over all attempts",
    "behaviour_runs.png": "Behaviour per run (points: trials)",
}
PLOTS_MISSING = "figures need the [plots] extra: pip install 'ablbench[plots]'"


def _asset(name: str) -> str:
    return resources.files("harness.analysis.report_assets").joinpath(name).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")


def trial_key(run_index: int, task: str, attempt: int) -> str:
    """The id of one trial in the page and in ``/api/trial?key=``."""
    return f"{run_index}|{task}|{attempt}"


def render_markdown(text: str) -> str:
    """Markdown (the analysis report) as HTML; raw HTML in the text is escaped, never passed through.

    Table alignment becomes a class (``a-right`` ...): the page's CSP allows no inline style.
    """
    from markdown_it import MarkdownIt

    out = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return re.sub(r' style="text-align:(left|right|center)"', r' class="a-\1"', out)


def plot_images(paths: list[Path]) -> list[dict]:
    """PNG files as ``{"name", "caption", "src"}`` with ``src`` a data: URI of the same bytes."""
    out = []
    for path in paths:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        out.append({"name": path.name, "caption": PLOT_CAPTIONS.get(path.name, path.stem.replace("_", " ")),
                    "src": f"data:image/png;base64,{data}"})
    return out


def _results_base(run: Run) -> Path | None:
    """The results folder of a run that has trial folders (ablbench results, or its summary CSV)."""
    if run.kind not in ("results", "csv"):
        return None
    return run.source if run.source.is_dir() else run.source.parent


def provenance(run: Run) -> dict:
    """What run.json says about who produced the run (model, agent, seeds, versions, git)."""
    base = _results_base(run)
    meta = read_run_meta(base) if base is not None else {}
    # run.json keeps one ``invocations`` entry per `ablbench run` (older ones: ``sessions`` + top-level provenance)
    sessions = [s for s in meta.get("invocations") or meta.get("sessions") or [] if isinstance(s, dict)]
    latest = {**meta, **sessions[-1]} if sessions else meta
    model = latest.get("model") if isinstance(latest.get("model"), dict) else {}
    entry = model.get("server_entry") if isinstance(model.get("server_entry"), dict) else {}
    agent = meta.get("agent") if isinstance(meta.get("agent"), dict) else {}
    options = latest.get("options") if isinstance(latest.get("options"), dict) else {}
    versions = latest.get("versions") if isinstance(latest.get("versions"), dict) else {}
    git = latest.get("git") if isinstance(latest.get("git"), dict) else {}
    facts = {
        "source": f"{run.source} ({run.kind})",
        "model": model.get("model"),
        "model server": model.get("base_url"),
        "served id": entry.get("id") or (model.get("probe") or {}).get("model"),
        "served weights": entry.get("root"),
        "context length": entry.get("max_model_len") or agent.get("context_length"),
        "agent": agent.get("name"),
        "agent settings": ", ".join(f"{k}={v}" for k, v in agent.items() if k != "name") or None,
        "seed": agent.get("seed", options.get("seed")),
        "attempts per task": meta.get("attempts"),
        "parallel": latest.get("parallel"),
        "timeout multiplier": meta.get("timeout_multiplier"),
        "tasks root": meta.get("tasks_root"),
        "ablbench": versions.get("ablbench"),
        "git sha": (git.get("sha") or "") + (" (dirty)" if git.get("dirty") else "") or None,
        "python": versions.get("python"),
        "docker engine": versions.get("docker_engine"),
        "started": meta.get("start"),
        "ended": meta.get("end"),
        "status": sessions[-1].get("status") if sessions else None,
    }
    shown = {k: v for k, v in meta.items() if k != "tasks"}
    if isinstance(meta.get("tasks"), list):
        shown["tasks"] = f"{len(meta['tasks'])} task names"
    return {"facts": {k: v for k, v in facts.items() if v not in (None, "")},
            "run_json": json.dumps(shown, indent=2, default=str)[:20000] if meta else None}


def _planned(run: Run) -> list[tuple[str, int]]:
    """Task x attempt pairs run.json plans (empty when it does not say)."""
    base = _results_base(run)
    meta = read_run_meta(base) if base is not None else {}
    tasks, attempts = meta.get("tasks"), meta.get("attempts")
    if not isinstance(tasks, list) or not isinstance(attempts, int):
        return []
    return [(str(t), a) for t in tasks for a in range(1, attempts + 1)]


def matrix_cells(runs: list[Run]) -> tuple[list[str], list[list[dict]]]:
    """(every task of any run, sorted; per run the list of its cells).

    A cell: ``task``, ``attempt``, ``outcome``, ``reward``, the summary counters, ``error``,
    ``key`` and ``trace`` (True when a trial folder can be opened).
    """
    tasks: set[str] = set()
    per_run: list[list[dict]] = []
    for i, run in enumerate(runs):
        base = _results_base(run)
        cells: dict[tuple[str, int], dict] = {}
        for t in run.trials:
            cells[(t.task, t.attempt)] = {
                "task": t.task, "attempt": t.attempt, "outcome": t.outcome, "reward": t.reward,
                "parse_fail": t.parse_fail, "no_cmd": t.no_cmd, "error": t.error[:300],
            }
        if base is not None:
            for task, attempt in unfinished_trials(base):
                cells.setdefault((task, attempt), {"task": task, "attempt": attempt, "outcome": "running"})
            for task, attempt in _planned(run):
                cells.setdefault((task, attempt), {"task": task, "attempt": attempt, "outcome": "pending"})
        for (task, attempt), cell in cells.items():
            cell["key"] = trial_key(i, task, attempt)
            cell["trace"] = base is not None and trial_folder(base, task, attempt) is not None
            tasks.add(task)
        per_run.append(sorted(cells.values(), key=lambda c: (c["task"], c["attempt"])))
    return sorted(tasks), per_run


def trial_records(runs: list[Run]) -> dict[str, dict]:
    """Every openable trial's record, keyed by :func:`trial_key`."""
    out: dict[str, dict] = {}
    _, per_run = matrix_cells(runs)
    for i, (run, cells) in enumerate(zip(runs, per_run, strict=True)):
        base = _results_base(run)
        if base is None:
            continue
        instructions = InstructionSource(base)
        for cell in cells:
            folder = trial_folder(base, cell["task"], cell["attempt"]) if cell["trace"] else None
            if folder is not None:
                out[cell["key"]] = {"run": runs[i].name, **trial_record(folder, cell["task"], cell["attempt"],
                                                                        instructions)}
    return out


def load_trial(runs: list[Run], key: str) -> dict | None:
    """One trial's record by key (for ``ablbench view``), or None when there is no such trial folder."""
    try:
        index, task, attempt = key.split("|")
        run = runs[int(index)]
        number = int(attempt)
    except (ValueError, IndexError):
        return None
    base = _results_base(run)
    folder = trial_folder(base, task, number) if base is not None else None
    if folder is None:
        return None
    return {"run": run.name, **trial_record(folder, task, number, InstructionSource(base))}


def draw_plots(res: dict, folder: Path) -> tuple[list[Path], str | None]:
    """The analysis figures drawn into ``folder``, or none and why (the [plots] extra is not installed)."""
    from importlib.util import find_spec

    if find_spec("matplotlib") is None or find_spec("matplotlib_venn") is None:
        return [], PLOTS_MISSING
    from harness.analysis.plots import make_plots

    return make_plots(res, folder), None


def page_data(runs: list[Run], res: dict | None, plots: list[Path], *, live: bool = False,
              analysis_error: str | None = None, poll_s: float = 3.0, plots_note: str | None = None) -> dict:
    """Everything the page shows except the analysis JSON and the trial records."""
    from harness.analysis.report import to_markdown

    tasks, per_run = matrix_cells(runs)
    flags = flags_by_trial((res or {}).get("audit") or {})
    for i, cells in enumerate(per_run):  # the pass audit's flags go beside the trial (harness.analysis.audit)
        for cell in cells:
            if (i, cell["task"], cell["attempt"]) in flags:
                cell["audit"] = [{"rule": RULE_TEXT.get(f["rule"], f["rule"]), "command": f["command"]}
                                 for f in flags[(i, cell["task"], cell["attempt"])]]
    analysed = set(res["runs"][0]["per_task_rate"]) if res else set()
    overlap = [{"label": o["label"], "runs": o["runs"], "tasks": o["tasks"]} for o in (res or {}).get("overlap", [])]
    if res:
        solved = {t for o in overlap for t in o["tasks"]}
        overlap.append({"label": "solved by none", "runs": [], "tasks": sorted(analysed - solved)})
    dropped = sorted(set(tasks) - analysed) if res else []
    names = ", ".join(r.name for r in runs)
    return {
        "title": f"Run comparison: {names}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "live": live,
        "poll_s": poll_s,
        "runs": [{"name": r.name, "kind": r.kind, "source": str(r.source), "trials": len(r.trials),
                  **provenance(r)} for r in runs],
        "tasks": tasks,
        "cells": per_run,
        "analysed": sorted(analysed),
        "dropped": dropped,
        "overlap": overlap,
        "stats_html": render_markdown(to_markdown(res)) if res else "",
        "analysis_error": analysis_error,
        "plots": plot_images(plots),
        "plots_note": plots_note,
    }


def _gzip_b64(record: dict) -> str:
    raw = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render(data: dict, analysis_json: str | None, records: dict[str, dict] | None = None) -> str:
    """The whole page; ``records`` embedded (static report) or None (served: fetched on click)."""
    css, js = _asset("report.css"), _asset("report.js")
    connect = " connect-src 'self';" if data.get("live") else ""
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(css)}; script-src {_csp_hash(js)};"
           f"{connect} base-uri 'none'; form-action 'none'")
    blobs = "".join(f'<script type="application/gzip+base64" data-trial="{key}">{_gzip_b64(rec)}</script>\n'
                    for key, rec in (records or {}).items())
    from html import escape

    values = {
        "CSP": escape(csp, quote=True),
        "TITLE": escape(data["title"]),
        "CSS": css,
        "DATA": _script_json(data),
        "ANALYSIS": (analysis_json or "null").replace("<", "\\u003c"),
        "TRIALS": blobs,
        "JS": js,
    }
    # one pass over the template: text inserted for one marker is never scanned for another
    return re.sub(r"@@([A-Z]+)@@", lambda m: values[m.group(1)], _asset("report.html"))


def build_report(res: dict, runs: list[Run], plots: list[Path] | None = None) -> str:
    """The static report for ``analyze --html``: figures drawn into a temporary folder unless given."""
    from harness.analysis.report import to_json

    if plots is None:
        with tempfile.TemporaryDirectory(prefix="ablbench-plots-") as tmp:
            drawn, note = draw_plots(res, Path(tmp))
            data = page_data(runs, res, drawn, plots_note=note)
    else:
        data = page_data(runs, res, plots)
    return render(data, to_json(res), trial_records(runs))
