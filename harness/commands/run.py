"""``ablbench run``: run tasks in parallel docker containers with an agent, write results/<run>/."""

from __future__ import annotations

import platform
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import typer

from ablbench.errors import AblbenchError
from harness.agents import AGENT_NAMES
from harness.commands._run_options import RunOptions
from harness.errors import fail

#: agent-settings entries that record a server probe's answer, not a setting: never fingerprinted
PROBED_AGENT_FACTS = frozenset({"seed_supported", "structured_preflight"})


def register(app: typer.Typer) -> None:
    """Add the ``run`` verb."""
    app.command("run")(run_command)


def run_command(
    tasks: Path | None = typer.Option(
        None, "--tasks", help="A task folder or a folder of tasks (default: the bundled tasks)."
    ),
    model_url: str | None = typer.Option(
        None, "--model-url", help="OpenAI-compatible server root, e.g. http://127.0.0.1:8123 (terminus agent only)."
    ),
    model: str | None = typer.Option(None, "--model", help="Model name as served (terminus agent only)."),
    agent: str = typer.Option(
        "terminus", "--agent", help="terminus | oracle | nop | replay (the reference solution through the Terminus loop)."
    ),
    parallel: int = typer.Option(1, "-n", "--parallel", min=1, help="Trials running at once."),
    attempts: int = typer.Option(1, "-k", "--attempts", min=1, help="Attempts per task."),
    include: list[str] = typer.Option([], "--include", help="Only tasks matching this glob (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Skip tasks matching this glob (repeatable)."),
    out: Path | None = typer.Option(None, "--out", help="Results folder (default: results/<timestamp>)."),
    resume: bool = typer.Option(False, "--resume", help="Keep finished trials in --out, rerun the rest."),
    rerun_errors: bool = typer.Option(
        False, "--rerun-errors", help="With --resume: also rerun trials that ended in infra or llm errors."
    ),
    rerun: list[str] = typer.Option(
        [],
        "--rerun",
        help="With --resume: also rerun finished trials with this outcome, e.g. verifier_error (repeatable).",
    ),
    rerun_unscored: bool = typer.Option(
        False, "--rerun-unscored", help="With --resume: rerun every trial the verifier did not score (infra, llm "
        "and verifier errors, agent crashes); keep every scored trial, failed or passed."),
    infra_retries: int = typer.Option(
        1, "--infra-retries", min=0, help="Retries of a trial that hits an infrastructure error."
    ),
    llm_stall_s: float = typer.Option(
        60.0, "--llm-stall-s", min=1.0,
        help="Seconds a model request may go unanswered before the client checks that the server still "
        "answers HTTP; one that does not is hung and the request is retried (a busy server is waited for).",
    ),
    timeout_multiplier: float = typer.Option(
        1.0, "--timeout-multiplier", min=0.01, help="Multiply every task's agent timeout."
    ),
    base_image_map: list[str] = typer.Option(
        [], "--base-image-map", help="FROM=TO: use image TO wherever a task names FROM (repeatable)."
    ),
    offline: bool = typer.Option(
        False,
        "--offline",
        help="Never pull; base images not present locally become the local base image (with a warning).",
    ),
    no_network: bool = typer.Option(
        False, "--no-network", help="No network in task containers, whatever allow_internet says."
    ),
    max_turns: int = typer.Option(20, "--max-turns", min=1, help="Agent turns per trial (terminus)."),
    max_tokens: int = typer.Option(4096, "--max-tokens", min=1, help="Tokens per model reply (terminus)."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, help="Sampling temperature (terminus)."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling (terminus)."),
    seed: int = typer.Option(
        0, "--seed", help="Run seed (terminus): each request's seed derives from it, the task, the attempt and "
        "the turn, so attempts differ and runs of two models share seeds."),
    context_length: int | None = typer.Option(
        None,
        "--context-length",
        min=256,
        help="Model context in tokens (terminus; default: max_model_len from /v1/models).",
    ),
    structured: bool = typer.Option(
        False,
        "--structured",
        help="Constrain replies to the action JSON schema (response_format; the server must honour it: "
        "llama.cpp, sglang, vLLM). Changes what is measured: use it in every arm or none.",
    ),
    grammar_limit: float = typer.Option(
        RunOptions.grammar_limit, "--grammar-limit", min=0.0,
        help="--structured: stop before any trial when the action schema delays the first token of a reply "
        "by more than this many seconds (measured once by the preflight).",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No live progress display."),
) -> None:
    """Run tasks with an agent (N trials in parallel); results go to results/<run>/."""
    opts = RunOptions(
        agent=agent,
        tasks=tasks,
        include=tuple(include),
        exclude=tuple(exclude),
        model_url=model_url,
        model=model,
        attempts=attempts,
        timeout_multiplier=timeout_multiplier,
        base_image_map=tuple(base_image_map),
        offline=offline,
        no_network=no_network,
        max_turns=max_turns,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        context_length=context_length,
        structured=structured,
        grammar_limit=grammar_limit,
        parallel=parallel,
        out=out,
        resume=resume,
        rerun_errors=rerun_errors,
        rerun=tuple(rerun),
        rerun_unscored=rerun_unscored,
        infra_retries=infra_retries,
        llm_stall_s=llm_stall_s,
        quiet=quiet,
    )
    try:
        code = _run(opts)
    except AblbenchError as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:  # the results folder cannot be written, or the engine went away
        from runners.scheduler import ENGINE_ERRORS, UNWRITABLE, engine_fault, unwritable_fault

        if isinstance(exc, ENGINE_ERRORS):
            fault = engine_fault(exc)
        elif exc.errno in UNWRITABLE:
            fault = unwritable_fault(exc, Path(opts.out or "results"))
        else:
            raise fail(f"{type(exc).__name__}: {exc}; finished trials are kept: fix it, then continue "
                       "with --resume") from None
        raise fail(fault.line, code=fault.code) from None
    except KeyboardInterrupt:
        raise fail("interrupted before any trial started", code=130) from None
    if code:
        raise typer.Exit(code)


def _run(o: RunOptions) -> int:
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
    _print_summary(console, summary)
    if summary.fault is not None:  # one line: the cause and the fix (runners.scheduler rule 7)
        again = " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--resume")
        console.print(f"[red]stopped[/]: {len(summary.results)} of {summary.total} trials finished; "
                      f"continue with: ablbench {again} --resume", highlight=False)
        typer.secho(f"error: {summary.fault.line}", err=True, fg=typer.colors.RED)
        return summary.fault.code
    if summary.interrupted:
        sig = state["signal"] or scheduler.stop_reason or "stop"
        again = " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--resume")
        console.print(
            f"[red]interrupted by {sig}[/]: {len(summary.results)} of {summary.total} trials finished; "
            f"partial results kept in {out_dir}; continue with: ablbench {again} --resume"
            + ("" if state["signal"] else " --rerun-errors")
        )
        return {"SIGTERM": 143, "SIGINT": 130}.get(state["signal"], 1)
    typer.echo(str(out_dir))
    return 0


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


def _print_summary(console: Any, summary: Any) -> None:
    from collections import defaultdict

    from rich.table import Table

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
