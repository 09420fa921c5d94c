"""Runs compared like for like: the same harness in every arm, and the same version of every task.

Rules, in order:

1. A run's harness identity and its task hashes come from its ``run.json`` (``harness`` and
   ``fingerprint.tasks``). Other formats (harbor, tb, a bare CSV) and run folders written before
   these existed have none: they are unknown, which is said (when another run's is known), never refused.
2. Harness drift: runs whose known identity fields differ (``harness.identity``) are not paired;
   the error lists every differing field in one line. ``--allow-harness-drift`` compares them
   anyway and the report says which fields differ.
3. Task drift: a task every run attempted whose content hash is known in at least two runs and
   differs between them is a different task under the same name (TB 2.0 vs 2.1, a local edit).
   It leaves the whole analysis (rates, paired tests, overlap), listed with both hashes, unless
   ``--allow-task-drift`` keeps it (then it is listed as kept).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ablbench.errors import AblbenchError
from harness.analysis.model import Run
from harness.identity import identity_differences


def run_meta(run: Run) -> dict | None:
    """The run's run.json, or None when it has none (rule 1)."""
    folder = run.source if run.source.is_dir() else run.source.parent
    try:
        meta = json.loads((Path(folder) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def run_identity(run: Run) -> dict | None:
    """The harness identity recorded in the run's run.json (None: unknown)."""
    meta = run_meta(run) or {}
    ident = meta.get("harness")
    return ident if isinstance(ident, dict) else None


def task_hashes(run: Run) -> dict[str, str]:
    """Task name -> content hash from the run's run.json ({} when unknown)."""
    tasks = ((run_meta(run) or {}).get("fingerprint") or {}).get("tasks")
    return {str(k): str(v) for k, v in tasks.items()} if isinstance(tasks, dict) else {}


def check_harness(runs: Sequence[Run], allow_drift: bool = False) -> dict:
    """Rule 2: raise on differing harness identities unless allowed; the report's ``harness`` section."""
    identities = {r.name: run_identity(r) for r in runs}
    differ, unknown = identity_differences(identities)
    if all(i is None for i in identities.values()) or len(runs) < 2:
        unknown = []  # nothing to check against: not worth a warning (harbor or tb runs only)
    if differ and not allow_drift:
        raise AblbenchError(
            f"these runs used different harnesses: {'; '.join(differ)} -- a score difference could come from the "
            "harness, not the model: rerun one arm with the other's settings, or pass --allow-harness-drift"
        )
    return {"differ": differ, "unknown": unknown, "allowed": bool(differ and allow_drift)}


def task_drift(runs: Sequence[Run]) -> list[dict]:
    """Rule 3: the shared tasks whose content hash differs between runs, with each run's hash."""
    hashes = {r.name: task_hashes(r) for r in runs}
    shared = set.intersection(*(r.tasks() for r in runs)) if runs else set()
    out = []
    for task in sorted(shared):
        known = {name: h[task] for name, h in hashes.items() if task in h}
        if len(set(known.values())) > 1:
            out.append({"task": task, "hashes": known})
    return out


def apply_task_drift(runs: Sequence[Run], allow_drift: bool = False) -> tuple[list[Run], dict]:
    """(runs without the drifted tasks unless allowed, the report's ``task_drift`` section)."""
    drifted = task_drift(runs)
    unknown = [r.name for r in runs if not task_hashes(r)]
    known_somewhere = len(unknown) < len(runs)
    section = {"tasks": drifted, "kept": allow_drift, "unknown": unknown if known_somewhere else []}
    if not drifted or allow_drift:
        return list(runs), section
    gone = {d["task"] for d in drifted}
    if all(not (r.tasks() - gone) for r in runs) or not set.intersection(*(r.tasks() - gone for r in runs)):
        raise AblbenchError(
            f"every task the runs share differs in content between them ({', '.join(sorted(gone)[:5])}"
            f"{' ...' if len(gone) > 5 else ''}): they ran different task versions -- rerun on the same tasks "
            "(`ablbench tasks diff` shows what changed), or pass --allow-task-drift to compare them anyway")
    return [replace(r, trials=[t for t in r.trials if t.task not in gone]) for r in runs], section


def compare_like_for_like(runs: Sequence[Run], allow_harness_drift: bool = False,
                          allow_task_drift: bool = False) -> tuple[list[Run], dict]:
    """Rules 2 and 3 in one step: (the runs to analyse, {"harness", "tasks", "notes"})."""
    harness = check_harness(runs, allow_harness_drift)
    kept, tasks = apply_task_drift(runs, allow_task_drift)
    return kept, {"harness": harness, "tasks": tasks, "notes": drift_notes(harness, tasks)}


def drift_notes(harness: dict, tasks: dict) -> list[str]:
    """The one-line warnings the CLI prints and the report repeats."""
    notes = []
    if harness["allowed"]:
        notes.append(f"comparing runs with different harnesses (--allow-harness-drift): {'; '.join(harness['differ'])}")
    if harness["unknown"]:
        notes.append(f"harness identity unknown (run.json predates it or the format has none) for "
                     f"{'; '.join(harness['unknown'])}: it could not be checked")
    if tasks["tasks"]:
        names = ", ".join(d["task"] for d in tasks["tasks"])
        notes.append(f"{len(tasks['tasks'])} task(s) differ in content between runs ({names}): "
                     + ("kept in the analysis (--allow-task-drift)" if tasks["kept"]
                        else "left out of the analysis; --allow-task-drift keeps them"))
    if tasks["unknown"]:
        notes.append(f"task versions unknown for {', '.join(tasks['unknown'])} (no task hashes in run.json)")
    return notes


def drift_section(res: dict) -> list[str]:
    """The markdown section on harness and task drift ([] when there is nothing to say)."""
    h, t = res.get("harness_drift"), res.get("task_drift")
    if not h and not t:
        return []
    lines = ["## Same harness, same tasks", ""]
    if h:
        lines.append("Harness identity (ablbench version and commit, prompt hash, parser rules, --structured, turns, "
                     "tokens, sampling, timeout multiplier): "
                     + (f"**differs** in {'; '.join(h['differ'])} (compared anyway: --allow-harness-drift)."
                        if h["differ"] else "the same in every run where it is known."))
        if h["unknown"]:
            lines.append(f"Unknown (not recorded): {'; '.join(h['unknown'])}.")
        lines.append("")
    if t and t["tasks"]:
        verb = "kept in the analysis (--allow-task-drift)" if t["kept"] else \
            "left out of the whole analysis, because a same-named task with other content is another task"
        lines += [f"Tasks whose content differs between runs, {verb}:", ""]
        for d in t["tasks"]:
            shown = ", ".join(f"{name} {h.removeprefix('sha256:')[:12]}" for name, h in d["hashes"].items())
            lines.append(f"- {d['task']}: {shown}")
        lines.append("")
    elif t:
        lines += ["Every shared task has the same content hash in every run where it is known.", ""]
    if t and t["unknown"]:
        lines += [f"Task versions unknown for {', '.join(t['unknown'])} (no task hashes recorded).", ""]
    return lines
