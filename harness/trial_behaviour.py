"""Per-trial behaviour metrics from a trajectory: ``trace.jsonl`` (ours) or an ATIF ``trajectory.json``.

Rules, in order:

1. A trajectory is a list of turns, one per model reply. In ``trace.jsonl`` a turn is a record
   with a ``turn`` key; only records after the last ``{"event": "start"}`` count (an appended
   rerun starts a new episode). In ATIF a turn is a step whose ``source`` is ``"agent"``, less
   model-free steps (``llm_call_count`` 0).
2. ``cut_off``: turns whose reply hit the token limit: the turn's ``cut_off`` field when present
   (``"dropped"``/``"salvaged"``/true = cut off; null/false = not), else ``finish_reason ==
   "length"``. As the agent counts them, a cut-off turn is counted here and not as
   ``parse_fail``/``no_cmd``, so the three are exclusive.
3. ``turns``: the number of turns. ``parse_fail`` / ``no_cmd``: other turns whose reply could not
   be parsed / parsed but ran no command (the parser's status; for ATIF, ``extra.parse.status``
   when present, else a parse error is read from the feedback text and a turn without tool calls
   that does not mark the task complete is ``no_cmd``).
4. ``refusal_turns``: turns whose visible reply (reasoning blocks removed) contains a marker of
   :data:`abliterate.evaluate.markers.REFUSAL_MARKERS` (one list for the whole project). They are keyword
   matches: :func:`refusal_turns` returns each hit with an excerpt so a person can check them.
5. ``commands``: commands executed (keystroke batches sent to the terminal);
   ``distinct_commands``: distinct keystroke strings among them (surrounding whitespace ignored).
6. ``task_complete_claimed``: 1 when any turn set ``task_complete`` (confirmed or not), else 0.
   Whether the claim was false needs the outcome: :func:`ablbench.results.false_completion`.
7. ``tokens_in`` / ``tokens_out``: sums of the replies' prompt / completion token usage.
8. ``first_cmd_s``: seconds from the agent's start until the reply that carried the first
   executed command arrived (None when no command ran or the times are missing); an ATIF step's
   timestamp less the terminal and harness time of ``metrics.extra.timings`` when given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ablbench.atif import read_trace_records
from abliterate.evaluate.markers import matched_markers, normalize
from harness.parser import strip_reasoning

#: the keys of :func:`metrics_from_trace` / :func:`metrics_from_atif`, in report order
METRIC_KEYS = ("turns", "parse_fail", "no_cmd", "cut_off", "refusal_turns", "commands", "distinct_commands",
               "task_complete_claimed", "tokens_in", "tokens_out", "first_cmd_s")
TRACE_FILE = "trace.jsonl"
ATIF_FILE = "trajectory.json"
EXCERPT_CHARS = 160


@dataclass(frozen=True)
class Turn:
    """One model reply, in the form both trajectory formats reduce to."""

    index: int  # 1-based turn number
    reply: str  # the reply as the model sent it (reasoning blocks included)
    parse_status: str | None  # "ok" | "no_cmd" | "parse_fail" | None (unknown)
    cut_off: bool
    commands: tuple[str, ...]  # keystrokes actually executed
    task_complete: bool
    tokens_in: int
    tokens_out: int
    #: seconds since the agent started when this reply arrived (None: unknown)
    reply_at_s: float | None


@dataclass(frozen=True)
class RefusalHit:
    """A turn whose reply carries a refusal marker."""

    turn: int
    markers: tuple[str, ...]
    excerpt: str
    reply: str


# ------------------------------------------------------------------ reading trajectories


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _cut_off(value: Any) -> bool:
    """A ``cut_off`` field (rule 2): the agent's "dropped"/"salvaged", a bool, or null."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "none", "false", "no")
    return bool(value)


def turns_from_trace(records: Iterable[dict]) -> list[Turn]:
    """The turns of a ``trace.jsonl`` (rule 1: those after the last start event)."""
    records = list(records)
    starts = [i for i, r in enumerate(records) if r.get("event") == "start"]
    first = starts[-1] if starts else 0
    t0 = _float(records[first].get("t")) if starts else None
    turns: list[Turn] = []
    for rec in records[first:]:
        if "turn" not in rec:
            continue
        parse = rec.get("parse") if isinstance(rec.get("parse"), dict) else {}
        usage = rec.get("usage") if isinstance(rec.get("usage"), dict) else {}
        timings = rec.get("timings") if isinstance(rec.get("timings"), dict) else {}
        cmds = rec.get("commands") if isinstance(rec.get("commands"), list) else []
        cut = _cut_off(rec["cut_off"]) if "cut_off" in rec else rec.get("finish_reason") == "length"
        t = _float(rec.get("t"))
        reply_at = None
        if t is not None and t0 is not None:
            after_reply = (_float(timings.get("terminal_s")) or 0.0) + (_float(timings.get("harness_s")) or 0.0)
            reply_at = max(0.0, t - after_reply - t0)
        turns.append(Turn(
            index=_int(rec.get("turn")) or len(turns) + 1,
            reply=str(rec.get("reply") or ""),
            parse_status=parse.get("status") if isinstance(parse.get("status"), str) else None,
            cut_off=bool(cut),
            commands=tuple(str(c.get("keystrokes", "")) if isinstance(c, dict) else str(c) for c in cmds),
            task_complete=bool(parse.get("task_complete")),
            tokens_in=_int(usage.get("prompt_tokens")),
            tokens_out=_int(usage.get("completion_tokens")),
            reply_at_s=reply_at,
        ))
    return turns


# ATIF (harbor's trajectory format): function names that mean "run this in the terminal" and
# "the task is done"; anything else carrying keystrokes/command arguments also counts as a command.
_ATIF_DONE = {"mark_task_complete", "task_complete", "complete_task", "submit"}
_ATIF_CMD_ARGS = ("keystrokes", "command", "cmd")
_ABSENT = object()


def _atif_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _atif_feedback(step: dict) -> str:
    obs = step.get("observation") if isinstance(step.get("observation"), dict) else {}
    results = obs.get("results") if isinstance(obs.get("results"), list) else []
    return "\n".join(str(r.get("content") or "") for r in results if isinstance(r, dict))


def turns_from_atif(data: dict) -> list[Turn]:
    """The turns of an ATIF trajectory (rule 1: the agent steps), read defensively."""
    steps = [s for s in data.get("steps") or [] if isinstance(s, dict)]
    times = [t for t in (_atif_time(s.get("timestamp")) for s in steps) if t is not None]
    t0 = min(times) if times else None
    turns: list[Turn] = []
    for step in steps:
        if step.get("source") != "agent" or step.get("llm_call_count") == 0:
            continue  # not a model reply (a model-free agent's command step)
        extra = step.get("extra") if isinstance(step.get("extra"), dict) else {}
        metrics = step.get("metrics") if isinstance(step.get("metrics"), dict) else {}
        m_extra = metrics.get("extra") if isinstance(metrics.get("extra"), dict) else {}
        commands: list[str] = []
        done = bool(extra.get("task_complete"))
        for call in step.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            name = str(call.get("function_name") or "").lower()
            args = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
            if name in _ATIF_DONE:
                done = True
                continue
            keys = next((args[k] for k in _ATIF_CMD_ARGS if isinstance(args.get(k), str)), None)
            if keys is not None:
                commands.append(keys)
        parse = extra.get("parse") if isinstance(extra.get("parse"), dict) else {}
        status = parse.get("status") or extra.get("parse_status")
        if not isinstance(status, str):
            if "parsing errors" in _atif_feedback(step).lower():
                status = "parse_fail"
            else:
                status = "ok" if commands or done else "no_cmd"
        flag = extra["cut_off"] if "cut_off" in extra else m_extra.get("cut_off", _ABSENT)
        finish = extra.get("finish_reason") or m_extra.get("finish_reason")
        at = _atif_time(step.get("timestamp"))
        timings = m_extra.get("timings") if isinstance(m_extra.get("timings"), dict) else {}
        if at is not None:  # ablbench's export stamps a step when its commands ended, like the trace
            at -= (_float(timings.get("terminal_s")) or 0.0) + (_float(timings.get("harness_s")) or 0.0)
        turns.append(Turn(
            index=len(turns) + 1,
            reply=str(step.get("message") or ""),
            parse_status=status,
            cut_off=finish == "length" if flag is _ABSENT else _cut_off(flag),
            commands=tuple(commands),
            task_complete=done,
            tokens_in=_int(metrics.get("prompt_tokens")),
            tokens_out=_int(metrics.get("completion_tokens")),
            reply_at_s=None if at is None or t0 is None else max(0.0, at - t0),
        ))
    return turns


def find_trajectory(trial_dir: Path) -> Path | None:
    """The trial's ``trace.jsonl`` (preferred) or ATIF ``trajectory.json``: in the folder, its
    ``agent/`` or ``logs/agent/`` sub-folder (harbor's layouts); None when there is none."""
    for sub in ("", "agent", "logs/agent"):
        for name in (TRACE_FILE, ATIF_FILE):
            path = trial_dir / sub / name if sub else trial_dir / name
            if path.is_file() and path.stat().st_size > 0:
                return path
    return None


def read_turns(path: Path) -> list[Turn]:
    """The turns of a trajectory file (``.jsonl`` = our trace, else ATIF JSON); [] if unreadable."""
    try:
        if path.suffix == ".jsonl":
            return turns_from_trace(read_trace_records(path))
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return []
    return turns_from_atif(data) if isinstance(data, dict) else []


# ------------------------------------------------------------------ metrics


def visible_reply(reply: str) -> str:
    """The reply without its reasoning blocks (what the markers are matched against)."""
    return strip_reasoning(reply)[0]


def _excerpt(text: str, marker: str) -> str:
    """About :data:`EXCERPT_CHARS` characters of ``text`` around the first ``marker``, on one line."""
    flat = " ".join(text.split())
    at = normalize(flat).find(marker)
    if at < 0:
        return flat[:EXCERPT_CHARS]
    start = max(0, at - EXCERPT_CHARS // 3)
    end = min(len(flat), start + EXCERPT_CHARS)
    return ("…" if start else "") + flat[start:end] + ("…" if end < len(flat) else "")


def refusal_turns(turns: Iterable[Turn]) -> list[RefusalHit]:
    """The turns whose visible reply carries a refusal marker (rule 4), each with an excerpt."""
    hits: list[RefusalHit] = []
    for t in turns:
        text = visible_reply(t.reply)
        found = matched_markers(text)
        if found:
            hits.append(RefusalHit(turn=t.index, markers=tuple(found), excerpt=_excerpt(text, found[0]),
                                   reply=text.strip()))
    return hits


def metrics(turns: list[Turn]) -> dict[str, Any]:
    """The behaviour metrics of one trial (the module doc's rules 2-8), keyed as :data:`METRIC_KEYS`."""
    executed = [c for t in turns for c in t.commands]
    first = next((t.reply_at_s for t in turns if t.commands), None)
    return {
        "turns": len(turns),
        "parse_fail": sum(t.parse_status == "parse_fail" and not t.cut_off for t in turns),
        "no_cmd": sum(t.parse_status == "no_cmd" and not t.cut_off for t in turns),
        "cut_off": sum(t.cut_off for t in turns),
        "refusal_turns": len(refusal_turns(turns)),
        "commands": len(executed),
        "distinct_commands": len({c.strip() for c in executed}),
        "task_complete_claimed": int(any(t.task_complete for t in turns)),
        "tokens_in": sum(t.tokens_in for t in turns),
        "tokens_out": sum(t.tokens_out for t in turns),
        "first_cmd_s": None if first is None else round(first, 3),
    }


def metrics_from_trace(records: Iterable[dict]) -> dict[str, Any]:
    """:func:`metrics` of a ``trace.jsonl``'s records."""
    return metrics(turns_from_trace(records))


def metrics_from_atif(data: dict) -> dict[str, Any]:
    """:func:`metrics` of an ATIF trajectory."""
    return metrics(turns_from_atif(data))


def metrics_from_file(path: Path) -> dict[str, Any]:
    """:func:`metrics` of a trajectory file (our trace or ATIF)."""
    return metrics(read_turns(path))
