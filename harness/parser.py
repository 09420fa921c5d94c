"""Tolerant parser for the agent's JSON action replies.

``parse_action(text)`` turns one model reply into a :class:`ParsedAction` and never raises.
What it does, in order:

1. Normalise: drop a BOM, CRLF/CR -> LF, NUL characters removed.
2. Strip reasoning: every ``<think>…</think>`` (also ``<thinking>``/``<reasoning>``) block is
   removed, whatever it contains. A closing tag without an opening one (templates that put
   ``<think>`` into the prompt) makes everything before it reasoning. An opening tag that is
   never closed makes everything after it reasoning: the model ran out of tokens while thinking,
   and JSON drafted inside unfinished thoughts is never executed.
3. Find candidate objects: every ``{`` is a possible start; a string- and comment-aware brace
   matcher finds its end (or the end of the text when braces are missing). Each candidate is
   repaired and loaded by ``json_repair`` (trailing commas, comments, single quotes, Python
   literals, missing braces). A candidate that is not an action (no action key, also not one
   level down) is skipped and the search resumes at the next ``{``, so a ``{`` in prose does
   not derail extraction.
4. Truncation: when a candidate runs to the end of the text inside an unterminated string, that
   string was cut off by the end of the reply; the text is cut back to before it, so the
   command it belonged to is dropped (with a warning) and never executed.
5. Several action objects (a reply split into an analysis object and a command object, or
   repeated objects): the first one carrying commands is used; analysis/plan/task_complete that
   it lacks are taken from the others; a warning says so.
6. Normalise the action: ``commands`` items may be ``{"keystrokes", "duration"}`` objects or
   plain strings (shorthand: a shell command gets a trailing newline, a tmux key name such as
   ``C-c`` does not); ``{"command": "ls"}`` and a top-level ``{"keystrokes": …}`` are one
   command. Durations may be strings ("2", "0.5s"), default 1.0, capped at 60. Booleans may be
   strings ("true", "yes").
7. Provenance guard: a command is only returned if its keystrokes (less a newline the parser
   added) occur in the reply, literally or after JSON-unescaping a quoted string (see
   :func:`keystrokes_in_text`). Commands are never guessed from prose or ```bash blocks.
8. Cut-off replies (``parse_action(text, cut_off=True)``: the server said
   ``finish_reason == "length"``): only action objects whose closing brace came before the cut
   count (a top-level object, not one nested in the object the cut interrupted). With none,
   nothing runs (``cut_off == "dropped"``, status "parse_fail"): the commands of a reply cut
   after a here-doc opener, or a duration cut mid-number (``4`` of ``45``), are never executed.
   With one, its commands run (``cut_off == "salvaged"``) and a warning says the rest was ignored.
9. Warnings (never a change to what runs), Terminus-2's and more: text before/after the JSON,
   missing "analysis"/"plan"/"commands", non-string analysis/plan, a command without
   "duration", unknown command fields, a plain-string command, repaired (non-strict) JSON,
   missing closing brackets, and a command without a trailing newline (followed by another
   command: both land on one line and run as one; last: typed but Enter not pressed).

Status: "ok" = at least one command or task_complete; "no_cmd" = an action without commands;
"parse_fail" = no action could be recovered, or a cut-off reply held no complete action
(``error`` says why).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import json_repair

from runners.tmux_keys import is_key_name

#: the version of these rules: bump it whenever what ``parse_action`` returns changes for any reply
#: (run.json records it; ``analyze`` refuses to pair runs whose versions differ). tests/test_parser_rules.py
#: ties it to the outputs on tests/parser_corpus/: re-pin there with tests/parser_corpus/pin_rules.py.
RULES_VERSION = 1

MAX_DURATION_S = 60.0
DEFAULT_DURATION_S = 1.0
#: candidate starts examined per reply (bounds the work on pathological replies)
MAX_CANDIDATES = 64
#: replies longer than this are cut (the tail is what a truncated reply loses anyway)
MAX_TEXT_CHARS = 400_000
#: nesting deeper than this is not an action (and would make the repair library crawl)
MAX_DEPTH = 40
#: calls to the (pure-Python, slow on garbage) repair library per reply, and their time budget
MAX_REPAIRS = 12
REPAIR_BUDGET_S = 2.0

ACTION_KEYS = frozenset(
    {"analysis", "plan", "commands", "command", "keystrokes", "task_complete", "is_task_complete",
     "state_analysis", "explanation"}
)

_THINK_OPEN_RE = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK_CLOSE_RE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off", "none", "null", ""}
_NUM_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:s|sec|secs|second|seconds)?\s*$")


@dataclass
class Command:
    """One keystroke batch to send, then wait up to ``duration`` seconds."""

    keystrokes: str
    duration: float = DEFAULT_DURATION_S
    #: the parser appended "\n" (shorthand shell command); provenance checks ignore it
    newline_added: bool = False


@dataclass
class ParsedAction:
    """The outcome of parsing one reply."""

    status: Literal["ok", "no_cmd", "parse_fail"]
    commands: list[Command] = field(default_factory=list)
    task_complete: bool = False
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    analysis: str | None = None
    plan: str | None = None
    #: for a reply cut at the token limit: "dropped" (nothing ran) or "salvaged" (a complete object ran)
    cut_off: Literal["dropped", "salvaged"] | None = None

    def to_dict(self) -> dict:
        """Plain-JSON form (for traces)."""
        return asdict(self)


# --------------------------------------------------------------------------- normalisation


def _normalise(text: Any) -> str:
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text[:MAX_TEXT_CHARS]


def strip_reasoning(text: str) -> tuple[str, str, list[str]]:
    """Split ``text`` into (visible text, reasoning, warnings); see the module doc, step 2."""
    warnings: list[str] = []
    reasoning: list[str] = []
    close = _THINK_CLOSE_RE.search(text)
    opening = _THINK_OPEN_RE.search(text)
    if close and (opening is None or opening.start() > close.start()):
        reasoning.append(text[: close.start()])
        text = text[close.end():]
    while True:
        opening = _THINK_OPEN_RE.search(text)
        if opening is None:
            break
        close = _THINK_CLOSE_RE.search(text, opening.end())
        if close is None:
            reasoning.append(text[opening.end():])
            text = text[: opening.start()]
            warnings.append("reply ended inside an unclosed <think> block; its content was ignored")
            break
        reasoning.append(text[opening.end(): close.start()])
        text = text[: opening.start()] + text[close.end():]
    return text, "\n".join(r.strip() for r in reasoning if r.strip()), warnings


# --------------------------------------------------------------------------- candidate scanning


@dataclass
class _Span:
    start: int
    end: int  # exclusive
    closed: bool  # braces balanced before the end of the text
    open_string_at: int | None  # index of the opening quote of a string cut off by the end of text
    stack: str = ""  # brackets still open at the end of the text
    too_deep: bool = False


def _scan_object(text: str, start: int) -> _Span:
    """Find the end of the object starting at ``text[start] == '{'`` (string/comment aware)."""
    depth = 0
    i = start
    n = len(text)
    quote: str | None = None
    string_at = 0
    prev_sig = ""  # last significant char outside strings: decides if a ' opens a string
    stack: list[str] = []
    while i < n:
        c = text[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
                prev_sig = "s"
            i += 1
            continue
        if c == '"' or (c == "'" and prev_sig in "{[,:"):
            quote, string_at = c, i
        elif c == "/" and i + 1 < n and text[i + 1] == "/":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        elif c == "/" and i + 1 < n and text[i + 1] == "*":
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            continue
        elif c in "{[":
            depth += 1
            stack.append(c)
            if depth > MAX_DEPTH:
                return _Span(start, i, False, None, "", too_deep=True)
        elif c in "}]":
            depth -= 1
            if stack:
                stack.pop()
            if depth == 0:
                return _Span(start, i + 1, True, None)
        if not c.isspace():
            prev_sig = c
        i += 1
    return _Span(start, n, False, string_at if quote is not None else None, "".join(stack))


_PARTIAL_LITERAL_RE = re.compile(r"[A-Za-z]+\s*$")


def _cut_truncated(chunk: str, span: _Span, warnings: list[str]) -> str:
    """Drop what the end of the reply cut off: an unterminated string, a partial literal."""
    if span.open_string_at is not None:
        warnings.append("reply was cut off inside a string; the unfinished part was ignored")
        return chunk[: span.open_string_at - span.start] + '""'
    tail = chunk[-16:]  # a partial literal is short; searching only the tail keeps this linear
    m = _PARTIAL_LITERAL_RE.search(tail)
    if m and m.group(0).strip() not in ("true", "false", "null", "True", "False", "None"):
        return chunk[: len(chunk) - len(tail) + m.start()]
    return chunk


def _trailing_string_start(body: str) -> int | None:
    """Index of the opening quote of the string that ends ``body`` (optionally followed by ``:``)."""
    b = body.rstrip()
    if b.endswith(":"):
        b = b[:-1].rstrip()
    if not b or b[-1] not in "\"'":
        return None
    quote = b[-1]
    i = len(b) - 2
    while i >= 0:
        if b[i] == quote:
            j = i - 1
            while j >= 0 and b[j] == "\\":
                j -= 1
            if (i - 1 - j) % 2 == 0:  # not escaped
                return i
        i -= 1
    return None


def _close(chunk: str, stack: str) -> str:
    """Close a cut-off object exactly (so plain ``json.loads`` keeps the exact escapes): drop a
    dangling key or comma, then append the missing brackets."""
    body = chunk.rstrip()
    for _ in range(3):
        if body.endswith(","):
            body = body[:-1].rstrip()
            continue
        at = _trailing_string_start(body)
        # a string right after "{" or "," in an object is a key whose value never came
        if at is not None and stack.endswith("{") and body[:at].rstrip()[-1:] in ("{", ","):
            body = body[:at].rstrip()
            continue
        break
    return body + "".join("}" if c == "{" else "]" for c in reversed(stack))


@dataclass
class _Budget:
    repairs: int = MAX_REPAIRS
    until: float = 0.0


def _load(chunk: str, span: _Span | None, budget: _Budget) -> tuple[Any, bool]:
    """(the loaded value or None, whether the repair library was needed)."""
    attempts = [chunk] if span is None or span.closed else [_close(chunk, span.stack), chunk]
    for attempt in attempts:
        try:
            return json.loads(attempt), False
        except (ValueError, RecursionError):
            pass
    if budget.repairs <= 0 or time.monotonic() > budget.until:
        return None, False
    budget.repairs -= 1
    try:
        return json_repair.loads(chunk, stream_stable=True), True
    except Exception:  # noqa: BLE001 - the repair library must never take the parser down
        return None, False


def _find_action(value: Any, depth: int = 0) -> dict | None:
    """The action dict in a loaded value: the value itself or one nested a level or two down."""
    if isinstance(value, dict):
        if ACTION_KEYS & set(value):
            return value
        if depth < 2:
            for v in value.values():
                found = _find_action(v, depth + 1)
                if found is not None:
                    return found
    elif isinstance(value, list) and depth < 2:
        for v in value:
            found = _find_action(v, depth + 1)
            if found is not None:
                return found
    return None


_JSON_START_RE = re.compile(r"\{\s*[\"'}]")


@dataclass
class _Found:
    action: dict
    #: closed before the end of the text and not nested in an object the end interrupted
    complete: bool
    warnings: list[str]


def _candidates(text: str, json_like_only: bool) -> list[_Found]:
    """Action dicts in ``text``, left to right. With ``json_like_only`` a start must look like
    JSON (``{`` then a quote or ``}``), which skips a ``{`` in prose. An object that runs to the
    end of the text contains every later start, so nothing after it is ``complete``."""
    actions: list[_Found] = []
    interrupted = False
    pos = 0
    tried = 0
    budget = _Budget(until=time.monotonic() + REPAIR_BUDGET_S)
    while tried < MAX_CANDIDATES:
        start = text.find("{", pos)
        if start < 0:
            break
        if json_like_only and not _JSON_START_RE.match(text, start):
            pos = start + 1
            continue
        tried += 1
        span = _scan_object(text, start)
        if span.too_deep:
            pos = start + 1
            continue
        chunk = text[span.start: span.end]
        local: list[str] = []
        complete = span.closed and not interrupted
        if not span.closed:
            interrupted = True
            chunk = _cut_truncated(chunk, span, local)
            if span.open_string_at is None:
                local.append("JSON object was not closed; missing brackets were added")
        loaded, repaired = _load(chunk, span, budget)
        action = _find_action(loaded)
        if action is None:
            pos = start + 1
            continue
        if repaired:
            local.append("reply was not strict JSON (quotes, commas, literals or brackets) and was "
                         "repaired; reply with one valid JSON object")
        actions.append(_Found(action, complete, local))
        pos = span.end
    return actions


# --------------------------------------------------------------------------- normalising actions


def _as_bool(value: Any, name: str, warnings: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 1
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            warnings.append(f'"{name}" given as a string; read as true')
            return True
        if low in _FALSE:
            return False
    if value is not None:
        warnings.append(f'"{name}" has an unreadable value {str(value)[:40]!r}; read as false')
    return False


def _as_duration(value: Any, warnings: list[str]) -> float:
    if value is None:
        return DEFAULT_DURATION_S
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        m = _NUM_RE.match(value)
        number = float(m.group(1)) if m else None
    if number is None or math.isnan(number):
        warnings.append(f"unreadable duration {str(value)[:40]!r}; using {DEFAULT_DURATION_S}")
        return DEFAULT_DURATION_S
    if number < 0:
        warnings.append(f"negative duration {number}; using 0")
        return 0.0
    if number > MAX_DURATION_S:
        warnings.append(f"duration {number:g} s capped at {MAX_DURATION_S:g} s")
        return MAX_DURATION_S
    return number


def _shorthand(cmd: str) -> Command:
    if is_key_name(cmd.strip()) or cmd.endswith("\n"):
        return Command(cmd.strip() if is_key_name(cmd.strip()) else cmd)
    return Command(cmd + "\n", newline_added=True)


def _commands(action: dict, warnings: list[str]) -> list[Command]:
    raw: Any = action.get("commands")
    if raw is None and "command" in action:
        raw = [action["command"]]
        warnings.append('"command" used instead of "commands"; read as one command')
    if raw is None and "keystrokes" in action:
        raw = [{k: v for k, v in action.items() if k in ("keystrokes", "duration", "timeout_sec")}]
        warnings.append('a bare command object was given instead of a "commands" list')
    if raw is None:
        return []
    if isinstance(raw, (str, dict)):
        raw = [raw]
        warnings.append('"commands" should be a list; read as a list of one')
    if not isinstance(raw, list):
        warnings.append(f'"commands" has an unreadable value {str(raw)[:40]!r}; ignored')
        return []
    out: list[Command] = []
    last = len(raw) - 1
    for i, item in enumerate(raw):
        if isinstance(item, str):
            if item.strip():
                out.append(_shorthand(item))
                warnings.append(f'command {i + 1} is a plain string; write {{"keystrokes": "...", "duration": N}}')
            continue
        if not isinstance(item, dict):
            warnings.append(f"command {i + 1} is not an object or a string; ignored")
            continue
        keys = item.get("keystrokes")
        aliased = False
        if keys is None:
            for alias in ("command", "cmd", "keys", "input"):
                if isinstance(item.get(alias), str):
                    keys, aliased = item[alias], True
                    warnings.append(f'command {i + 1} uses "{alias}" instead of "keystrokes"')
                    break
        if not isinstance(keys, str) or keys == "":
            if keys != "":
                warnings.append(f'command {i + 1} has no "keystrokes" string; ignored')
            continue
        dur = item.get("duration", item.get("timeout_sec", item.get("timeout")))
        if dur is None:
            warnings.append(f'command {i + 1} has no "duration"; waited up to {DEFAULT_DURATION_S:g} s')
        unknown = sorted(set(item) - _COMMAND_KEYS)
        if unknown:
            warnings.append(f"command {i + 1}: unknown field(s) {', '.join(map(repr, unknown))} ignored")
        if not aliased and not is_key_name(keys.strip()) and not keys.endswith(("\n", "\r")):
            warnings.append(
                f"command {i + 1} should end with \\n when followed by another command: otherwise both are "
                "typed on one line and run as one" if i < last else
                f"command {i + 1} does not end with \\n: it was typed, but Enter was not pressed"
            )
        cmd = Command(keys, _as_duration(dur, warnings))
        if aliased and not keys.endswith("\n") and not is_key_name(keys.strip()):
            cmd = Command(keys + "\n", cmd.duration, newline_added=True)
        out.append(cmd)
    return out


_COMMAND_KEYS = frozenset({"keystrokes", "duration", "timeout_sec", "timeout", "command", "cmd", "keys", "input"})


def _field_warnings(action: dict, warnings: list[str]) -> None:
    """Terminus-2's field checks, as warnings: the three required fields and their types."""
    present = {
        "analysis": "analysis" in action or "state_analysis" in action,
        "plan": "plan" in action or "explanation" in action,
        "commands": any(k in action for k in ("commands", "command", "keystrokes")),
    }
    missing = [k for k, ok in present.items() if not ok]
    if missing:
        warnings.append(f"missing field(s) {', '.join(map(repr, missing))}: reply with all of "
                        "'analysis', 'plan', 'commands' (and 'task_complete')")
    for key in ("analysis", "plan"):
        if key in action and not isinstance(action[key], str):
            warnings.append(f"field {key!r} should be a string")


def _merge(actions: list[dict], warnings: list[str]) -> dict:
    if len(actions) == 1:
        return actions[0]
    with_cmds = [a for a in actions if any(k in a for k in ("commands", "command", "keystrokes"))
                 and (a.get("commands") or a.get("command") or a.get("keystrokes"))]
    chosen = with_cmds[0] if with_cmds else actions[0]
    idx = next(i for i, a in enumerate(actions) if a is chosen)
    warnings.append(
        f"reply held {len(actions)} JSON objects; used the commands of object {idx + 1}"
        + (", ignored the commands of the others" if len(with_cmds) > 1 else "")
    )
    merged = dict(chosen)
    for a in actions:
        for key in ("analysis", "plan", "task_complete", "is_task_complete", "state_analysis", "explanation"):
            if key not in merged and key in a:
                merged[key] = a[key]
    return merged


# --------------------------------------------------------------------------- provenance

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\", "/": "/"}


def json_unescape(s: str) -> str:
    """Lenient JSON string unescaping, left to right; unknown escapes are kept verbatim."""
    if "\\" not in s:
        return s
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            e = s[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            if e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2: i + 6]):
                out.append(chr(int(s[i + 2: i + 6], 16)))
                i += 6
                continue
        out.append(c)
        i += 1
    # join surrogate pairs (json.dumps writes non-BMP characters as two \\u escapes)
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")


def keystrokes_in_text(keystrokes: str, text: str) -> bool:
    """The provenance rule: ``keystrokes`` occurs in ``text`` literally, or inside the
    JSON-unescaped text that follows some quote character (the rest of a quoted string).

    Unescaping is a left-to-right scan that is back in step right after any quote character
    (a quote is never the first character of an escape), so every such unescaped rest is a
    suffix of the one after the FIRST quote: checking that one suffices (linear time)."""
    if keystrokes in text:
        return True
    m = re.search(r"[\"']", text)
    return bool(m) and "\\" in text and keystrokes in json_unescape(text[m.end():])


def _provenance(commands: list[Command], text: str, warnings: list[str]) -> list[Command]:
    kept = []
    for c in commands:
        probe = c.keystrokes[:-1] if c.newline_added else c.keystrokes
        if keystrokes_in_text(probe, text):
            kept.append(c)
        else:
            warnings.append(f"command {probe[:40]!r} does not appear in the reply; not executed")
    return kept


# --------------------------------------------------------------------------- entry point


def parse_action(text: str, cut_off: bool = False) -> ParsedAction:
    """Parse one model reply into an action; never raises (see the module doc). ``cut_off``:
    the reply ended at the token limit (``finish_reason == "length"``; rule 8)."""
    try:
        return _parse(text, cut_off)
    except Exception as exc:  # noqa: BLE001 - last line of defence: a parser bug is a parse failure
        return ParsedAction("parse_fail", error=f"internal parser error: {type(exc).__name__}: {exc}",
                            cut_off="dropped" if cut_off else None)


def _parse(text: str, cut_off: bool = False) -> ParsedAction:
    norm = _normalise(text)
    visible, _reasoning, warnings = strip_reasoning(norm)
    cut = "dropped" if cut_off else None
    if not visible.strip():
        err = "reply is empty" if not norm.strip() else "reply holds only reasoning, no JSON action"
        return ParsedAction("parse_fail", warnings=warnings, error=err, cut_off=cut)
    found = _candidates(visible, json_like_only=True) or _candidates(visible, json_like_only=False)
    if cut_off:
        complete = [f for f in found if f.complete]
        if not complete:
            partial = _merge([f.action for f in found], []) if found else {}
            return ParsedAction(
                "parse_fail", warnings=warnings,
                error="the reply was cut off at the token limit before its JSON object was complete, so none "
                      "of its commands were run",
                analysis=partial.get("analysis") if isinstance(partial.get("analysis"), str) else None,
                plan=partial.get("plan") if isinstance(partial.get("plan"), str) else None, cut_off=cut,
            )
        if len(complete) < len(found):
            warnings.append("the reply was cut off at the token limit: only the complete JSON object before the "
                            "cut was used, the rest was ignored")
        found, cut = complete, "salvaged"
    if not found:
        hint = "no JSON object found" if "{" not in visible else "no JSON object with the action keys found"
        return ParsedAction(
            "parse_fail", warnings=warnings,
            error=f'{hint}; reply with one JSON object with "analysis", "plan", "commands", "task_complete"',
        )
    for f in found:
        warnings.extend(f.warnings)
    stripped = visible.strip()
    if not stripped.startswith("{"):
        warnings.append("extra text before the JSON object was ignored")
    if not stripped.endswith("}") and not cut_off:
        warnings.append("extra text after the JSON object was ignored")
    action = _merge([f.action for f in found], warnings)
    _field_warnings(action, warnings)
    commands = _provenance(_commands(action, warnings), visible, warnings)
    done_key = "task_complete" if "task_complete" in action else "is_task_complete"
    task_complete = _as_bool(action.get(done_key), done_key, warnings)
    analysis = action.get("analysis", action.get("state_analysis"))
    plan = action.get("plan", action.get("explanation"))
    status: Literal["ok", "no_cmd", "parse_fail"] = "ok" if commands or task_complete else "no_cmd"
    return ParsedAction(
        status, commands, task_complete, warnings, None,
        analysis if isinstance(analysis, str) else None, plan if isinstance(plan, str) else None, cut,
    )
