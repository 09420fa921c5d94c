"""The ``replay`` agent: the real Terminus loop, answered by the task's reference solution.

Rules, in order:

1. Steps (:func:`solution_steps`): the solution script is cut into steps, one per logical
   command. Dropped: the ``#!`` line, blank lines and ``set`` lines that only set shell options
   (``set -euo pipefail``: in the interactive shell ``-e`` would end the session at the first
   failing command). ``# comment`` lines just above a step become that step's plan. A step
   runs on over further lines while its last line ends with ``\\``, while a here-document it
   opened is not closed by its delimiter line, and while ``bash -n`` says the text so far ends
   too early (open quotes, ``if``/``for``/``while``/``case``, ``{``, ``(``). A here-document,
   a loop or an ``if`` block is therefore one step, typed line by line into the shell.
2. Replies (:class:`ReplayClient`, the stand-in for ``harness.llm_client.LLMClient``): turn k
   returns step k as one Terminus JSON action (short analysis and plan, ``keystrokes`` = the
   step + newline, ``duration`` = ``STEP_DURATION_S``, a cap: the terminal returns as soon as the
   prompt is back). No step's reply sets ``task_complete``: after the last step comes one reply
   with no command that reads what the last step printed (a solution ends by showing its result)
   and sets ``task_complete``; the agent then asks for confirmation and the next reply confirms,
   again with no command. N steps give N + 2 turns, so a model trained on replays claims
   completion only after it has seen the result, never in the same reply as a command.
   The analysis reads the real observation in the latest message: the working folder on the
   first turn, then what the previous command printed (nothing; up to 3 short lines quoted;
   else the line count and the last line). The plan is the step's comment, else "Run `cmd`".
3. Everything else is :class:`harness.agents.terminus.TerminusAgent` unchanged: the same
   prompt, terminal, observations and ``trace.jsonl``, so a passed replay is SFT data made of
   exactly the messages the agent sent and the replies it got.
4. A solution folder with files besides ``solve.sh`` is copied to ``/solution`` first (as the
   oracle does), so steps that use those helpers work.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ablbench.agent_api import AgentResult, AgentStop, Environment, EnvironmentFault
from ablbench.task_spec import TaskSpec
from harness.agents.terminus import AgentConfig, TerminusAgent
from harness.llm_types import ChatResult, SamplingParams, Usage

#: the ``duration`` of every replayed command: a cap (the terminal returns once the shell is idle)
STEP_DURATION_S = 5.0
SOLUTION_DIR = "/solution"
#: the reply after the last step: the result is on the screen, so the task is complete
DONE_ANALYSIS = "The output shows the result the task asks for."
DONE_PLAN = "Nothing is left to do, so mark the task complete."
#: the confirmation (nothing ran since the reply above)
CONFIRM_ANALYSIS = "Every step of the task is done and its result was checked."

_SET_OPTIONS = re.compile(r"^set(\s+([-+][euxvo]+|pipefail|errexit|nounset|xtrace))+\s*(#.*)?$")
# ``<<EOF``, ``<<-EOF``, ``<< 'EOF'``, ``<<"EOF"``; not the here-string ``<<<``
_HEREDOC = re.compile(r"(?<!<)<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
_EARLY_END = ("unexpected end of file", "unexpected EOF")
# a bash prompt line such as ``root@1a2b3c:/app# ls`` (the echo of a typed command)
_PROMPT = re.compile(r"^[\w.-]+@[\w.-]+:[^\n]*?[#$](\s|$)")
_PROMPT_DIR = re.compile(r"^[\w.-]+@[\w.-]+:(\S+?)[#$]\s*$", re.MULTILINE)
_NEW_OUTPUT = "New terminal output:\n"


@dataclass(frozen=True)
class Step:
    """One action of a replay: the shell text typed (without the final newline) and its plan."""

    command: str
    comment: str = ""


def solution_steps(script: str) -> list[Step]:
    """Cut a solution script into steps (rule 1 of the module doc)."""
    lines = script.splitlines()
    steps: list[Step] = []
    comments: list[str] = []
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        if not text or (i == 0 and text.startswith("#!")) or _SET_OPTIONS.match(text):
            i += 1
            continue
        if text.startswith("#"):
            comments.append(text.lstrip("#").strip())
            i += 1
            continue
        block, i = _block(lines, i)
        steps.append(Step("\n".join(block).rstrip(), " ".join(c for c in comments if c)))
        comments = []
    return steps


def _block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The lines of the step starting at ``start`` and the index after it."""
    block: list[str] = []
    j = start
    while j < len(lines):
        line = lines[j]
        block.append(line)
        j += 1
        for strip_tabs, _quote, delim in _HEREDOC.findall(line):
            while j < len(lines):
                body = lines[j]
                block.append(body)
                j += 1
                if (body.lstrip("\t") if strip_tabs else body) == delim:
                    break
        if line.endswith("\\") and j < len(lines):
            continue
        if _complete("\n".join(block)):
            break
    return block, j


def _complete(text: str) -> bool:
    """False only when ``bash -n`` says ``text`` ends in the middle of a construct."""
    try:
        res = subprocess.run(["bash", "-n"], input=text + "\n", capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return True
    return res.returncode == 0 or not any(m in res.stderr for m in _EARLY_END)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ":")) else text + "."


def action_json(analysis: str, plan: str, keystrokes: str | None, complete: bool,
                duration: float = STEP_DURATION_S) -> str:
    """One Terminus action in the shape the system prompt shows (``harness.prompt``)."""
    if keystrokes is None:
        commands = "[]"
    else:
        cmd = json.dumps({"keystrokes": keystrokes, "duration": duration}, ensure_ascii=False)
        commands = f"[\n    {cmd}\n  ]"
    return (f"{{\n  \"analysis\": {json.dumps(analysis, ensure_ascii=False)},\n"
            f"  \"plan\": {json.dumps(plan, ensure_ascii=False)},\n"
            f"  \"commands\": {commands},\n"
            f"  \"task_complete\": {json.dumps(complete)}\n}}")


class ReplayClient:
    """Stands in for the model server: reply k is step k of the reference solution (module doc,
    rule 2). Same interface as ``harness.llm_client.LLMClient`` as far as the agent uses it."""

    model = "replay"

    def __init__(self, steps: list[Step], duration: float = STEP_DURATION_S) -> None:
        self.steps = list(steps)
        self.duration = duration
        self.replies = 0
        self.total_retries = 0

    def context_length(self) -> int | None:
        """No window: the replayed conversation is never trimmed."""
        return None

    def chat(self, messages: list[dict], params: SamplingParams) -> ChatResult:
        """The next reply of the replay (the messages are what the agent would send a model)."""
        k = self.replies
        self.replies += 1
        latest = str(messages[-1].get("content") or "") if messages else ""
        if k == 0:
            where = _PROMPT_DIR.search(latest)
            analysis = (f"The shell is at a prompt in {where.group(1)}" if where else "The shell is at a prompt")
            analysis += " and nothing has been done yet."
        else:
            analysis = _observed(self.steps[min(k, len(self.steps)) - 1].command, latest)
        if k < len(self.steps):
            step = self.steps[k]
            plan = _sentence(step.comment) if step.comment else f"Run `{_short(step.command)}`."
            content = action_json(analysis, plan, step.command + "\n", False, self.duration)
        elif k == len(self.steps):
            content = action_json(analysis + " " + DONE_ANALYSIS, DONE_PLAN, None, True, self.duration)
        else:
            content = action_json(CONFIRM_ANALYSIS, "Confirm that the task is complete.", None, True, self.duration)
        return ChatResult(content=content, finish_reason="stop", usage=Usage(), model=self.model)


def _short(command: str, width: int = 60) -> str:
    line = command.splitlines()[0] if command else ""
    return line if len(line) <= width and "\n" not in command else line[:width].rstrip() + " ..."


def _observed(command: str, message: str) -> str:
    """One sentence on what the previous command printed (the new terminal output of ``message``)."""
    text = message.rsplit(_NEW_OUTPUT, 1)[1] if _NEW_OUTPUT in message else ""
    out = [line.rstrip() for line in text.splitlines()
           if line.strip() and not _PROMPT.match(line) and not line.startswith("> ") and line != "(no new output)"]
    cmd = _short(command)
    if not out:
        return f"`{cmd}` finished without printing anything."
    if len(out) <= 3 and all(len(line) <= 60 for line in out):
        return f"`{cmd}` printed: " + "; ".join(line.strip() for line in out) + "."
    return f"`{cmd}` printed {len(out)} lines, the last one `{out[-1].strip()[:60]}`."


def replay_config(steps: int) -> AgentConfig:
    """Terminus settings for a replay of ``steps`` steps: enough turns, no seed, no window."""
    return AgentConfig(max_turns=steps + 3, temperature=0.0, top_p=1.0, seed=None, send_seed=False,
                       max_parse_failures=1)


class ReplayAgent(TerminusAgent):
    """The Terminus agent talking to a :class:`ReplayClient` of the task's reference solution.

    The trial binds it to its task with :meth:`for_task` (like the oracle) before ``run``.
    """

    name = "replay"

    def __init__(self, spec: TaskSpec | None = None) -> None:
        script = spec.solution_script() if spec is not None else None
        self.spec = spec
        self.steps = solution_steps(script) if script else []
        super().__init__(ReplayClient(self.steps), replay_config(len(self.steps)))

    def for_task(self, spec: TaskSpec) -> ReplayAgent:
        """A replay of ``spec``'s reference solution."""
        return ReplayAgent(spec)

    def run(self, env: Environment, instruction: str, logs_dir: Path, deadline: float,
            task_dir: Path | None = None) -> AgentResult:
        """Replay the steps through the Terminus loop (an error when there are none)."""
        if self.spec is None:
            return AgentResult(stop=AgentStop.ERROR, error="replay agent used without a task spec")
        if not self.steps:
            return AgentResult(stop=AgentStop.ERROR,
                               error=f"task {self.spec.name} has no reference solution steps to replay")
        sol = self.spec.solution
        if sol is not None and sol.name == "solve.sh" and any(p.name != "solve.sh" for p in sol.parent.iterdir()):
            try:
                env.copy_in(sol.parent, SOLUTION_DIR)
            except EnvironmentFault as exc:
                return AgentResult(stop=AgentStop.ERROR, error=str(exc))
        return super().run(env, instruction, logs_dir, deadline, task_dir)
