"""Helpers for the harbor tests and benchmark: run harbor from .venv-harbor, a scripted "oracle model".

The scripted model is a real HTTP server on 127.0.0.1 (``test_agent_scripted_server``) whose
reply depends on the task it sees in the first user message and on how many replies it has
already given in that conversation: first the task's reference solution as keystrokes, then
``task_complete`` twice (the agent asks for a confirmation). It stands in for a model that
solves the task, like the oracle agent, but through the whole agent: parser, tmux, exec.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from ablbench.paths import REPO_ROOT

HARBOR_VENV = REPO_ROOT / ".venv-harbor"
HARBOR_SH = REPO_ROOT / "scripts" / "harbor.sh"
AGENT_IMPORT = "harness.agents.harbor_agent:AblbenchTerminus"
ENV_IMPORT = "runners.harbor_environment:AblbenchDocker"
DONE = json.dumps({"analysis": "Done.", "plan": "Finish.", "commands": [], "task_complete": True})


def harbor_ready() -> str | None:
    """None when .venv-harbor is usable, else why not."""
    if not (HARBOR_VENV / "bin" / "harbor").exists():
        return f"{HARBOR_VENV}/bin/harbor missing: run `make setup-harbor`"
    return None


def run_harbor(args: list[str], timeout_s: float = 600) -> subprocess.CompletedProcess:
    """``scripts/harbor.sh ARGS`` (DOCKER_CONFIG, litellm's local price list, this checkout importable)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(HARBOR_SH), *args], capture_output=True, text=True, timeout=timeout_s, env=env,
                          cwd=REPO_ROOT)


def harbor_python(code: str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` with .venv-harbor's Python (harbor importable) and this checkout on the path."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([str(HARBOR_VENV / "bin" / "python"), "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout_s, env=env, cwd=REPO_ROOT)


VALIDATE_ATIF = """
import sys
from harbor.models.trajectories import Trajectory
for path in sys.argv[1:]:
    t = Trajectory.model_validate_json(open(path, encoding="utf-8").read())
    print(path, t.schema_version, len(t.steps))
"""


def validate_atif(*paths: Path) -> subprocess.CompletedProcess:
    """Validate trajectory files with harbor's own ATIF pydantic model (in .venv-harbor)."""
    return harbor_python(VALIDATE_ATIF, *(str(p) for p in paths))


def solution_keystrokes(task_dir: Path) -> str:
    """The task's solve.sh as one command line (base64: no "!" for bash's history expansion)."""
    data = base64.b64encode((task_dir / "solution" / "solve.sh").read_bytes()).decode()
    return f"echo {data} | base64 -d > /tmp/solve.sh && bash /tmp/solve.sh\n"


def oracle_model(tasks: dict[str, Path], first_commands: str = "", first_duration: float = 5.0
                 ) -> Callable[[dict], str]:
    """A reply function for ``ScriptedServer``: solution, then task_complete twice (see the module doc).

    ``tasks`` maps a phrase of each task's instruction to its folder; ``first_commands`` is typed
    before the solution (e.g. a probe whose output the test reads in the trace).
    """

    def reply(body: dict) -> str:
        messages = body.get("messages") or []
        task_text = next((str(m.get("content")) for m in messages if m.get("role") == "user"), "")
        done_turns = sum(1 for m in messages if m.get("role") == "assistant")
        folder = next((d for phrase, d in tasks.items() if phrase in task_text), None)
        if folder is None or done_turns > 0:
            return DONE
        commands = []
        if first_commands:
            commands.append({"keystrokes": first_commands, "duration": 2.0})
        commands.append({"keystrokes": solution_keystrokes(folder), "duration": first_duration})
        return json.dumps({"analysis": "Fresh shell.", "plan": "Run the solution.", "commands": commands,
                           "task_complete": False})

    return reply
