"""ablbench's Terminus-style agent as a harbor agent: ``harbor run -a harness.agents.harbor_agent:AblbenchTerminus``.

This module imports harbor, so only harbor's own Python (``.venv-harbor``, ``make setup-harbor``)
loads it; nothing in ablbench imports it. Rules, in order:

1. Settings come from ``--ak key=value`` (:class:`AblbenchAgentOptions`, checked by harbor before
   any trial starts): ``api_base`` (required), ``model`` (else harbor's ``-m``), ``max_turns``,
   ``max_tokens``, ``temperature``, ``top_p``, ``seed`` with ``seed_rule`` (``ablbench``: each
   request's seed is ``harness.seeds.request_seed(seed, task, attempt, turn)`` as in ``ablbench
   run``, so both engines share their random numbers; ``none``: no seed sent), ``context_length``
   (else the server's),
   ``max_parse_failures``, ``llm_timeout_s``, ``llm_retries``, ``api_key_env`` and ``deadline_margin_s``.
2. harbor does not number attempts: a trial claims the lowest free number for its task in the
   job folder's :data:`ATTEMPTS_FILE` (1..k in start order, under a file lock; a trial whose
   folder is gone, as harbor removes unfinished ones on resume, frees its number).
3. ``setup`` makes sure tmux runs in the environment; when it is missing it is installed with the
   first package manager found (that needs network), else setup fails with a one-line error.
4. ``run``: the synchronous :class:`~harness.agents.terminus.TerminusAgent` works in its own daemon
   thread, inside a copy of the caller's contextvars (harbor's scoped exec env and log callbacks).
   It works on a :class:`~runners.harbor_bridge.HarborEnvironmentBridge` (the agent contract's
   ``Environment``): each command goes back onto harbor's loop
   (``run_coroutine_threadsafe(environment.exec(...))``), so neither the model request nor a
   command blocks another trial.
5. Deadline = the task's agent timeout (harbor's override and maximum applied) x harbor's agent
   timeout multiplier, read from the trial's ``config.json`` and the task's ``task.toml``, less
   ``deadline_margin_s`` (default 1 s) so the agent closes its trace before harbor's own timer fires.
6. Cancellation (harbor's timeout, Ctrl-C): the bridge closes at once (no further command
   reaches the environment; in-flight execs are cancelled) and the thread gets
   :data:`CANCEL_GRACE_S` to end; a model request still pending is abandoned with it.
7. Whatever happens, the ``AgentContext`` gets the token counts and ``metadata["ablbench"]``
   (stop reason, turns, parse failures, no-command replies, cut-offs, retries, context events,
   execs), and ``logs_dir`` gets ``trace.jsonl`` and ``trajectory.json`` (ATIF, ``ablbench.atif``).
8. How it ends: completed, max_turns, context_exceeded, parse_fail_exhausted and llm_error return
   normally (the verifier grades the final state, as in ``ablbench run``; ``ablbench analyze``
   reads the stop reason from the metadata); a timeout raises harbor's ``AgentTimeoutError`` (the
   verifier still runs); an agent fault (infrastructure) raises :class:`AblbenchAgentError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

from harbor.agents.base import BaseAgent
from harbor.agents.capabilities import AgentCapabilities
from harbor.agents.options import AgentOptions
from harbor.environments.base import BaseEnvironment
from harbor.models.agent.context import AgentContext
from harbor.models.task.config import TaskConfig
from harbor.models.trial.config import TrialConfig
from harbor.trial.errors import AgentTimeoutError
from pydantic import Field

from ablbench.agent_api import AgentResult, AgentStop
from ablbench.atif import TRAJECTORY_FILE, ablbench_version, read_trace_records, write_trajectory
from harness.agents import defaults
from harness.agents.terminus import AgentConfig, TerminusAgent
from harness.llm_client import LLMClient
from runners.harbor_bridge import HarborEnvironmentBridge

#: after a cancellation, how long the agent thread may take to notice and end
CANCEL_GRACE_S = 5.0
#: the job folder's ledger of attempt numbers (a file: harbor's resume removes unknown folders)
ATTEMPTS_FILE = ".ablbench-attempts.json"
#: no task timeout at all (harbor allows that): the agent still stops some day
NO_TIMEOUT_S = 24 * 3600.0
#: how tmux gets installed when the image lacks it (first manager found; needs network)
INSTALL_TMUX = (
    "if command -v apt-get >/dev/null; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
    "apt-get install -y -qq tmux); elif command -v apk >/dev/null; then apk add --no-cache tmux; "
    "elif command -v dnf >/dev/null; then dnf install -y tmux; elif command -v yum >/dev/null; then "
    "yum install -y tmux; elif command -v microdnf >/dev/null; then microdnf install -y tmux; "
    "elif command -v pacman >/dev/null; then pacman -Sy --noconfirm tmux; else exit 127; fi"
)


class AblbenchAgentError(RuntimeError):
    """The agent could not work (terminal or environment fault): an infrastructure error."""


class AblbenchAgentOptions(AgentOptions):
    """``--ak`` settings of the ablbench agent (harbor rejects unknown keys before the job starts)."""

    api_base: str = Field(description="OpenAI-compatible server root, e.g. http://127.0.0.1:30000 (no /v1).")
    model: str | None = Field(default=None, description="Model name as served (default: harbor's -m).")
    max_turns: int = Field(default=defaults.MAX_TURNS, ge=1, description="Model replies per trial.")
    max_tokens: int = Field(default=defaults.MAX_TOKENS, ge=1, description="Tokens per model reply.")
    temperature: float = Field(default=defaults.TEMPERATURE, ge=0.0)
    top_p: float = Field(default=defaults.TOP_P, gt=0.0, le=1.0)
    seed: int = Field(default=defaults.SEED, description="The run seed every request's seed derives from (see seed_rule).")
    seed_rule: Literal["ablbench", "none"] = Field(
        default="ablbench", description="ablbench: request_seed(seed, task, attempt, turn), as `ablbench run`; none.")
    context_length: int | None = Field(default=None, ge=256, description="Model context in tokens (default: ask the server).")
    max_parse_failures: int = Field(default=5, ge=1, description="Consecutive unparseable replies that end a trial.")
    llm_timeout_s: float = Field(default=600.0, gt=0.0, description="Seconds one model request may take.")
    llm_retries: int = Field(default=3, ge=0, description="Retries of a failed model request.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable holding the API key (else none).")
    deadline_margin_s: float = Field(
        default=1.0, description="Stop this long before harbor's agent timeout; negative leaves it to harbor's timer.")


def claim_attempt(job_dir: Path, task: str, trial_name: str) -> int:
    """This trial's attempt number for ``task`` (module rule 2); the same number when asked again."""
    with (job_dir / ATTEMPTS_FILE).open("a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        fh.seek(0)
        try:
            ledger = json.loads(fh.read() or "{}")
        except ValueError:
            ledger = {}
        slots: dict[str, str] = ledger.setdefault(task, {})
        for number, owner in slots.items():
            if owner == trial_name:
                return int(number)
        n = 1
        while str(n) in slots and (job_dir / slots[str(n)]).is_dir():
            n += 1
        slots[str(n)] = trial_name
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(ledger, indent=1, sort_keys=True))
        return n


def agent_timeout_s(environment: BaseEnvironment) -> float | None:
    """harbor's agent timeout for this trial: min(override or task, max) x multiplier; None when unset."""
    trial = TrialConfig.model_validate_json(environment.trial_paths.config_path.read_text(encoding="utf-8"))
    task_toml = Path(environment.environment_dir).parent / "task.toml"
    if not task_toml.is_file() and trial.task.path is not None:
        task_toml = Path(trial.task.path) / "task.toml"
    base = trial.agent.override_timeout_sec
    if base is None:
        base = TaskConfig.model_validate_toml(task_toml.read_text(encoding="utf-8")).agent.timeout_sec
    if base is None:
        return None
    multiplier = trial.agent_timeout_multiplier if trial.agent_timeout_multiplier is not None else trial.timeout_multiplier
    return min(float(base), trial.agent.max_timeout_sec or float("inf")) * multiplier


class AblbenchTerminus(BaseAgent):
    """ablbench's Terminus-style agent driving harbor's ``environment.exec`` (module rules)."""

    capabilities = AgentCapabilities(atif=True)
    options_model = AblbenchAgentOptions

    def __init__(self, logs_dir: Path, model_name: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(logs_dir, model_name, *args, **kwargs)
        self.options: AblbenchAgentOptions
        if not (self.options.model or model_name):
            raise ValueError("the ablbench agent needs a model name: pass --ak model=NAME (as served) or -m NAME")

    @staticmethod
    def name() -> str:
        return "ablbench-terminus"

    def version(self) -> str:
        return ablbench_version()

    async def setup(self, environment: BaseEnvironment) -> None:
        """Make sure tmux runs in the environment (install it when the image lacks it)."""
        if (await environment.exec("tmux -V", timeout_sec=30, user="root")).return_code == 0:
            return
        self.logger.info("tmux is missing in the task image: installing it")
        res = await environment.exec(INSTALL_TMUX, timeout_sec=240, user="root")
        if res.return_code != 0 or (await environment.exec("tmux -V", timeout_sec=30, user="root")).return_code != 0:
            tail = ((res.stdout or "") + (res.stderr or ""))[-300:].strip()
            raise AblbenchAgentError(
                "tmux is not installed in the task image and installing it failed -- add tmux to the task's "
                f"Dockerfile or give the environment network (last output: {tail!r})")

    # ------------------------------------------------------------------ run
    async def run(self, instruction: str, environment: BaseEnvironment, context: AgentContext) -> None:
        """Work on the task (module rules 2 and 4-8)."""
        loop = asyncio.get_running_loop()
        opts = self.options
        logs_dir = Path(self.logs_dir)
        logs_dir.mkdir(parents=True, exist_ok=True)
        trial_name = logs_dir.parent.name
        model = opts.model or self.model_name or ""
        try:
            budget = agent_timeout_s(environment)
        except (OSError, ValueError) as exc:
            self.logger.warning(f"cannot read the agent timeout ({exc}); relying on harbor's own timer")
            budget = None
        deadline = time.monotonic() + (budget - opts.deadline_margin_s if budget else NO_TIMEOUT_S)

        bridge = HarborEnvironmentBridge(
            environment, loop, name=f"harbor:{trial_name}",
            image=str(getattr(environment.task_env_config, "docker_image", "") or ""))
        client = LLMClient(opts.api_base, model, api_key=os.environ.get(opts.api_key_env) or "EMPTY",
                           timeout_s=opts.llm_timeout_s, max_retries=opts.llm_retries,
                           log=lambda line: self.logger.warning(line))
        agent = TerminusAgent(client, AgentConfig(
            max_turns=opts.max_turns, max_tokens=opts.max_tokens, temperature=opts.temperature, top_p=opts.top_p,
            seed=None if opts.seed_rule == "none" else opts.seed, max_parse_failures=opts.max_parse_failures,
            context_length=opts.context_length))
        task = str(getattr(environment, "environment_name", "") or trial_name.rsplit("__", 1)[0])
        done: asyncio.Future[AgentResult] = loop.create_future()

        def deliver(setter: Any, value: Any) -> None:
            if not done.done():
                setter(value)

        def work() -> None:
            try:
                agent.for_trial(task, claim_attempt(logs_dir.parent.parent, task, trial_name))
                res = agent.run(bridge, instruction, logs_dir, deadline)
                outcome: tuple[Any, Any] = (done.set_result, res)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop
                outcome = (done.set_exception, exc)
            with contextlib.suppress(RuntimeError):  # the loop is gone (abandoned after a cancellation)
                loop.call_soon_threadsafe(deliver, *outcome)

        def finish(res: AgentResult | None, cancelled: bool) -> None:
            self._finish(context, res, instruction, model, trial=(agent.task, agent.attempt), execs=bridge.calls,
                         cancelled=cancelled, wall_s=time.monotonic() - started)

        ctx = contextvars.copy_context()
        worker = threading.Thread(target=ctx.run, args=(work,), daemon=True, name=f"ablbench-agent-{trial_name}")
        started = time.monotonic()
        worker.start()
        result: AgentResult | None = None
        try:
            result = await asyncio.shield(done)
        except Exception as exc:  # noqa: BLE001 - TerminusAgent.run catches its own; this is a bug
            finish(None, cancelled=False)
            raise AblbenchAgentError(f"the agent raised {type(exc).__name__}: {exc}") from exc
        except asyncio.CancelledError:
            bridge.close()
            await asyncio.wait({done}, timeout=CANCEL_GRACE_S)
            result = done.result() if done.done() and not done.exception() else None
            finish(result, cancelled=True)
            raise
        finish(result, cancelled=False)
        if result.stop is AgentStop.TIMEOUT:
            raise AgentTimeoutError(f"agent deadline ({budget or NO_TIMEOUT_S:.0f}s) passed: "
                                    f"{result.error or 'timeout'}")
        if result.stop is AgentStop.ERROR:
            raise AblbenchAgentError(result.error or "the agent failed")

    # ------------------------------------------------------------------ bookkeeping
    def _finish(self, context: AgentContext, result: AgentResult | None, instruction: str, model: str, *,
                trial: tuple[str, int], execs: int, cancelled: bool, wall_s: float) -> None:
        """Fill the AgentContext and write trajectory.json from trace.jsonl (rule 7)."""
        trace = Path(self.logs_dir) / "trace.jsonl"
        turns = [r for r in read_trace_records(trace) if "turn" in r]
        meta: dict[str, Any] = {
            "stop": result.stop.value if result else ("cancelled" if cancelled else "unknown"),
            "error": result.error if result else None,
            "turns": result.turns if result else len(turns),
            "parse_failures": result.parse_fail if result else sum(
                1 for r in turns if (r.get("parse") or {}).get("status") == "parse_fail"),
            "no_command_replies": result.no_cmd if result else None,
            "cut_offs": result.cut_off if result else sum(1 for r in turns if r.get("finish_reason") == "length"),
            "task": trial[0], "attempt": trial[1],
            "retries": result.retries if result else sum(int(r.get("retries") or 0) for r in turns),
            "context_events": result.context_events if result else None,
            "execs": execs,
            "cancelled": cancelled,
            "agent_s": round(wall_s, 3),
        }
        if result is not None:
            meta["timings"] = {k: round(v, 3) for k, v in result.extra.items()
                               if k.endswith("_s") and isinstance(v, int | float)}
        tokens_in = result.tokens_in if result else sum(int((r.get("usage") or {}).get("prompt_tokens") or 0)
                                                        for r in turns)
        tokens_out = result.tokens_out if result else sum(
            int((r.get("usage") or {}).get("completion_tokens") or 0) for r in turns)
        context.n_input_tokens = tokens_in
        context.n_output_tokens = tokens_out
        context.metadata = {**(context.metadata or {}), "ablbench": meta}
        try:
            write_trajectory(trace, Path(self.logs_dir) / TRAJECTORY_FILE, instruction=instruction,
                             agent_name=self.name(), agent_version=self.version(), model_name=model or None,
                             session_id=Path(self.logs_dir).parent.name)
        except Exception as exc:  # noqa: BLE001 - the trial's result matters more than its export
            self.logger.warning(f"ATIF export failed: {type(exc).__name__}: {exc}")
