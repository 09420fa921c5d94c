"""Run one job: tasks x attempts with one agent in docker containers, results in one folder.

Rules, in order:

1. ``Job(RunOptions).run()`` is the whole of ``ablbench run`` below its flags: it checks the
   options, discovers the tasks, asks the model server who it is, fingerprints the experiment,
   runs the scheduler and returns a :class:`RunResult`; it prints progress to stderr only.
2. Bad options or an unreachable engine or server raise ``AblbenchError`` before any trial
   starts. SIGINT/SIGTERM stop the run cleanly; the result says so (exit code 130/143).
3. ``experiment_fingerprint`` is what ``--resume`` compares; ``model_identity`` is what the
   server says about the model (GET /v1/models, else a one-token request).
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ablbench.errors import AblbenchError
from harness.agents import AGENT_NAMES
from harness.run_options import RunOptions

#: agent-settings entries that record a server probe's answer, not a setting: never fingerprinted
PROBED_AGENT_FACTS = frozenset({"seed_supported", "structured_preflight"})


@dataclass(frozen=True)
class RunResult:
    """What one job did: its results folder, trials per outcome and the exit code of ``ablbench run``."""

    out_dir: Path
    counts: dict[str, int]
    exit_code: int  # 0 finished; 130/143 stopped by SIGINT/SIGTERM; a fault's own code; 1 stopped otherwise
    interrupted_by: str | None = None  # "SIGTERM", "SIGINT", the scheduler's stop reason, or None
    by_signal: bool = False
    summary: Any = None  # runners.scheduler.RunSummary: per-trial records, wall time, mean reward


class Job:
    """One ``ablbench run``: ``Job(RunOptions(...)).run()``."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    def run(self) -> RunResult:
        """Run every pending trial (rule 1); raises ``AblbenchError`` on bad input (rule 2)."""
        return _run(self.options)


def _run(o: RunOptions) -> RunResult:
    import docker
    from rich.console import Console

    from ablbench.paths import BASE_IMAGE, BUNDLED_TASKS, RESULTS_ROOT
    from ablbench.results import scan_results
    from harness.identity import harness_identity
    from harness.tasks import discover_tasks
    from runners.images import ImageOptions, ImageResolver, parse_image_map
    from runners.runtime_image import AGENT_TOOLS
    from runners.scheduler import RunConfig, RunError, Scheduler, stop_on_signals
    from runners.trial import TrialConfig

    console = Console(stderr=True)
    if o.agent not in AGENT_NAMES:
        raise AblbenchError(f"--agent {o.agent!r} is unknown; use one of {', '.join(AGENT_NAMES)}")
    if o.resume and o.out is None:
        raise AblbenchError("--resume needs --out pointing at the results folder of the run to continue")
    _check_rerun(o)
    try:
        image_map = parse_image_map(o.base_image_map)
    except ValueError as exc:
        raise AblbenchError(str(exc)) from None
    specs = discover_tasks(o.tasks or BUNDLED_TASKS, include=o.include, exclude=o.exclude)
    if not specs:
        raise AblbenchError("no task matches --include/--exclude; run `ablbench tasks list` to see the names")

    out_dir = (o.out or RESULTS_ROOT / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")).resolve()
    run_id = re.sub(r"[^a-zA-Z0-9_.-]+", "-", out_dir.name)[:60] or "run"
    if scan_results(out_dir) and not o.resume:
        raise AblbenchError(
            f"{out_dir} already holds finished trials: pass --resume to continue that run, or choose another --out"
        )
    agent_factory, agent_settings, identity = _agent(o, lambda m: console.print(f"[yellow]warning: {m}[/]"),
                                                     say=console.print)
    try:
        client = docker.from_env(timeout=600, max_pool_size=max(10, 3 * o.parallel))
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        raise AblbenchError(f"cannot reach the Docker engine ({exc}); start docker or set DOCKER_HOST") from None

    provenance = {
        "command": sys.argv,
        "tasks_root": str((o.tasks or BUNDLED_TASKS).resolve()),
        "agent": agent_settings,
        "structured": bool(agent_settings.get("response_format")),
        "model": identity,
        "git": _git(),
        "versions": _versions(client),
        "options": o.as_dict(),
    }
    images = ImageResolver(
        client,
        ImageOptions(
            base_image_map=image_map,
            offline=o.offline,
            fallback_image=BASE_IMAGE,
            warn=lambda m: console.print(f"[yellow]warning: {m}[/]"),
            # the terminus agent drives tmux: images without it get a cached derived image (issue 12)
            runtime_tools=AGENT_TOOLS if o.agent in ("terminus", "replay") else (),
        ),
    )
    trial_config = TrialConfig(
        run_id=run_id, out_dir=out_dir, timeout_multiplier=o.timeout_multiplier, no_network=o.no_network
    )
    config = RunConfig(
        attempts=o.attempts,
        parallel=o.parallel,
        resume=o.resume,
        rerun_errors=o.rerun_errors,
        rerun=frozenset(o.rerun),
        rerun_unscored=o.rerun_unscored,
        infra_retries=o.infra_retries,
        provenance=provenance,
        fingerprint=experiment_fingerprint(o, specs, agent_settings, identity, trial_config),
        experiment={"agent": agent_settings, "model": identity, "tasks_root": provenance["tasks_root"],
                    "structured": provenance["structured"],
                    # what of ablbench itself can move a score: `analyze` pairs only equal ones
                    "harness": harness_identity(agent_settings, o.timeout_multiplier,
                                                provenance["versions"]["ablbench"], provenance["git"])},
        show_progress=not o.quiet,
    )
    try:
        scheduler = Scheduler(client, specs, agent_factory, images, trial_config, config, console=console)
        console.print(
            f"ablbench run: {len(specs)} task(s) x {o.attempts} attempt(s), agent {o.agent}, "
            f"-n {o.parallel} -> {out_dir}"
        )
        with stop_on_signals(scheduler, console) as state:
            summary = scheduler.run()
    except RunError as exc:
        raise AblbenchError(str(exc)) from None
    code, sig = 0, None
    if summary.fault is not None:  # the cause and the fix: summary.fault.line (runners.scheduler rule 7)
        code = summary.fault.code
    elif summary.interrupted:
        sig = state["signal"] or scheduler.stop_reason or "stop"
        code = {"SIGTERM": 143, "SIGINT": 130}.get(state["signal"], 1)
    return RunResult(out_dir=out_dir, counts=dict(summary.counts), exit_code=code, interrupted_by=sig,
                     by_signal=bool(state["signal"]), summary=summary)


def _agent(o: RunOptions, warn: Any, say: Any = print) -> tuple[Any, dict, dict | None]:
    """(factory of a fresh agent per trial, agent settings for run.json, model identity)."""
    from harness.agents.simple import NopAgent, OracleAgent

    if o.agent == "oracle":
        return OracleAgent, {"name": "oracle"}, None
    if o.agent == "nop":
        return NopAgent, {"name": "nop"}, None
    if o.agent == "replay":
        from harness.agents.replay import STEP_DURATION_S, ReplayAgent

        return ReplayAgent, {"name": "replay", "step_duration_s": STEP_DURATION_S}, None
    if not o.model_url or not o.model:
        raise AblbenchError("--agent terminus needs --model-url and --model (start a server with `ablbench serve`)")
    from dataclasses import asdict

    from harness.agents.terminus import AgentConfig, TerminusAgent
    from harness.llm_client import LLMClient

    identity = model_identity(o.model_url, o.model, warn)
    served_len = (identity.get("server_entry") or {}).get("max_model_len")
    if not served_len and Path(o.model).is_dir():
        # transformers serve names the model by its folder and reports no context length
        from runners.servers.process import config_context_length

        served_len = config_context_length(Path(o.model))
    # seeds (issue 12): does the server take `seed`? One 1-token request; run.json records the answer
    seed_ok = LLMClient(o.model_url, o.model, max_retries=1).probe_seed()
    if seed_ok is False:
        warn(f"{o.model_url} rejects the `seed` field: requests are sent without it (run.json says so)")
    cfg = AgentConfig(
        send_seed=seed_ok is not False,
        max_turns=o.max_turns,
        max_tokens=o.max_tokens,
        temperature=o.temperature,
        top_p=o.top_p,
        seed=o.seed,
        context_length=o.context_length or (int(served_len) if served_len else None),
    )
    probed: dict[str, Any] = {}
    if o.structured:  # --structured: the server must honour the run's own action schema, cheaply (preflight)
        from harness.action_schema import action_schema, bounds_for, response_format
        from harness.structured_check import check_structured

        schema = action_schema(bounds_for(o.max_tokens))
        found = check_structured(o.model_url, o.model, schema, grammar_limit_s=o.grammar_limit)
        say(found.summary())
        cfg.response_format = response_format(schema, found.style)
        probed["structured_preflight"] = {"style": found.style, "ttft_s": round(found.ttft_s, 3),
                                          "plain_ttft_s": round(found.plain_ttft_s, 3),
                                          "grammar_s": round(found.grammar_s, 3)}

    def factory() -> Any:
        return TerminusAgent(LLMClient(o.model_url, o.model, stall_s=o.llm_stall_s), cfg)

    from harness.seeds import SEED_RULE

    settings = {"name": "terminus", **asdict(cfg), "seed_rule": SEED_RULE, "seed_supported": seed_ok, **probed}
    return factory, settings, identity


def _check_rerun(o: RunOptions) -> None:
    from ablbench.agent_api import Outcome

    known = {x.value for x in Outcome}
    unknown = [x for x in o.rerun if x not in known]
    if unknown:
        raise AblbenchError(f"--rerun {unknown[0]!r} is not an outcome; use one of {', '.join(sorted(known))}")
    if (o.rerun or o.rerun_errors or o.rerun_unscored) and not o.resume:
        raise AblbenchError("--rerun/--rerun-errors/--rerun-unscored only make sense with --resume (they pick trials "
                            "to run again)")
    from runners.scheduler import SCORED_OUTCOMES

    scored = sorted(set(o.rerun) & SCORED_OUTCOMES)
    if o.rerun_unscored and scored:
        raise AblbenchError(f"--rerun-unscored keeps every scored trial, but --rerun {scored[0]} reruns scored ones; "
                            "drop one of the two")


def experiment_fingerprint(
    o: RunOptions, specs: list, agent_settings: dict, identity: dict | None, trial_config: Any
) -> dict[str, Any]:
    """Everything that defines the experiment; ``--resume`` refuses a run whose fingerprint differs.

    The options whose role is ``experiment``, the agent's full settings, the served model's
    identity (not its URL: a restarted server gets another port), every task's name and content
    hash, the local fallback image and the trial limits.
    """
    from ablbench.paths import BASE_IMAGE
    from harness.task_versions import task_hash

    entry = (identity or {}).get("server_entry") or {}
    model = {"name": identity.get("model"), "root": entry.get("root")} if identity else {}
    return {
        "options": o.with_role("experiment"),
        # not what the server happened to answer to a probe (a busy server can time out on it)
        "agent": {k: v for k, v in agent_settings.items() if k not in PROBED_AGENT_FACTS},
        "model": model,
        "tasks": {spec.name: task_hash(spec) for spec in specs},
        "images": {"fallback_image": BASE_IMAGE},
        "trial": {"agent_grace_s": trial_config.agent_grace_s, "pids_limit": trial_config.pids_limit},
    }


def model_identity(base_url: str, model: str, warn: Any = None) -> dict:
    """What the server says about ``model`` (GET /v1/models).

    An unreachable server is an error. A server that cannot list its models, or does not
    list ``model`` (``transformers serve`` lists its hub cache, not the pinned model), gets a
    one-token chat request instead: if that fails too, ``model`` is not served.
    """
    import httpx

    root = base_url.rstrip("/")
    identity: dict[str, Any] = {"base_url": base_url, "model": model}
    try:
        resp = httpx.get(root + "/v1/models", timeout=15)
    except httpx.HTTPError as exc:
        raise AblbenchError(
            f"cannot reach the model server at {base_url} ({exc}); start one with `ablbench serve` or fix --model-url"
        ) from None
    entries: list = []
    try:
        resp.raise_for_status()
        entries = [e for e in (resp.json().get("data") or []) if isinstance(e, dict)]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        identity["models_error"] = str(exc).splitlines()[0]
    identity["served_ids"] = [str(e.get("id")) for e in entries]
    match = next((e for e in entries if e.get("id") == model), None)
    if match is not None:
        identity["server_entry"] = match
        return identity
    try:
        probe = httpx.post(
            root + "/v1/chat/completions",
            timeout=120,
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        )
        probe.raise_for_status()
        identity["probe"] = {"model": probe.json().get("model")}
    except (httpx.HTTPError, ValueError) as exc:
        served = ", ".join(identity["served_ids"]) or "none listed"
        raise AblbenchError(
            f"model {model!r} is not served at {base_url} (served: {served}; a test request "
            f"failed: {str(exc).splitlines()[0]}); pass the served name to --model"
        ) from None
    if warn is not None:
        warn(f"/v1/models at {base_url} does not list {model!r}, but a test request succeeded")
    return identity


def _git() -> dict:
    from ablbench.paths import REPO_ROOT

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain")
    return {"sha": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def _versions(client: Any) -> dict:
    def dist(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    try:
        engine = client.version().get("Version")
    except Exception:  # noqa: BLE001
        engine = None
    return {
        "ablbench": dist("ablbench"),
        "python": platform.python_version(),
        "docker_sdk": dist("docker"),
        "docker_engine": engine,
        "platform": platform.platform(),
    }


def print_summary(summary: Any, console: Any = None) -> None:
    """The per-task table and the totals of one job's ``RunResult.summary`` (stderr unless ``console``)."""
    from collections import defaultdict

    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)

    per_task: dict[str, list[dict]] = defaultdict(list)
    for (task, _a), r in sorted(summary.results.items()):
        per_task[task].append(r)
    table = Table(title=f"ablbench run: {summary.out_dir.name}")
    for col in ("task", "trials", "passed", "mean reward", "outcomes"):
        table.add_column(col)
    for task, rs in per_task.items():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(_count(r["outcome"] for r in rs).items()))
        table.add_row(
            task,
            str(len(rs)),
            str(sum(r["outcome"] == "passed" for r in rs)),
            f"{sum(float(r['reward']) for r in rs) / len(rs):.2f}",
            outcomes,
        )
    console.print(table)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
    console.print(
        f"{len(summary.results)}/{summary.total} trials finished ({summary.kept} kept from before) "
        f"in {summary.wall_s:.1f}s; mean reward {summary.mean_reward:.3f}; {counts}"
    )
    rescued = sum(r["outcome"] == "passed" and bool(r.get("agent_error")) for r in summary.results.values())
    if rescued:  # counted apart: the final state passed, but the agent had failed (issue 27)
        console.print(f"{rescued} of the passed trials passed although the agent ended in an error "
                      "(master_summary.csv: agent_error)")
    console.print(f"results: {summary.out_dir}")


def _count(items: Any) -> dict:
    from collections import Counter

    return dict(Counter(items))
