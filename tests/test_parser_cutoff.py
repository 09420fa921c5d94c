"""Cut-off replies (finish_reason "length") and Terminus-2-style warnings in the parser."""

from __future__ import annotations

from harness.parser import parse_action

HEREDOC_CUT = (
    '{"analysis": "Write the script.", "plan": "A here-doc.", "commands": ['
    '{"keystrokes": "cat > /app/run.sh <<\'EOF\'\\n", "duration": 0.1}, '
    '{"keystrokes": "#!/bin/bash\\necho star'
)
DURATION_CUT = (
    '{"analysis": "Build it.", "plan": "make, then wait.", "commands": ['
    '{"keystrokes": "make -j2\\n", "duration": 4'
)
COMPLETE_THEN_CUT = (
    '{"analysis": "Look first.", "plan": "ls.", "commands": [{"keystrokes": "ls /app\\n", "duration": 0.5}], '
    '"task_complete": false}\n'
    '{"analysis": "Then more.", "plan": "rm.", "commands": [{"keystrokes": "rm -rf /app/bui'
)


def test_heredoc_opener_of_a_cut_reply_is_not_run():
    got = parse_action(HEREDOC_CUT, cut_off=True)
    assert (got.status, got.cut_off, got.commands) == ("parse_fail", "dropped", [])
    assert "cut off" in got.error and "none" in got.error
    # the same text without the cut flag still salvages the complete first command (tolerant mode)
    assert [c.keystrokes for c in parse_action(HEREDOC_CUT).commands] == ["cat > /app/run.sh <<'EOF'\n"]


def test_duration_cut_mid_number_is_not_run():
    got = parse_action(DURATION_CUT, cut_off=True)
    assert (got.status, got.cut_off, got.commands, got.task_complete) == ("parse_fail", "dropped", [], False)
    assert got.analysis == "Build it."  # kept for the trace


def test_complete_object_before_the_cut_is_salvaged():
    got = parse_action(COMPLETE_THEN_CUT, cut_off=True)
    assert (got.status, got.cut_off) == ("ok", "salvaged")
    assert [c.keystrokes for c in got.commands] == ["ls /app\n"]
    assert any("only the complete JSON object" in w for w in got.warnings)


def test_cut_reply_nested_objects_do_not_count_as_complete():
    # the inner command object closed, but the action object around it did not
    text = '{"analysis": "x", "commands": [{"keystrokes": "echo a\\n", "duration": 1}, {"keys'
    got = parse_action(text, cut_off=True)
    assert (got.cut_off, got.commands) == ("dropped", [])
    # an object that closed right at the limit is complete
    whole = '{"analysis": "a", "plan": "b", "commands": [{"keystrokes": "pwd\\n", "duration": 0.1}]}'
    assert [c.keystrokes for c in parse_action(whole, cut_off=True).commands] == ["pwd\n"]
    # cut inside unfinished reasoning: nothing
    assert parse_action("<think>I will run {\"commands\": [{\"keystrokes\": \"ls\\n\"}]}", cut_off=True).commands == []


def test_missing_newlines_warn_without_changing_what_runs():
    text = ('{"analysis": "a", "plan": "b", "commands": [{"keystrokes": "mkdir /app/x", "duration": 0.1}, '
            '{"keystrokes": "touch /app/x/y", "duration": 0.1}, {"keystrokes": "C-c"}], "task_complete": false}')
    got = parse_action(text)
    assert [c.keystrokes for c in got.commands] == ["mkdir /app/x", "touch /app/x/y", "C-c"]
    assert any(w.startswith("command 1 should end with \\n when followed by another command") for w in got.warnings)
    assert any(w.startswith("command 2 should end with \\n") for w in got.warnings)
    assert not any(w.startswith("command 3 ") and "\\n" in w for w in got.warnings)  # a tmux key needs none
    last = parse_action('{"analysis": "a", "plan": "b", "commands": [{"keystrokes": "ls", "duration": 1}]}')
    assert any("Enter was not pressed" in w for w in last.warnings)


def test_terminus2_style_field_warnings():
    got = parse_action('Here you go:\n{"commands": [{"keystrokes": "ls\\n", "wait": 2}], "analysis": 3}\nDone.')
    assert [c.keystrokes for c in got.commands] == ["ls\n"]
    w = "\n".join(got.warnings)
    assert "extra text before" in w and "extra text after" in w
    assert "missing field(s) 'plan'" in w
    assert "field 'analysis' should be a string" in w
    assert 'command 1 has no "duration"' in w and "unknown field(s) 'wait'" in w
    repaired = parse_action("{'analysis': 'a', 'plan': 'b', 'commands': [{'keystrokes': 'ls\\n', 'duration': 1,}]}")
    assert any("not strict JSON" in x for x in repaired.warnings) and repaired.commands
    strings = parse_action('{"analysis": "a", "plan": "b", "commands": ["ls"]}')
    assert [c.keystrokes for c in strings.commands] == ["ls\n"]
    assert any("plain string" in x for x in strings.warnings)
    clean = parse_action('{"analysis": "a", "plan": "b", "commands": [{"keystrokes": "ls\\n", "duration": 1}],'
                         ' "task_complete": false}')
    assert clean.warnings == []
