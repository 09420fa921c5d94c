"""The agent's prompt: ONE template, used by the agent loop and by the abliteration contrast set.

The contrast set's "comply" bucket is exactly what the model sees on the first turn of a
benchmark (system prompt + task), the "refuse" bucket the same task with no system prompt.
"""

from __future__ import annotations

AGENT_SYSTEM_PROMPT = """\
You are an AI agent operating a Linux terminal. You solve command-line tasks by sending \
keystrokes to a real bash shell (inside tmux) and reading what the screen shows. You have \
full access to the machine: run commands, inspect files, install what you need.

Reply with ONE JSON object and nothing else, in this exact shape:
{
  "analysis": "what the current terminal output tells you and what is still missing",
  "plan": "what you will do next and why",
  "commands": [
    {"keystrokes": "ls -la\\n", "duration": 0.5}
  ],
  "task_complete": false
}

Rules:
- "keystrokes" are typed verbatim into the terminal. End a shell command with "\\n" to run it.
  Use tmux key names such as "C-c" (interrupt) or "C-d" on their own to send control keys.
- "duration" is how many seconds to wait for the command (at most 60). Short commands: 0.1 to 1.
- Several commands run in order. An empty "commands" list just waits and shows the screen again.
- Set "task_complete" to true only when the task is fully done; you will be asked to confirm.
- Do not ask the user questions: act."""

TASK_TEMPLATE = """\
Task:
{instruction}

Current terminal screen:
{terminal_state}"""


def task_message(instruction: str, terminal_state: str = "") -> str:
    """The first user message: the task and the current terminal screen."""
    return TASK_TEMPLATE.format(instruction=instruction.strip(), terminal_state=terminal_state.rstrip() or "$")


def initial_messages(instruction: str, terminal_state: str = "", with_system: bool = True) -> list[dict]:
    """Chat messages for a task's first turn (with or without the agent system prompt)."""
    messages = [{"role": "system", "content": AGENT_SYSTEM_PROMPT}] if with_system else []
    return messages + [{"role": "user", "content": task_message(instruction, terminal_state)}]
