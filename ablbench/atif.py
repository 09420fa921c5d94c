"""ATIF export: an agent's ``trace.jsonl`` as an ATIF trajectory (``trajectory.json``, ATIF-v1.8).

ATIF (Agent Trajectory Interchange Format) is what harbor's viewer and other trajectory tools
read. The dict is built here by the format's rules, without importing harbor (the tests validate
it with harbor's own pydantic model in ``.venv-harbor``). Rules, in order:

1. Steps are numbered 1, 2, ... in trace order. The prompt comes first: the ``messages`` of the
   agent's ``start`` record (its first request) as system/user steps, else one user step holding
   the task instruction.
2. A Terminus turn record (``"turn"``) is one agent step: ``message`` = the raw reply,
   ``reasoning_content`` = its reasoning, one ``bash_command`` tool call per command that RAN
   (``{keystrokes, duration}``) plus ``mark_task_complete`` when the reply said so, and one
   observation = the next user message (terminal output and feedback). The observation links
   to its command only when exactly one ran (one screen cannot be split between commands).
   ``metrics`` holds the reply's token usage; parse status, warnings, finish reason, retries
   and timings go to ``extra``.
3. Model-free agents (``oracle``'s ``command``/``result``, ``nop``) become agent steps with
   ``llm_call_count = 0`` and no metrics; ``error`` and ``context_overflow`` events become
   system steps.
4. ``final_metrics`` sums the turns' tokens; the ``end`` record's stop reason, error and
   counters go to the root ``extra``. Non-finite numbers become null; a trace with no record
   at all gives None (no trajectory is written).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ablbench.results import write_text_atomic

ATIF_VERSION = "ATIF-v1.8"
TRAJECTORY_FILE = "trajectory.json"


def _iso(t: Any) -> str | None:
    if isinstance(t, int | float) and math.isfinite(t):
        return datetime.fromtimestamp(float(t), UTC).isoformat()
    return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) else None


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def ablbench_version() -> str:
    """The installed ablbench version (``0+unknown`` from a bare checkout)."""
    try:
        return metadata.version("ablbench")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def read_trace_records(path: Path) -> list[dict]:
    """The records of a ``trace.jsonl``; a torn last line (a killed agent) is skipped."""
    records = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


class _Builder:
    def __init__(self) -> None:
        self.steps: list[dict] = []

    def add(self, source: str, message: str, t: Any = None, **fields: Any) -> dict:
        step: dict[str, Any] = {"step_id": len(self.steps) + 1, "source": source, "message": message}
        if _iso(t):
            step["timestamp"] = _iso(t)
        step.update({k: v for k, v in fields.items() if v is not None})
        self.steps.append(step)
        return step


def _turn_step(b: _Builder, rec: dict, model_name: str | None) -> None:
    turn = _int(rec.get("turn")) or len(b.steps)
    calls = []
    for i, cmd in enumerate(rec.get("commands") or [], start=1):
        if not isinstance(cmd, dict):
            continue
        extra = {k: cmd[k] for k in ("waited_s", "ended") if k in cmd}
        calls.append({"tool_call_id": f"call_{turn}_{i}", "function_name": "bash_command",
                      "arguments": {"keystrokes": str(cmd.get("keystrokes", "")), "duration": _clean(cmd.get("duration"))},
                      **({"extra": _clean(extra)} if extra else {})})
    parse = rec.get("parse") if isinstance(rec.get("parse"), dict) else {}
    commands_ran = len(calls)
    if parse.get("task_complete"):
        calls.append({"tool_call_id": f"call_{turn}_task_complete", "function_name": "mark_task_complete",
                      "arguments": {}})
    result: dict[str, Any] = {"content": str(rec.get("next_message") or rec.get("observation") or "")}
    if commands_ran == 1:
        result["source_call_id"] = calls[0]["tool_call_id"]
    usage = rec.get("usage") if isinstance(rec.get("usage"), dict) else {}
    metrics = {k: _int(usage.get(k)) for k in ("prompt_tokens", "completion_tokens") if _int(usage.get(k)) is not None}
    metrics_extra = {k: rec.get(k) for k in ("finish_reason", "cut_off", "retries", "seed", "seed_sent", "timings")
                     if rec.get(k) is not None}
    if metrics_extra:
        metrics["extra"] = metrics_extra
    extra = {k: v for k, v in {
        "turn": turn, "parse": {k: parse.get(k) for k in ("status", "error", "warnings") if parse.get(k)},
        "request": rec.get("request"), "confirm_pending": rec.get("confirm_pending"),
        "terminal_output": rec.get("observation")}.items() if v is not None}
    b.add("agent", str(rec.get("reply") or ""), rec.get("t"), model_name=model_name,
          reasoning_content=rec.get("reasoning") or None, tool_calls=calls or None,
          observation={"results": [result]}, metrics=_clean(metrics), llm_call_count=1, extra=_clean(extra))


def trajectory_from_trace(
    records: list[dict], *, instruction: str, agent_name: str, agent_version: str | None = None,
    model_name: str | None = None, session_id: str | None = None, notes: str | None = None,
) -> dict | None:
    """The ATIF trajectory (a JSON-ready dict) of one agent run's trace records (module rules)."""
    if not records:
        return None
    b = _Builder()
    start = next((r for r in records if r.get("event") == "start"), {})
    model_name = model_name or start.get("model") or None
    messages = [m for m in start.get("messages") or [] if isinstance(m, dict)]
    for m in messages:
        b.add("system" if m.get("role") == "system" else "user", str(m.get("content") or ""), start.get("t"))
    if not messages:
        b.add("user", str(start.get("instruction") or instruction), records[0].get("t"))
    pending: dict | None = None  # an oracle command waiting for its result
    end: dict = {}
    for rec in records:
        event = rec.get("event")
        if "turn" in rec:
            _turn_step(b, rec, model_name)
        elif event == "command":
            call_id = f"call_{len(b.steps)}_1"
            pending = b.add("agent", f"run: {rec.get('command', '')}", rec.get("t"), llm_call_count=0,
                            tool_calls=[{"tool_call_id": call_id, "function_name": "bash_command",
                                         "arguments": _clean({k: rec[k] for k in ("command", "timeout_s") if k in rec})}])
        elif event == "result":
            content = str(rec.get("output_tail") or "")
            extra = _clean({k: rec.get(k) for k in ("exit_code", "timed_out", "duration_s") if k in rec})
            if pending is not None:
                pending["observation"] = {"results": [{"source_call_id": pending["tool_calls"][0]["tool_call_id"],
                                                       "content": content, "extra": extra}]}
                pending = None
            else:
                b.add("system", content, rec.get("t"), extra=extra)
        elif event == "nop":
            b.add("agent", "(did nothing)", rec.get("t"), llm_call_count=0)
        elif event in ("error", "context_overflow"):
            text = rec.get("message") or rec.get("error") or event
            b.add("system", f"{event}: {text}", rec.get("t"),
                  extra=_clean({k: v for k, v in rec.items() if k not in ("t", "event")}) or None)
        elif event == "end":
            end = rec
    turns = [s for s in b.steps if s.get("source") == "agent" and s.get("metrics")]
    final = {"total_prompt_tokens": sum(s["metrics"].get("prompt_tokens") or 0 for s in turns),
             "total_completion_tokens": sum(s["metrics"].get("completion_tokens") or 0 for s in turns),
             "total_steps": len(b.steps)}
    agent: dict[str, Any] = {"name": agent_name, "version": agent_version or ablbench_version()}
    if model_name:
        agent["model_name"] = str(model_name)
    if isinstance(start.get("config"), dict):
        agent["extra"] = _clean({"config": start["config"], "idle_detection": start.get("idle_detection")})
    out: dict[str, Any] = {"schema_version": ATIF_VERSION, "agent": agent, "steps": b.steps, "final_metrics": final}
    if session_id:
        out["session_id"] = session_id
    if notes:
        out["notes"] = notes
    if end:
        out["extra"] = _clean({k: end.get(k) for k in ("stop", "error", "counters", "extra")})
    return out


def write_trajectory(
    trace: Path, dest: Path, *, instruction: str, agent_name: str, **kwargs: Any,
) -> Path | None:
    """Convert ``trace`` (trace.jsonl) and write ``dest`` atomically; None when the trace is empty."""
    data = trajectory_from_trace(read_trace_records(trace), instruction=instruction, agent_name=agent_name, **kwargs)
    if data is None:
        return None
    write_text_atomic(Path(dest), json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return Path(dest)
