"""Training samples from agent trajectories: which trials, and the exact messages the agent sent.

Rules, in order:
1. A source is an ablbench run folder (``<task>/<attempt>/result.json``, ``"finished": true``;
   the reward is its ``reward``), a harbor job (``<trial>/result.json`` with ``task_name``; the
   reward is ``verifier_result.rewards.reward``, else the mean of the rewards) or one trial
   folder of either. Anything else is a one-line error naming the forms it accepts.
2. Passed trials only (reward >= 1) unless ``include_failed``; a passed trial without a readable
   trajectory is an error (it would silently shrink the data).
3. The trajectory is ``trace.jsonl`` (``agent/trace.jsonl`` in a harbor trial), else ATIF
   ``agent/trajectory.json``. From a trace: the ``start`` record's ``messages`` (the first
   request), then per turn record the reply as the agent kept it (``history_reply(raw)``, passed
   in by the caller) and the turn's ``next_message``. From ATIF: its system/user steps, then per
   agent step the message and the observation.
4. When the agent trimmed its context (``request.trimmed_turns`` grows), the trajectory is cut
   into one sample per trimming level, each rebuilt as the request the agent sent: the head with
   the omission note, the kept exchanges as context (no loss), the level's replies trained.
5. A sample ends on an assistant reply (the last user message, never answered, is dropped).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablbench.atif import TRAJECTORY_FILE, read_trace_records
from sft.errors import SftError

TRACE_FILE = "trace.jsonl"


def _plain_reply(raw: str) -> str:
    return raw.strip() or "(empty reply)"


@dataclass(frozen=True)
class Trial:
    """One trial found in a source: its task, reward and trajectory file."""

    task: str
    reward: float
    folder: Path
    trajectory: Path | None  # trace.jsonl or trajectory.json; None when the trial kept none


@dataclass
class Sample:
    """One training sequence: chat messages and, per message, whether its tokens carry loss."""

    task: str
    source: str
    messages: list[dict] = field(default_factory=list)
    trained: list[bool] = field(default_factory=list)

    def add(self, role: str, content: str, trained: bool = False) -> None:
        self.messages.append({"role": role, "content": content})
        self.trained.append(trained)


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _harbor_reward(data: dict) -> float:
    rewards = (data.get("verifier_result") or {}).get("rewards") if isinstance(data.get("verifier_result"), dict) else None
    if not isinstance(rewards, dict) or not rewards:
        return 0.0
    if "reward" in rewards:
        return float(rewards["reward"] or 0.0)
    values = [float(v) for v in rewards.values() if isinstance(v, int | float)]
    return sum(values) / len(values) if values else 0.0


def _trajectory(folder: Path) -> Path | None:
    for rel in (TRACE_FILE, f"agent/{TRACE_FILE}", f"agent/{TRAJECTORY_FILE}"):
        p = folder / rel
        if p.is_file() and p.stat().st_size > 0:
            return p
    return None


def _trial(result: Path) -> Trial | None:
    data = _json(result)
    if data is None:
        return None
    folder = result.parent
    if "task_name" in data:  # harbor
        return Trial(str(data["task_name"]), _harbor_reward(data), folder, _trajectory(folder))
    if "task" in data and data.get("finished"):
        return Trial(str(data["task"]), float(data.get("reward") or 0.0), folder, _trajectory(folder))
    return None


def find_trials(source: Path) -> list[Trial]:
    """The finished trials of one source (module rule 1), in path order."""
    source = Path(source)
    if not source.is_dir():
        raise SftError(f"--traces {source}: no such folder; pass an ablbench run folder, a harbor job or a trial folder")
    own = _trial(source / "result.json") if (source / "result.json").is_file() else None
    if own is not None:
        return [own]
    found = [t for r in sorted(source.glob("*/result.json")) if (t := _trial(r)) is not None]
    found += [t for r in sorted(source.glob("*/*/result.json")) if (t := _trial(r)) is not None]
    if not found:
        raise SftError(f"--traces {source}: found no finished trial (<task>/<attempt>/result.json of `ablbench run`, "
                       "<trial>/result.json of a harbor job); pass a run folder, a harbor job or a trial folder")
    return found


def select_trials(sources: Iterable[Path], include_failed: bool = False) -> tuple[list[Trial], int]:
    """(the trials to train on, how many finished trials were left out as not passed) (rules 1-2)."""
    keep, dropped = [], 0
    for src in sources:
        for t in find_trials(src):
            if t.reward < 1.0 and not include_failed:
                dropped += 1
                continue
            if t.trajectory is None:
                raise SftError(f"{t.folder}: the trial has no trace.jsonl or agent/trajectory.json; "
                               "remove it from the source or rerun it")
            keep.append(t)
    return keep, dropped


def _turn_records(records: list[dict]) -> list[dict]:
    return [r for r in records if isinstance(r.get("turn"), int) and "reply" in r]


def samples_from_trace(records: list[dict], task: str, source: str,
                       history_reply: Callable[[str], str] = _plain_reply) -> list[Sample]:
    """The samples of one ``trace.jsonl`` (rules 3-5); [] when it has no first request or no turn."""
    start = next((r for r in records if r.get("event") == "start"), None)
    head = [m for m in (start or {}).get("messages") or [] if isinstance(m, dict)]
    turns = _turn_records(records)
    if not head or not turns:
        return []
    body: list[tuple[dict, dict, int]] = []  # (assistant, next user, trimmed level of the request)
    for rec in turns:
        trimmed = int((rec.get("request") or {}).get("trimmed_turns") or 0)
        body.append(({"role": "assistant", "content": history_reply(str(rec.get("reply") or ""))},
                     {"role": "user", "content": str(rec.get("next_message") or "")}, trimmed))
    samples: list[Sample] = []
    levels = sorted({lvl for _, _, lvl in body})
    for level in levels:
        s = Sample(task, source)
        for m in head[:-1]:
            s.add(m["role"], str(m["content"]))
        note = f"\n\n[{level} earlier turn(s) omitted to fit the context window]" if level else ""
        s.add(head[-1]["role"], str(head[-1]["content"]) + note)
        last = max(i for i, (_, _, lvl) in enumerate(body) if lvl == level)
        for i in range(level, last + 1):
            a, u, lvl = body[i]
            s.add("assistant", a["content"], trained=lvl == level)
            if i < last:
                s.add("user", u["content"])
        samples.append(s)
    return samples


def samples_from_atif(traj: dict, task: str, source: str,
                      history_reply: Callable[[str], str] = _plain_reply) -> list[Sample]:
    """The sample of one ATIF trajectory (rules 3, 5): system/user steps, then agent steps."""
    s = Sample(task, source)
    pending_user: str | None = None
    for step in traj.get("steps") or []:
        if not isinstance(step, dict):
            continue
        src, msg = step.get("source"), str(step.get("message") or "")
        if src in {"system", "user"} and not any(s.trained):
            if src == "user" and s.messages and s.messages[-1]["role"] == "user":
                s.messages[-1]["content"] += "\n\n" + msg
            else:
                s.add(src, msg)
        elif src == "agent" and (step.get("llm_call_count") or 0) != 0 and s.messages:
            if pending_user is not None:
                s.add("user", pending_user)
            s.add("assistant", history_reply(msg), trained=True)
            results = (step.get("observation") or {}).get("results") or [{}]
            pending_user = str((results[0] or {}).get("content") or "")
    return [s] if any(s.trained) else []


def samples_from_trial(trial: Trial, history_reply: Callable[[str], str] = _plain_reply) -> list[Sample]:
    """The samples of one trial's trajectory file."""
    path = trial.trajectory
    if path is None:
        return []
    if path.name == TRAJECTORY_FILE:
        data = _json(path)
        if data is None:
            raise SftError(f"{path}: not a readable ATIF trajectory; remove the trial from the source or re-export it")
        return samples_from_atif(data, trial.task, str(path), history_reply)
    return samples_from_trace(read_trace_records(path), trial.task, str(path), history_reply)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_tasks(tasks: Iterable[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train tasks, validation tasks): whole tasks held out, chosen by a seeded shuffle (rule 3 of the package).

    At least one task stays for training; with two or more tasks and ``val_fraction > 0`` at least
    one is held out."""
    import random

    names = sorted(set(tasks))
    if not names:
        return [], []
    n_val = 0 if val_fraction <= 0 or len(names) < 2 else min(len(names) - 1, max(1, round(val_fraction * len(names))))
    order = names[:]
    random.Random(seed).shuffle(order)
    val = sorted(order[:n_val])
    return [t for t in names if t not in val], val


def describe(trials: list[Trial]) -> list[dict[str, Any]]:
    """Provenance rows: each trajectory file, its task, reward and sha256."""
    return [{"task": t.task, "reward": t.reward, "file": str(t.trajectory),
             "sha256": sha256_file(t.trajectory) if t.trajectory else None} for t in trials]
