"""Agents that need no model: ``oracle`` (runs the reference solution) and ``nop`` (does nothing).

They validate tasks and the runner: with a correct task, the oracle passes and nop fails.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from ablbench.agent_api import AgentResult, AgentStop, Environment, EnvironmentFault, ExecResult
from ablbench.task_spec import TaskSpec

SOLUTION_DIR = "/solution"


def _trace(logs_dir: Path, **event: object) -> None:
    with (logs_dir / "trace.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"t": round(time.time(), 3), **event}) + "\n")


class NopAgent:
    """Does nothing and says it is done (a correct task must then fail)."""

    name = "nop"

    def run(
        self, env: Environment, instruction: str, logs_dir: Path, deadline: float, task_dir: Path
    ) -> AgentResult:
        """Record one trace event and stop."""
        _trace(logs_dir, event="nop")
        return AgentResult(stop=AgentStop.COMPLETED)


class OracleAgent:
    """Copies the task's reference solution to ``/solution`` and runs it with bash.

    It needs the TaskSpec (``solution_script()`` handles solve.sh, solution.sh and legacy
    solution.yaml), so the trial passes it through :meth:`for_task` before ``run``.
    """

    name = "oracle"

    def __init__(self, spec: TaskSpec | None = None) -> None:
        self.spec = spec

    def for_task(self, spec: TaskSpec) -> OracleAgent:
        """A copy bound to ``spec``."""
        return OracleAgent(spec)

    def run(
        self, env: Environment, instruction: str, logs_dir: Path, deadline: float, task_dir: Path
    ) -> AgentResult:
        """Run the solution until it exits or ``deadline`` passes."""
        if self.spec is None:
            return AgentResult(stop=AgentStop.ERROR, error="oracle agent used without a task spec")
        script = self.spec.solution_script()
        if script is None:
            _trace(logs_dir, event="error", message="task has no reference solution")
            return AgentResult(stop=AgentStop.ERROR, error=f"task {self.spec.name} has no reference solution")
        entry = f"{SOLUTION_DIR}/solve.sh"
        try:
            sol = self.spec.solution
            if sol is not None and sol.name == "solve.sh" and sol.parent.is_dir():
                env.copy_in(sol.parent, SOLUTION_DIR)  # TB2: solution/ may hold helper files
            else:
                env.write_file(entry, script, mode=0o755)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return AgentResult(stop=AgentStop.TIMEOUT)
            _trace(logs_dir, event="command", command=f"bash {entry}", timeout_s=round(remaining, 1))
            cmd = f"bash {shlex.quote(entry)} > /logs/agent/oracle.txt 2>&1"
            res: ExecResult = env.exec_wait(cmd, timeout_s=remaining)
            out = env.read_file("/logs/agent/oracle.txt") or b""
        except EnvironmentFault as exc:
            _trace(logs_dir, event="error", message=str(exc))
            return AgentResult(stop=AgentStop.ERROR, turns=1, error=str(exc))
        text = out.decode("utf-8", "replace")
        (logs_dir / "oracle.txt").write_text(text, encoding="utf-8")
        _trace(
            logs_dir,
            event="result",
            exit_code=res.exit_code,
            timed_out=res.timed_out,
            duration_s=round(res.duration_s, 3),
            output_tail=text[-2000:],
        )
        if res.timed_out or time.monotonic() >= deadline:
            return AgentResult(stop=AgentStop.TIMEOUT, turns=1)
        return AgentResult(stop=AgentStop.COMPLETED, turns=1, extra={"exit_code": res.exit_code})
