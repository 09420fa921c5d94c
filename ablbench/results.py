"""The on-disk results format of a run: atomic writes, trial folders, ``master_summary.csv``.

Layout (``results/<run>/``)::

    run.json                 the experiment (fingerprint, agent settings, model, tasks) and one
                             ``invocations`` entry per ``ablbench run`` (command, versions, times)
    master_summary.csv       one row per finished trial, sorted by (task, attempt)
    <task>/<attempt>/        trace.jsonl, reward.txt, runner.stdout, verifier.log, result.json
    .lock, .lock.owner       the writer's lock and who holds it (runners.run_lock)

A trial is *finished* when its ``result.json`` exists and says ``"finished": true``; only
finished trials are kept by ``--resume`` and listed in the summary. ``result.json`` and
``run.json`` are validated on read and before writing against their models
(``ablbench.records``): a malformed one is a one-line ``RecordError`` naming the file and field.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ablbench.atomic import write_json_atomic as write_json_atomic  # re-exported: one writer, in ablbench.atomic
from ablbench.atomic import write_text_atomic
from ablbench.errors import AblbenchError
from ablbench.records import RunRecord, TrialResult, check_record, read_record

SUMMARY_COLUMNS = (
    "task",
    "attempt",
    "reward",
    "outcome",
    "turns",
    "parse_fail",
    "no_cmd",
    "tokens_in",
    "tokens_out",
    "agent_s",
    "verifier_s",
    "total_s",
    "error",
    "cut_off",
    "leftover_procs",  # processes the agent left running when the verifier started (issue 13)
    # behaviour (harness.trial_behaviour; blank when the agent kept no trajectory, e.g. oracle):
    "commands",
    "distinct_commands",
    "refusal_turns",
    "task_complete_claimed",
    "false_completion",
    "first_cmd_s",
    "agent_error",  # the agent's own error (crash, LLM failure), also on a passed trial (issue 27)
)
#: the appended behaviour columns, filled from result.json's ``agent_extra.behaviour``
BEHAVIOUR_COLUMNS = ("commands", "distinct_commands", "refusal_turns", "task_complete_claimed",
                     "false_completion", "first_cmd_s")
#: outcomes where the verifier graded the final state as not passed (an errored trial is not graded)
GRADED_FAILURES = frozenset({"failed", "agent_timeout", "context_exceeded", "parse_fail_exhausted"})
RESULT_FILE = "result.json"
SUMMARY_FILE = "master_summary.csv"
RUN_FILE = "run.json"

def trial_dir(out_dir: Path, task: str, attempt: int) -> Path:
    """The folder of one trial."""
    return out_dir / task / str(attempt)


def load_result(folder: Path) -> tuple[TrialResult, dict] | None:
    """(the model, the raw dict) of the trial's ``result.json`` if present and finished, else None.

    A malformed file raises ``ablbench.records.RecordError`` (one line: file, field, fix).
    """
    path = folder / RESULT_FILE
    if not path.is_file():
        return None
    record, data = read_record(TrialResult, path)
    return (record, data) if record.finished else None


def read_result(folder: Path) -> dict | None:
    """The trial's ``result.json`` as written, if present and finished, else None (validated: see :func:`load_result`)."""
    loaded = load_result(folder)
    return loaded[1] if loaded is not None else None


def write_result(folder: Path, result: dict) -> Path:
    """Check ``result`` against ``TrialResult`` and write it atomically as the trial's ``result.json``."""
    path = folder / RESULT_FILE
    check_record(TrialResult, json.loads(json.dumps(result, default=str)), path)  # as it will read back
    write_json_atomic(path, result)
    return path


def summary_row(result: dict) -> dict[str, Any]:
    """One ``master_summary.csv`` row from a trial's result.json content."""
    counters = result.get("counters") or {}
    timings = result.get("timings") or {}
    error = result.get("error") or ""
    return {
        "task": result["task"],
        "attempt": result["attempt"],
        "reward": float(result.get("reward") or 0.0),
        "outcome": result["outcome"],
        "turns": counters.get("turns", 0),
        "parse_fail": counters.get("parse_fail", 0),
        "no_cmd": counters.get("no_cmd", 0),
        "tokens_in": counters.get("tokens_in", 0),
        "tokens_out": counters.get("tokens_out", 0),
        "agent_s": round(float(timings.get("agent") or 0.0), 3),
        "verifier_s": round(float(timings.get("verifier") or 0.0), 3),
        "total_s": round(float(timings.get("total") or 0.0), 3),
        "error": " ".join(str(error).split())[:300],
        "cut_off": counters.get("cut_off", 0),
        "leftover_procs": int(result.get("leftover_procs") or 0),
        **behaviour_cells(result),
        "agent_error": " ".join(str(result.get("agent_error") or "").split())[:300],
    }


def false_completion(claimed: bool | int | None, outcome: str) -> int | None:
    """1 when the agent claimed ``task_complete`` and the verifier graded the trial as not passed;
    0 when it made no claim or passed; None when unknown (no claim data, or a claim on a trial
    that errored before it could be graded)."""
    if claimed is None:
        return None
    if not claimed or outcome == "passed":
        return 0
    return 1 if outcome in GRADED_FAILURES else None


def behaviour_cells(result: dict) -> dict[str, Any]:
    """The :data:`BEHAVIOUR_COLUMNS` of a trial: from ``agent_extra.behaviour`` (the agent computes it
    from its trace), plus ``false_completion`` from the claim and the outcome; "" where unknown."""
    extra = result.get("agent_extra") or {}
    behaviour = extra.get("behaviour") if isinstance(extra, dict) else None
    if not isinstance(behaviour, dict):
        return dict.fromkeys(BEHAVIOUR_COLUMNS, "")
    cells: dict[str, Any] = {k: behaviour.get(k) for k in BEHAVIOUR_COLUMNS}
    cells["false_completion"] = false_completion(behaviour.get("task_complete_claimed"), str(result.get("outcome")))
    return {k: "" if v is None else v for k, v in cells.items()}


def write_summary(out_dir: Path, results: list[dict]) -> Path:
    """Rewrite ``master_summary.csv`` (rows sorted by task, attempt) atomically."""
    rows = sorted((summary_row(r) for r in results), key=lambda r: (r["task"], int(r["attempt"])))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = out_dir / SUMMARY_FILE
    write_text_atomic(path, buf.getvalue())
    return path


def scan_results(out_dir: Path) -> dict[tuple[str, int], dict]:
    """Every finished trial under ``out_dir``, keyed by (task, attempt)."""
    found: dict[tuple[str, int], dict] = {}
    if not out_dir.is_dir():
        return found
    for path in out_dir.glob(f"*/*/{RESULT_FILE}"):
        result = read_result(path.parent)
        if result is not None:
            found[(str(result["task"]), int(result["attempt"]))] = result
    return found


def read_summary_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a ``master_summary.csv`` (or any CSV of that shape), as text.

    Readers must tolerate columns they do not know and columns that are missing: the format
    only grows (new columns are appended), and other tools write summaries with fewer columns.
    """
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)
    except UnicodeDecodeError as exc:
        raise AblbenchError(f"{path}: not a text CSV ({exc.reason}); pass the run's {SUMMARY_FILE}") from exc


def read_run_meta(out_dir: Path) -> dict[str, Any]:
    """The run's ``run.json`` as written ({} when absent; validated against ``RunRecord`` on read)."""
    path = out_dir / RUN_FILE
    if not path.is_file():
        return {}
    return read_record(RunRecord, path)[1]
