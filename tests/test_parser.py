"""The action parser: a public corpus of messy replies, plus hypothesis properties.

Provenance, defined precisely (``harness.parser.keystrokes_in_text``): a returned command's
keystrokes (less a trailing "\\n" the parser added to a shorthand shell command) must occur
in the normalised reply (BOM dropped, CRLF -> LF) either literally, or in the lenient
JSON-unescaping (\\n \\t \\r \\b \\f \\" \\' \\\\ \\/ \\uXXXX with surrogate pairs joined; other
escapes kept) of the text that follows some quote character. The tests below check it with their own implementation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.parser import parse_action

CORPUS = json.loads((Path(__file__).parent / "parser_corpus" / "cases.json").read_text())


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 40
    assert len({c["name"] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_corpus(case):
    exp = case["expect"]
    got = parse_action(case["text"])
    assert got.status == exp["status"], (got.error, got.warnings)
    assert [c.keystrokes for c in got.commands] == exp["keystrokes"]
    assert got.task_complete == exp["task_complete"]
    if "durations" in exp:
        assert [c.duration for c in got.commands] == exp["durations"]
    for frag in exp.get("warnings_contain", []):
        assert any(frag in w for w in got.warnings), got.warnings
    if "error_contains" in exp:
        assert got.error and exp["error_contains"] in got.error
    if got.status == "parse_fail":
        assert got.error and not got.commands
    else:
        assert got.error is None
    assert all(0.0 <= c.duration <= 60.0 for c in got.commands)


# ----------------------------------------------------------------------------- properties

_ESC = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\", "/": "/"}


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            if s[i + 1] in _ESC:
                out.append(_ESC[s[i + 1]])
                i += 2
                continue
            if s[i + 1] == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2:i + 6]):
                out.append(chr(int(s[i + 2:i + 6], 16)))
                i += 6
                continue
        out.append(s[i])
        i += 1
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")


def _appears(keys: str, text: str) -> bool:
    text = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if keys in text:
        return True
    return any(keys in _unescape(text[i + 1:]) for i, ch in enumerate(text) if ch in "\"'")


def _check(text: str) -> None:
    got = parse_action(text)
    assert got.status in ("ok", "no_cmd", "parse_fail")
    assert (got.status == "parse_fail") == (got.error is not None)
    for c in got.commands:
        probe = c.keystrokes[:-1] if c.newline_added else c.keystrokes
        assert probe and _appears(probe, text), (probe, text)
        assert 0.0 <= c.duration <= 60.0


_JSONISH = st.sampled_from(list('{}[]",:\'\\/*\n ') + ["true", "True", "null", "commands", "keystrokes",
                                                         "<think>", "</think>", "```json", "C-c", "ls\\n"])
_TEXT = st.lists(st.one_of(_JSONISH, st.text(max_size=6)), max_size=40).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT)
def test_never_raises_and_never_invents(text):
    _check(text)


_CMD = st.fixed_dictionaries(
    {"keystrokes": st.text(min_size=1, max_size=20)},
    optional={"duration": st.one_of(st.floats(allow_nan=True), st.text(max_size=5), st.integers())},
)
_ACTION = st.fixed_dictionaries(
    {"commands": st.lists(_CMD, max_size=3)},
    optional={"analysis": st.text(max_size=20), "task_complete": st.booleans()},
)


@settings(max_examples=200, deadline=None)
@given(_ACTION, st.text(max_size=20), st.text(max_size=20), st.integers(min_value=0, max_value=400))
def test_embedded_actions_are_found_or_safely_dropped(action, before, after, cut):
    """Real actions wrapped in noise: exact keystrokes come back; a cut-off reply invents nothing."""
    body = json.dumps(action)
    text = f"{before.replace('{', '(')}\n{body}\n{after.replace('{', '(')}"
    got = parse_action(text)
    want = [c["keystrokes"] for c in action["commands"]]
    assert [c.keystrokes for c in got.commands] == want
    _check(text[:cut])
    truncated = parse_action(body[:cut])
    for c in truncated.commands:  # a command that comes back from a cut reply is a complete one
        assert c.keystrokes in want
