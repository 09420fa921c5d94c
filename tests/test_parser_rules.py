"""The parser's rules version is tied to its behaviour on the corpus (issue 25, item 3).

Changing what ``parse_action`` returns for a corpus reply without bumping
``harness.parser.RULES_VERSION`` fails here; so does a corpus case nobody pinned.
"""

from __future__ import annotations

import json

from parser_rules_pin import PIN_FILE, case_outputs, changed_cases

from harness.parser import RULES_VERSION


def test_rules_version_pins_the_corpus_outputs():
    pin = json.loads(PIN_FILE.read_text())
    outputs = case_outputs()
    changed = changed_cases(pin, outputs)
    assert pin["rules_version"] == RULES_VERSION, (
        f"RULES_VERSION is {RULES_VERSION} but the corpus is pinned under {pin['rules_version']}: "
        "run python tests/parser_rules_pin.py")
    assert not changed, (f"the parser's output changed on corpus case(s) {changed} under rules version "
                         f"{RULES_VERSION}: bump harness.parser.RULES_VERSION, then run python tests/parser_rules_pin.py")
    unpinned = sorted(set(outputs) - set(pin["outputs"]))
    assert not unpinned, f"corpus case(s) {unpinned} are not pinned: run python tests/parser_rules_pin.py"


def test_a_behaviour_change_is_caught(monkeypatch):
    """The pin does detect a change: cap durations differently and some pinned case moves."""
    import harness.parser as parser

    pin = json.loads(PIN_FILE.read_text())
    monkeypatch.setattr(parser, "MAX_DURATION_S", 5.0)
    monkeypatch.setattr(parser, "DEFAULT_DURATION_S", 0.25)
    assert changed_cases(pin, case_outputs())
