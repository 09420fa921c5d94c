"""One trial's files as a compact, page-ready record (what a click in the HTML report shows).

Rules, in order:

1. A trial lives in ``<results>/<task>/<attempt>/`` (README "Results layout"); only ablbench
   results folders have such folders. Other formats give no record (the page shows the
   summary row instead).
2. ``trace.jsonl`` is read with :func:`harness.trace.read_trace`; a last line still being written
   (a live run) is skipped, never an error. Turn records (with ``turn``) become ``turns``; the
   ``start`` and ``end`` events are kept apart; any other event (``context_overflow`` ...) goes to
   ``events`` with the number of turns before it.
3. Long text is cut, never dropped, and the cut is marked in the text itself
   (:data:`CUT_MARK`): observations and logs keep more of their end (where the prompt and the
   test summary are), replies and reasoning more of their beginning. ``next_message`` is left
   out (it repeats the observation).
4. The instruction comes from the trace's start event when it records one, else from the task
   folder under run.json's ``tasks_root`` (loaded with :func:`harness.tasks.load_task`), else None.
5. ``result.json`` is kept whole apart from cut strings; an unfinished trial (no finished
   result.json) has ``result`` None and ``running`` True.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablbench.atif import read_trace_records
from ablbench.errors import AblbenchError
from ablbench.results import read_result, read_run_meta, trial_dir

CUT_MARK = "⋯ [{n} characters cut] ⋯"
#: (limit in characters, share of the kept text taken from the head) per kind of text
LIMITS: dict[str, tuple[int, float]] = {
    "observation": (3000, 0.3),
    "screen": (1500, 0.3),
    "reply": (6000, 0.7),
    "reasoning": (4000, 0.7),
    "log": (6000, 0.15),
    "other": (1500, 0.5),
}
_FIELD_KIND = {"observation": "observation", "screen": "screen", "reply": "reply", "reasoning": "reasoning",
               "content": "reply"}
_DROP = {"next_message"}


def cut(text: str, kind: str = "other") -> str:
    """``text`` within the limit for ``kind``; the middle is replaced by a marked line."""
    limit, head_share = LIMITS[kind]
    if len(text) <= limit:
        return text
    head = int(limit * head_share)
    tail = limit - head
    removed = len(text) - head - tail
    return f"{text[:head]}\n{CUT_MARK.format(n=removed)}\n{text[len(text) - tail:]}"


def _compact(value: Any, key: str = "") -> Any:
    """A copy of a trace/result value with long strings cut by their field's kind."""
    if isinstance(value, str):
        return cut(value, _FIELD_KIND.get(key, "other"))
    if isinstance(value, dict):
        return {k: _compact(v, k) for k, v in value.items() if k not in _DROP}
    if isinstance(value, list):
        return [_compact(v, key) for v in value]
    return value


def _read_lines(path: Path) -> list[dict]:
    """The trace's records; a torn last line (still being written) is skipped."""
    from jsonlines import Error as JsonlinesError

    from harness.trace import read_trace

    try:
        return [r for r in read_trace(path) if isinstance(r, dict)]
    except (JsonlinesError, ValueError, UnicodeDecodeError):
        return read_trace_records(path)


def read_trace_parts(path: Path) -> dict[str, Any]:
    """``{"start", "turns", "events", "end"}`` from a trace.jsonl (empty parts when it is missing)."""
    parts: dict[str, Any] = {"start": None, "turns": [], "events": [], "end": None}
    if not path.is_file():
        return parts
    for rec in _read_lines(path):
        rec = _compact(rec)
        event = rec.get("event")
        if event == "start":
            parts["start"] = rec
        elif event == "end":
            parts["end"] = rec
        elif "turn" in rec and event is None:
            parts["turns"].append(rec)
        else:
            parts["events"].append({**rec, "after_turn": len(parts["turns"])})
    return parts


def _tail_file(path: Path, kind: str = "log") -> str | None:
    try:
        return cut(path.read_text(encoding="utf-8", errors="replace"), kind)
    except OSError:
        return None


class InstructionSource:
    """Task instructions for a results folder, looked up once per task in run.json's ``tasks_root``."""

    def __init__(self, results: Path) -> None:
        root = read_run_meta(results).get("tasks_root")
        self.root = Path(root) if isinstance(root, str) and root else None
        self._cache: dict[str, str | None] = {}
        self._by_name: dict[str, Path] | None = None

    def _folder(self, task: str) -> Path | None:
        from harness.tasks import is_task_dir

        assert self.root is not None
        direct = self.root / task
        if direct.is_dir() and is_task_dir(direct):
            return direct
        if self._by_name is None:  # folder names may differ from task names: map them once
            from harness.tasks import discover_tasks

            try:
                self._by_name = {s.name: s.path for s in discover_tasks(self.root)}
            except (AblbenchError, OSError):
                self._by_name = {}
        return self._by_name.get(task)

    def get(self, task: str) -> str | None:
        """The instruction text of ``task``, or None when the task folder is not here."""
        if self.root is None or not self.root.is_dir():
            return None
        if task not in self._cache:
            from harness.tasks import load_task

            folder = self._folder(task)
            try:
                self._cache[task] = load_task(folder).instruction if folder else None
            except (AblbenchError, OSError):
                self._cache[task] = None
        return self._cache[task]


def trial_folder(results: Path, task: str, attempt: int) -> Path | None:
    """The trial's folder when ``results`` is an ablbench results folder holding it, else None."""
    base = results if results.is_dir() else results.parent
    folder = trial_dir(base, task, attempt)
    return folder if folder.is_dir() else None


def unfinished_trials(results: Path) -> list[tuple[str, int]]:
    """(task, attempt) of every trial folder without a finished result.json (running or interrupted)."""
    base = results if results.is_dir() else results.parent
    found = []
    for folder in base.glob("*/*/"):
        if folder.name.isdigit() and not folder.parent.name.startswith(".") and read_result(folder) is None \
                and ((folder / "trace.jsonl").exists() or (folder / "runner.stdout").exists()):
            found.append((folder.parent.name, int(folder.name)))
    return sorted(found)


def trial_record(folder: Path, task: str, attempt: int, instructions: InstructionSource | None = None) -> dict:
    """Everything the page shows for one trial, with long text cut and marked."""
    parts = read_trace_parts(folder / "trace.jsonl")
    result = read_result(folder)
    start = parts["start"] or {}
    instruction = start.get("instruction") if isinstance(start.get("instruction"), str) else None
    if instruction is None and instructions is not None:
        instruction = instructions.get(task)
    return {
        "task": task,
        "attempt": attempt,
        "running": result is None,
        "result": _compact(result) if result is not None else None,
        "instruction": cut(instruction, "reply") if instruction else None,
        **parts,
        "verifier_log": _tail_file(folder / "verifier.log"),
        "reward_txt": (_tail_file(folder / "reward.txt", "other") or "").strip() or None,
        "runner_log": _tail_file(folder / "runner.stdout"),
    }
