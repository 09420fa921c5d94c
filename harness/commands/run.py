"""``ablbench run``: run tasks in parallel docker containers with an agent, write results/<run>/."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from ablbench.errors import AblbenchError
from harness.agents import defaults
from harness.errors import fail
from harness.run_options import RunOptions


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
    max_turns: int = typer.Option(defaults.MAX_TURNS, "--max-turns", min=1, help="Agent turns per trial (terminus)."),
    max_tokens: int = typer.Option(defaults.MAX_TOKENS, "--max-tokens", min=1, help="Tokens per model reply (terminus)."),
    temperature: float = typer.Option(defaults.TEMPERATURE, "--temperature", min=0.0, help="Sampling temperature (terminus)."),
    top_p: float = typer.Option(defaults.TOP_P, "--top-p", help="Nucleus sampling (terminus)."),
    seed: int = typer.Option(
        defaults.SEED, "--seed", help="Run seed (terminus): each request's seed derives from it, the task, the attempt and "
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
    from rich.console import Console

    from harness.job import Job, print_summary

    try:
        result = Job(opts).run()
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
    console = Console(stderr=True)
    print_summary(result.summary, console)
    if result.summary.fault is not None:  # one line: the cause and the fix (runners.scheduler rule 7)
        summary = result.summary
        again = " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--resume")
        console.print(f"[red]stopped[/]: {len(summary.results)} of {summary.total} trials finished; "
                      f"continue with: ablbench {again} --resume", highlight=False)
        typer.secho(f"error: {summary.fault.line}", err=True, fg=typer.colors.RED)
        raise typer.Exit(result.exit_code)
    if result.interrupted_by:
        summary = result.summary
        again = " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--resume")
        console.print(
            f"[red]interrupted by {result.interrupted_by}[/]: {len(summary.results)} of {summary.total} trials "
            f"finished; partial results kept in {result.out_dir}; continue with: ablbench {again} --resume"
            + ("" if result.by_signal else " --rerun-errors")
        )
        raise typer.Exit(result.exit_code)
    typer.echo(str(result.out_dir))
