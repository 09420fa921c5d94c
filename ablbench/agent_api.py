"""The contract between a trial and an agent.

A trial owns the environment; the agent gets it as an :class:`Environment` (run a command, copy
files in, read files back), the task instruction, a folder for its logs (``trace.jsonl`` goes
there) and a wall-clock deadline (``time.monotonic()`` value) that it must respect cooperatively.
Rules, in order:

1. Agents never see a docker ``Container`` or any engine's SDK: the built-in docker environment
   (``runners.environment.TaskEnvironment``) and harbor's environments
   (``runners.harbor_bridge.HarborEnvironmentBridge``) both implement :class:`Environment`.
2. Keystrokes and the screen come from a :class:`Terminal` built over an Environment's ``exec``
   (``runners.terminal.TmuxTerminal``), so every environment gets the same terminal.
3. An environment that can no longer be used (removed, cancelled, a command too long) raises
   :class:`EnvironmentFault` (or a subclass) from any of its methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class EnvironmentFault(RuntimeError):
    """The environment failed or is gone (infrastructure, not the agent's fault)."""


@dataclass
class ExecResult:
    """Exit status, combined output and timing of one command run in the environment."""

    exit_code: int | None
    output: str = ""
    timed_out: bool = False
    duration_s: float = 0.0


@dataclass
class SendResult:
    """How a keystroke batch ended: idle-prompt | idle-settle | idle-repl | idle-exit | timeout."""

    how: str
    waited_s: float

    @property
    def idle(self) -> bool:
        return self.how.startswith("idle")


class Environment(Protocol):
    """Where an agent works: a running task container, local or remote (rule 1)."""

    @property
    def name(self) -> str:
        """A name for messages (the container's)."""
        ...

    @property
    def image(self) -> str:
        """The image it runs, or "" when unknown (for messages)."""
        ...

    def exec(self, cmd: str | list[str], timeout_s: float | None = 60, *, env: dict[str, str] | None = None,
             workdir: str | None = None, user: str | None = None) -> ExecResult:
        """Run ``bash -c cmd`` (a list: that argv), wait for it (at most ``timeout_s``; None: no limit).

        Returns its exit code and its stdout followed by stderr."""
        ...

    def exec_wait(self, cmd: str, timeout_s: float, *, env: dict[str, str] | None = None,
                  workdir: str | None = None) -> ExecResult:
        """Run a long ``bash -c cmd`` (its output redirected by the caller) until it ends or ``timeout_s``."""
        ...

    def copy_in(self, src: Path, dest_dir: str) -> None:
        """Copy a host file or the contents of a host folder into ``dest_dir`` (created)."""
        ...

    def write_file(self, path: str, content: bytes | str, mode: int = 0o644) -> None:
        """Create one file (and its folders)."""
        ...

    def read_file(self, path: str) -> bytes | None:
        """One file's bytes, or None when it does not exist."""
        ...


class Terminal(Protocol):
    """A shell an agent types into and reads (rule 2)."""

    restarts: int
    counter_ok: bool

    def start(self) -> str:
        """Start (or restart) the shell; returns the first screen."""
        ...

    def send(self, keystrokes: str, duration: float = 1.0, *, deadline: float | None = None) -> SendResult:
        """Type ``keystrokes`` (tmux key names allowed); return when the shell is idle or ``duration`` passed."""
        ...

    def observe(self) -> str:
        """The output since the previous observation."""
        ...

    def screen(self) -> str:
        """The visible screen right now."""
        ...

    def close(self) -> None:
        """End the shell (the environment stays)."""
        ...


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
    """Anything that can work on a task inside a running :class:`Environment`.

    Optional hooks a trial calls before ``run`` when the agent has them: ``for_task(spec)``
    (returns the agent for that TaskSpec) and ``for_trial(task, attempt)`` (returns the agent
    for that attempt; the terminus agent derives its sampling seeds from them).
    """

    name: str

    def run(
        self, env: Environment, instruction: str, logs_dir: Path, deadline: float, task_dir: Path
    ) -> AgentResult:
        """Work on the task until done, out of turns, or past ``deadline`` (monotonic seconds)."""
        ...
