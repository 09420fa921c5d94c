"""The contract between a trial and an agent.

A trial owns the container; the agent gets the running docker SDK ``Container``, the task
instruction, a folder for its logs (``trace.jsonl`` goes there) and a wall-clock deadline
(``time.monotonic()`` value) that it must respect cooperatively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from docker.models.containers import Container


class Outcome(StrEnum):
    """How a trial ended."""

    PASSED = "passed"
    FAILED = "failed"
    AGENT_TIMEOUT = "agent_timeout"
    CONTEXT_EXCEEDED = "context_exceeded"
    PARSE_FAIL_EXHAUSTED = "parse_fail_exhausted"
    VERIFIER_ERROR = "verifier_error"
    LLM_ERROR = "llm_error"
    INFRA_ERROR = "infra_error"


class AgentStop(StrEnum):
    """Why the agent stopped (the trial turns this plus the verifier into an Outcome)."""

    COMPLETED = "completed"  # the agent said task_complete (confirmed)
    MAX_TURNS = "max_turns"
    TIMEOUT = "timeout"
    CONTEXT_EXCEEDED = "context_exceeded"
    PARSE_FAIL_EXHAUSTED = "parse_fail_exhausted"
    LLM_ERROR = "llm_error"
    ERROR = "error"  # unexpected exception inside the agent (infra)


@dataclass
class AgentResult:
    """What an agent reports back to the trial."""

    stop: AgentStop
    turns: int = 0
    parse_fail: int = 0
    no_cmd: int = 0
    retries: int = 0
    context_events: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    #: replies cut off at the token limit (finish_reason "length"), whether or not a part ran
    cut_off: int = 0
    error: str | None = None
    extra: dict = field(default_factory=dict)


class Agent(Protocol):
    """Anything that can work on a task inside a running container.

    Optional hooks a trial calls before ``run`` when the agent has them: ``for_task(spec)``
    (returns the agent for that TaskSpec) and ``for_trial(task, attempt)`` (returns the agent
    for that attempt; the terminus agent derives its sampling seeds from them).
    """

    name: str

    def run(
        self, container: Container, instruction: str, logs_dir: Path, deadline: float, task_dir: Path
    ) -> AgentResult:
        """Work on the task until done, out of turns, or past ``deadline`` (monotonic seconds)."""
        ...
