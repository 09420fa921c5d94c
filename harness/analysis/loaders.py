"""Read runs from disk: ablbench results folders, master_summary.csv files, harbor job
folders and legacy ``tb`` runs folders, all into :class:`~harness.analysis.model.Run`.

A results folder's outcomes come from its ``master_summary.csv``; its ``run.json`` and every
``result.json`` are validated first (``ablbench.records``), so a malformed one stops the analysis
with one line naming the file and the field."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from ablbench.errors import AblbenchError
from ablbench.results import SUMMARY_FILE as SUMMARY
from ablbench.results import read_run_meta, read_summary_rows, scan_results
from harness.analysis.model import Run, Trial


def load_run(path: Path, name: str | None = None) -> Run:
    """Load one run from ``path``, detecting its format; ``name`` defaults to the folder name."""
    path = Path(path)
    if not path.exists():
        raise AblbenchError(f"{path}: no such file or folder; pass a results folder, a {SUMMARY}, "
                            "a harbor job folder or a tb runs folder")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise AblbenchError(f"{path}: not a CSV; pass a results folder or its {SUMMARY}")
        return Run(name or _default_name(path.parent), path, "csv", read_summary_csv(path))
    if (path / SUMMARY).is_file():
        scan_results(path)  # validates every result.json (RecordError names the file and the field)
        return Run(name or _results_name(path), path, "results", read_summary_csv(path / SUMMARY))
    tb = _tb_results_file(path)
    if tb is not None:
        return Run(name or tb.parent.name, tb.parent, "tb", read_tb_run(tb.parent))
    job = _harbor_job_dir(path)
    if job is not None:
        return Run(name or job.name, job, "harbor", read_harbor_job(job))
    raise AblbenchError(f"{path}: found no {SUMMARY}, no harbor trial result.json and no tb results.json; "
                        "pass a results folder written by `ablbench run`, a harbor job or a tb run folder")


def _default_name(folder: Path) -> str:
    return folder.resolve().name or "run"


def _results_name(folder: Path) -> str:
    """The run's name from run.json (``name``, else ``run_id``) when it records one, else the folder name."""
    meta = read_run_meta(folder)
    for key in ("name", "run_id"):
        if isinstance(meta.get(key), str) and meta[key]:
            return meta[key]
    return _default_name(folder)


def _num(value: Any) -> float | None:
    """A finite float from a CSV/JSON cell, or None when empty or unparseable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def read_summary_csv(path: Path) -> list[Trial]:
    """Trials from a master_summary.csv (needs columns ``task`` and ``reward``; the rest optional)."""
    header, rows = read_summary_rows(path)
    missing = {"task", "reward"} - set(header)
    if missing:
        raise AblbenchError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                            f"a {SUMMARY} needs at least 'task' and 'reward'")
    trials: list[Trial] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):
        task = (row.get("task") or "").strip()
        if not task:
            raise AblbenchError(f"{path}:{i}: empty task name; fix or delete that row")
        reward = _num(row.get("reward"))
        attempt_num = _num(row.get("attempt"))
        seen[task] = seen.get(task, 0) + 1
        attempt = int(attempt_num) if attempt_num is not None else seen[task]
        outcome = (row.get("outcome") or "").strip() or _outcome_from_reward(reward)
        folder = path.parent / task / str(attempt)
        trials.append(Trial(task=task, attempt=attempt, reward=reward or 0.0, outcome=outcome,
                            parse_fail=_num(row.get("parse_fail")), no_cmd=_num(row.get("no_cmd")),
                            error=(row.get("error") or "").strip(), trial_dir=folder if folder.is_dir() else None,
                            columns=dict(row)))
    if not trials:
        raise AblbenchError(f"{path}: no trials in the file; was the run interrupted before any task finished?")
    return trials


def _outcome_from_reward(reward: float | None) -> str:
    if reward is None:
        return "infra_error"
    return "passed" if reward >= 1 - 1e-9 else "failed"


# ---------------------------------------------------------------- harbor


def _is_harbor_trial(result: Path) -> bool:
    try:
        data = json.loads(result.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "task_name" in data


def _harbor_job_dir(path: Path) -> Path | None:
    """``path`` itself when its sub-folders are harbor trials; the single job below a jobs/ folder."""
    if any(_is_harbor_trial(r) for r in path.glob("*/result.json")):
        return path
    jobs = sorted({r.parent.parent for r in path.glob("*/*/result.json") if _is_harbor_trial(r)})
    if len(jobs) == 1:
        return jobs[0]
    if len(jobs) > 1:
        names = ", ".join(j.name for j in jobs[:5])
        raise AblbenchError(f"{path}: holds {len(jobs)} harbor jobs ({names}); pass one job folder per run")
    return None


def _harbor_reward(data: dict) -> float | None:
    vr = data.get("verifier_result") or {}
    rewards = vr.get("rewards") if isinstance(vr, dict) else None
    if not isinstance(rewards, dict) or not rewards:
        return None
    if "reward" in rewards:
        return _num(rewards["reward"])
    values = [v for v in (_num(x) for x in rewards.values()) if v is not None]
    return sum(values) / len(values) if values else None


#: stop reasons of ablbench's harbor agent (``metadata.ablbench.stop``) that name the outcome of a failed trial
_ABLBENCH_STOPS = {"context_exceeded", "parse_fail_exhausted", "llm_error"}


def _harbor_outcome(reward: float | None, exc_type: str, ablbench_stop: str = "") -> str:
    if reward is not None and reward >= 1 - 1e-9:
        return "passed"  # the verifier runs even after an agent timeout and its reward counts
    low = exc_type.lower()
    if "agenttimeout" in low:
        return "agent_timeout"
    if "contextlength" in low:
        return "context_exceeded"
    if "verifier" in low or "rewardfile" in low:
        return "verifier_error"
    if exc_type:
        return "infra_error"
    if reward is not None and ablbench_stop in _ABLBENCH_STOPS:
        return ablbench_stop
    return "failed" if reward is not None else "verifier_error"


def _ablbench_meta(data: dict) -> dict:
    """``agent_result.metadata.ablbench`` of a trial run by ablbench's harbor agent ({} otherwise)."""
    agent = data.get("agent_result")
    meta = agent.get("metadata") if isinstance(agent, dict) else None
    found = meta.get("ablbench") if isinstance(meta, dict) else None
    return found if isinstance(found, dict) else {}


def read_harbor_job(job: Path) -> list[Trial]:
    """Trials of a harbor job: each ``<job>/<trial>/result.json`` with task_name and verifier_result.

    Any agent's job reads (harbor's ``terminus-2``, ``oracle``...); trials of ablbench's harbor agent
    also give their parse failures, no-command replies and stop reason (``metadata.ablbench``)."""
    raw: list[tuple[str, str, str, Trial]] = []
    for result in sorted(job.glob("*/result.json")):
        try:
            data = json.loads(result.read_text())
        except (OSError, ValueError) as exc:
            raise AblbenchError(f"{result}: unreadable JSON ({exc}); delete the trial folder or rerun it") from exc
        if not isinstance(data, dict) or "task_name" not in data:
            continue
        reward = _harbor_reward(data)
        exc_info = data.get("exception_info") or {}
        exc_type = str(exc_info.get("exception_type") or "") if isinstance(exc_info, dict) else ""
        exc_msg = str(exc_info.get("exception_message") or "") if isinstance(exc_info, dict) else ""
        meta = _ablbench_meta(data)
        trial = Trial(task=str(data["task_name"]), attempt=0, reward=reward or 0.0,
                      outcome=_harbor_outcome(reward, exc_type, str(meta.get("stop") or "")),
                      parse_fail=_num(meta.get("parse_failures")), no_cmd=_num(meta.get("no_command_replies")),
                      error=f"{exc_type}: {exc_msg}".strip(": ") if exc_type else str(meta.get("error") or ""),
                      trial_dir=result.parent)
        raw.append((trial.task, str(data.get("started_at") or ""), str(data.get("trial_name") or result.parent.name),
                    trial))
    if not raw:
        raise AblbenchError(f"{job}: no harbor trial result.json with a task_name; is the job still running?")
    return _number_attempts(raw)


def _number_attempts(raw: list[tuple[str, str, str, Trial]]) -> list[Trial]:
    """Give each task's trials attempts 1, 2, ... in (start time, trial name) order."""
    out: list[Trial] = []
    count: dict[str, int] = {}
    for task, _start, _name, trial in sorted(raw, key=lambda r: (r[0], r[1], r[2])):
        count[task] = count.get(task, 0) + 1
        out.append(replace(trial, attempt=count[task]))
    return out


# ---------------------------------------------------------------- tb (legacy terminal-bench)

_TB_FAILURE = {
    "agent_timeout": "agent_timeout",
    "test_timeout": "verifier_error",
    "parse_error": "verifier_error",
    "context_length_exceeded": "context_exceeded",
    "fatal_llm_parse_error": "parse_fail_exhausted",
    "unknown_agent_error": "llm_error",
    "output_length_exceeded": "llm_error",
    "agent_installation_failed": "infra_error",
}
_TB_ATTEMPT = re.compile(r"\.(\d+)-of-\d+")


def _is_tb_results(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("results"), list) and (
        not data["results"] or "task_id" in data["results"][0])


def _tb_results_file(path: Path) -> Path | None:
    """The run-level results.json of a tb run folder (or of the only run under a runs/ folder)."""
    if (path / "results.json").is_file() and _is_tb_results(path / "results.json"):
        return path / "results.json"
    if any(_is_tb_trial(p) for p in path.glob("*/*/results.json")):
        return path / "results.json"  # run-level file missing: read_tb_run falls back to trials
    runs = sorted(p for p in path.glob("*/results.json") if _is_tb_results(p))
    if len(runs) == 1:
        return runs[0]
    if len(runs) > 1:
        names = ", ".join(p.parent.name for p in runs[:5])
        raise AblbenchError(f"{path}: holds {len(runs)} tb runs ({names}); pass one run folder per run")
    return None


def _is_tb_trial(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "task_id" in data and "is_resolved" in data


def read_tb_run(run: Path) -> list[Trial]:
    """Trials of a tb run from ``results.json`` (``results[]`` with task_id, is_resolved, failure_mode);
    falls back to the per-trial ``<task>/<trial>/results.json`` files when the run-level file is missing."""
    top = run / "results.json"
    if top.is_file():
        records = json.loads(top.read_text()).get("results", [])
    else:
        records = [json.loads(p.read_text()) for p in sorted(run.glob("*/*/results.json")) if _is_tb_trial(p)]
    raw: list[tuple[str, str, str, Trial]] = []
    for rec in records:
        task = str(rec.get("task_id") or "")
        if not task:
            raise AblbenchError(f"{run}: a tb result without task_id; the results.json is damaged, rerun `tb`")
        resolved = rec.get("is_resolved")
        mode = str(rec.get("failure_mode") or "unset")
        if resolved is True:
            outcome = "passed"
        elif mode in _TB_FAILURE:
            outcome = _TB_FAILURE[mode]
        elif resolved is None:
            outcome = "infra_error"
        else:
            outcome = "failed"
        name = str(rec.get("trial_name") or "")
        m = _TB_ATTEMPT.search(name)
        order = f"{int(m.group(1)):06d}" if m else str(rec.get("trial_started_at") or "")
        raw.append((task, order, name, Trial(task, 0, 1.0 if resolved is True else 0.0, outcome,
                                             error="" if mode in {"unset", "none"} else mode)))
    if not raw:
        raise AblbenchError(f"{run}: the tb run has no results yet; wait for it to finish or pass another run")
    return _number_attempts(raw)
