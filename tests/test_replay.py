"""The replay agent: solution scripts cut into steps, the stand-in model's replies, and real
replays through ``ablbench run --agent replay`` (real containers, real tmux, the task's verifier).
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import pytest
from cli_helpers import CliRunner

from ablbench.agent_api import AgentStop
from ablbench.paths import TRAIN_TASKS
from harness.agents.replay import ReplayAgent, ReplayClient, Step, solution_steps
from harness.cli import app
from harness.llm_types import SamplingParams
from harness.parser import parse_action
from harness.tasks import load_task
from harness.trace import read_trace

MULTI = """#!/bin/bash
set -euo pipefail
# write the helper
cat > /app/greet.sh <<'SH'
#!/bin/bash
# not a step: inside the here-document
echo "hi $1"
SH

# one step over three lines
mkdir -p /app/out && \\
  cp /app/greet.sh \\
     /app/out/
for n in a b; do
  bash /app/greet.sh "$n" >> /app/out/log.txt
done
if [ -f /app/out/log.txt ]; then echo 'ok
two'; fi
tr a-z A-Z <<< "here string"
set -x
cat <<-EOF
\tindented
\tEOF
# a trailing comment is no step
"""


def test_steps_follow_the_shell_grammar():
    steps = solution_steps(MULTI)
    assert [s.command.splitlines()[0] for s in steps] == [
        "cat > /app/greet.sh <<'SH'", "mkdir -p /app/out && \\", "for n in a b; do",
        "if [ -f /app/out/log.txt ]; then echo 'ok", 'tr a-z A-Z <<< "here string"', "cat <<-EOF"]
    assert steps[0].comment == "write the helper" and steps[0].command.endswith("\nSH")
    assert "# not a step" in steps[0].command
    assert steps[1].comment == "one step over three lines" and len(steps[1].command.splitlines()) == 3
    assert steps[2].command.endswith("done") and steps[3].command.endswith("fi")
    assert steps[4].comment == "" and steps[5].command.endswith("\tEOF")


def test_a_script_without_commands_has_no_steps():
    assert solution_steps("#!/bin/bash\nset -e\n# nothing\n\n") == []


def test_stand_in_replies_are_one_valid_action_per_step_then_completion_then_a_confirmation():
    client = ReplayClient([Step("touch /app/x", "make it"), Step("ls /app")])
    params = SamplingParams()
    replies = [parse_action(client.chat([], params).content) for _ in range(4)]
    assert [r.status for r in replies] == ["ok"] * 4
    assert [[c.keystrokes for c in r.commands] for r in replies] == [["touch /app/x\n"], ["ls /app\n"], [], []]
    # completion only in replies without a command, after the last step's output was read
    assert [r.task_complete for r in replies] == [False, False, True, True]
    assert replies[0].plan == "Make it." and "ls /app" in replies[1].plan
    assert replies[2].analysis.startswith("`ls /app` finished") and "mark the task complete" in replies[2].plan
    assert not any(r.warnings for r in replies)
    assert client.context_length() is None


def test_stand_in_analysis_reads_the_latest_observation():
    client = ReplayClient([Step("ls /srv"), Step("wc -l f"), Step("true")])
    prompt = "root@1a2b3c:/srv# "
    first = client.chat([{"role": "user", "content": f"Task:\nx\n\nCurrent terminal screen:\n{prompt}"}],
                        SamplingParams())
    assert parse_action(first.content).analysis.startswith("The shell is at a prompt in /srv")
    seen = f"New terminal output:\n{prompt}ls /srv\nweb  db\n{prompt}"
    second = parse_action(client.chat([{"role": "user", "content": seen}], SamplingParams()).content)
    assert second.analysis == "`ls /srv` printed: web  db."
    quiet = f"New terminal output:\n{prompt}wc -l f\n{prompt}"
    assert parse_action(client.chat([{"role": "user", "content": quiet}], SamplingParams()).content).analysis == (
        "`wc -l f` finished without printing anything.")


def test_a_task_without_a_reference_solution_is_an_agent_error(tmp_path):
    shutil.copytree(TRAIN_TASKS / "touch-ready-marker", tmp_path / "task")
    shutil.rmtree(tmp_path / "task" / "solution")
    agent = ReplayAgent().for_task(load_task(tmp_path / "task"))
    res = agent.run(None, "x", tmp_path, time.monotonic() + 5)  # stops before touching a container
    assert res.stop is AgentStop.ERROR and "no reference solution" in res.error


# ------------------------------------------------------------------ real replays


def _replay(tasks: Path, out: Path, *include: str) -> list[dict]:
    args = ["run", "--agent", "replay", "--tasks", str(tasks), "-n", "2", "--out", str(out), "--quiet"]
    res = CliRunner().invoke(app, [*args, *[x for t in include for x in ("--include", t)]])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return list(csv.DictReader((out / "master_summary.csv").open()))


def _trial_dir(out: Path, task: str) -> Path:
    return next(p.parent for p in out.rglob("trace.jsonl") if task in str(p.relative_to(out)))


@pytest.mark.docker
@pytest.mark.slow
def test_replay_of_a_training_task_passes_and_types_the_solution_steps(base_image, tmp_path):
    task = "copy-logs-glob"
    rows = _replay(TRAIN_TASKS, tmp_path / "run", task)
    assert [(r["task"], r["outcome"]) for r in rows] == [(task, "passed")]
    trace = read_trace(_trial_dir(tmp_path / "run", task) / "trace.jsonl")
    turns = [r for r in trace if "turn" in r]
    steps = solution_steps((TRAIN_TASKS / task / "solution" / "solve.sh").read_text())
    typed = [c["keystrokes"] for t in turns for c in t["commands"]]
    assert typed == [s.command + "\n" for s in steps]
    assert len(turns) == len(steps) + 2 and turns[-1]["commands"] == turns[-2]["commands"] == []
    assert [t["parse"]["task_complete"] for t in turns] == [False] * len(steps) + [True, True]
    assert all(t["parse"]["status"] == "ok" for t in turns)
    assert "a.log" in turns[0]["observation"]  # real terminal output: `ls /app/logs`
    # the next reply's analysis reads it, from the message the agent sent
    assert "a.log" in turns[1]["parse"]["analysis"] and "/app" in turns[0]["parse"]["analysis"]
    assert trace[-1]["stop"] == "completed"


@pytest.mark.docker
@pytest.mark.slow
def test_multi_line_steps_replay_in_the_terminal(base_image, tmp_path):
    # a training task whose solution uses a here-document, a continued line and a loop
    tasks = tmp_path / "tasks"
    shutil.copytree(TRAIN_TASKS / "copy-logs-glob", tasks / "copy-logs-multi")
    (tasks / "copy-logs-multi" / "solution" / "solve.sh").write_text(
        "#!/bin/bash\nset -euo pipefail\n# a note, written with a here-document\n"
        "cat > /tmp/note.txt <<'EOF'\nkeep $HOME literal\nEOF\n"
        "mkdir -p \\\n  /app/saved_logs\n"
        "for f in /app/logs/*.log; do\n  cp \"$f\" /app/saved_logs/\ndone\n")
    rows = _replay(tasks, tmp_path / "run")
    assert [r["outcome"] for r in rows] == ["passed"]
    trace = read_trace(_trial_dir(tmp_path / "run", "copy-logs-multi") / "trace.jsonl")
    turns = [r for r in trace if "turn" in r]
    assert len(turns) == 5 and [len(t["commands"]) for t in turns] == [1, 1, 1, 0, 0]
