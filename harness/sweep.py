"""The sweep: serve each model in turn, run the tasks against it, stop it, and compare the runs.

Rules, in order:

1. ``Sweep(models, SweepOptions).run()`` serves every model (``harness.servers``: a detached
   server named ``fullpar-NAME-PID``), runs one job per model into ``out/NAME`` (the built-in
   ``Job``, or ``scripts/harbor_sweep.sh`` with ``engine="harbor"``) and ends with the analysis
   of all runs in ``out/report.{md,json,html}`` and ``out/plots``. The first model is the
   reference in the comparison.
2. The run settings are a ``RunOptions`` (``SweepOptions.run``): their defaults are its defaults.
   A run folder that holds ``run.json`` is resumed, so rerunning the same sweep continues it.
3. The server reports its URL, model name and context length as data (``ServedModel``); the
   context reaches the agent (llama.cpp does not list it in /v1/models).
4. SIGINT/SIGTERM stop the job running (a harbor child gets the signal once), then the server
   this sweep started is stopped and the sweep returns 130/143 without serving the next model or
   analysing. Whatever happens, no server of this sweep outlives it.
5. ``main(argv)`` is ``scripts/full_bench_parallel.sh``: its flags, its one-line errors (exit 2).
6. Before anything is served, a model fine-tuned by ``ablbench sft`` (or an edit of one) is refused
   when its data came from any of the tasks to evaluate (:mod:`sft.provenance`): training data
   never overlaps evaluation data.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ablbench.errors import AblbenchError
from ablbench.paths import REPO_ROOT
from harness.run_options import RunOptions

CODES = {"SIGINT": 130, "SIGTERM": 143}
HARBOR_AGENTS = ("ablbench", "terminus-2")


@dataclass(frozen=True)
class SweepOptions:
    """How to serve and run each model (``run``: the per-model job's settings, rule 2)."""

    run: RunOptions = field(default_factory=lambda: RunOptions(agent="terminus"))
    out: Path = REPO_ROOT / "results" / "fullpar"
    backend: str | None = None  # None: harness.servers.default_backend per model
    parallel: int | None = None  # None: 6 with a GPU, 2 without
    health_budget: float | None = None
    server_args: tuple[str, ...] = ()
    engine: str = "builtin"  # builtin | harbor
    harbor_agent: str = "ablbench"
    harbor_env: str | None = None


class _Interrupted(Exception):
    def __init__(self, name: str, code: int | None = None) -> None:
        super().__init__(name)
        self.name, self.code = name, code


class Sweep:
    """``Sweep([("base", Path(...)), ("abl", Path(...))], SweepOptions(...)).run()`` -> exit code."""

    def __init__(self, models: list[tuple[str, Path]], options: SweepOptions = SweepOptions()) -> None:
        check_options(models, options)
        self.models, self.options = models, options
        self.caught: str | None = None

    def run(self) -> int:
        """Rule 1; returns 0, the first failing step's code, or 130/143 after a signal (rule 4)."""
        o = self.options
        o.out.mkdir(parents=True, exist_ok=True)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for name, model in self.models:
                code = self._one(name, model)
                if code:
                    return code
            say("== analysis")
            return self._analyze()
        except _Interrupted as stop:
            print(f"full_bench_parallel: interrupted by {stop.name}; stopping; rerun the same command to resume",
                  file=sys.stderr, flush=True)
            return stop.code or CODES[stop.name]
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.caught = self.caught or signal.Signals(signum).name
        raise _Interrupted(self.caught)

    def _one(self, name: str, model: Path) -> int:
        from harness.servers import ServeOptions, make, preflight, resolve_model, start_server, stop_server
        from runners.preflight import errors

        o = self.options
        try:
            resolved, backend, why = resolve_model(model, o.backend)
            say(f"== {name}: serving {model} with {backend} ({why})")
            problems = preflight(resolved, None)
            for problem in problems:
                print(str(problem), file=sys.stderr, flush=True)
            if errors(problems):
                raise AblbenchError(f"{resolved}: {len(errors(problems))} preflight error(s) (see above)")
            serve = ServeOptions(model=resolved, backend=backend, name=f"fullpar-{name}-{os.getpid()}", detach=True,
                                 health_budget=o.health_budget, extra_args=o.server_args)
            server = make(serve, resolved, backend, die_with_parent=True)  # even a second signal's os._exit
            served = start_server(server, resolved, backend, detach=True)
        except AblbenchError as exc:
            print(f"error: {exc}\nfull_bench_parallel: serving {name} failed (exit 1)", file=sys.stderr, flush=True)
            return 1
        try:
            parallel = o.parallel or (6 if _gpu() else 2)
            say(f"== {name}: {served.url} ({served.model}); running tasks with -n {parallel} -k {o.run.attempts}")
            run = dataclasses.replace(o.run, model_url=served.url, model=served.model, parallel=parallel,
                                      out=o.out / name, context_length=o.run.context_length or served.context_length,
                                      resume=(o.out / name / "run.json").is_file())
            code = self._harbor(run) if o.engine == "harbor" else self._job(run)
            if self.caught:
                raise _Interrupted(self.caught, code or None)
            if code:
                print(f"== {name}: the run ended with errors, exit {code} (see {o.out / name})", file=sys.stderr)
            return 0
        finally:
            stop_server(served.name)

    def _job(self, run: RunOptions) -> int:
        from harness.job import Job, print_summary

        try:
            result = Job(run).run()
        except (AblbenchError, OSError) as exc:  # OSError: an unwritable results folder, an engine gone
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        print_summary(result.summary)
        if result.summary.fault is not None:
            print(f"error: {result.summary.fault.line}", file=sys.stderr, flush=True)
        if result.by_signal:
            raise _Interrupted(result.interrupted_by, result.exit_code)
        return result.exit_code

    def _harbor(self, run: RunOptions) -> int:
        o = self.options
        cmd = [str(REPO_ROOT / "scripts" / "harbor_sweep.sh"), "--url", run.model_url, "--model", run.model,
               "--job", str(run.out), "--agent", o.harbor_agent, "-n", str(run.parallel), "-k", str(run.attempts),
               "--max-turns", str(run.max_turns), "--max-tokens", str(run.max_tokens),
               "--temperature", str(run.temperature), "--timeout-multiplier", str(run.timeout_multiplier)]
        cmd += ["--env", o.harbor_env] if o.harbor_env else []
        cmd += ["--tasks", str(run.tasks)] if run.tasks else []
        cmd += [x for g in run.include for x in ("--include", g)] + [x for g in run.exclude for x in ("--exclude", g)]
        return run_child(cmd, self)

    def _analyze(self) -> int:
        from harness.analysis.options import AnalyzeOptions
        from harness.analysis.write import analyze_paths as analyze

        out = self.options.out
        try:
            analyze([out / name for name, _ in self.models], AnalyzeOptions(
                names=",".join(name for name, _ in self.models), markdown_out=out / "report.md",
                json_out=out / "report.json", plots=out / "plots", html_out=out / "report.html"))
        except AblbenchError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        say(f"report: {out}/report.md and {out}/report.html (open it in a browser; every trajectory is one click away)")
        return 0


def run_child(cmd: list[str], sweep: Sweep) -> int:
    """Run ``cmd`` in its own process group; a signal caught meanwhile reaches it exactly once (rule 4)."""
    proc = subprocess.Popen(cmd, process_group=0)
    while True:
        try:
            return proc.wait()
        except _Interrupted as stop:
            if proc.poll() is None:
                proc.send_signal(signal.Signals[stop.name])


def check_options(models: list[tuple[str, Path]], o: SweepOptions) -> None:
    """Rule 5's checks: one-line ``AblbenchError`` for a bad model or engine option."""
    if not models:
        raise AblbenchError("no --model NAME=PATH given -- see --help")
    for name, path in models:
        if not Path(path).exists():
            raise AblbenchError(f"model {path} does not exist -- check --model {name}={path}")
    if o.engine == "builtin":
        if o.harbor_agent != "ablbench" or o.harbor_env:
            raise AblbenchError("--agent and --env need --engine harbor")
    elif o.engine == "harbor":
        for flag, on in (("--offline", o.run.offline), ("--no-network", o.run.no_network)):
            if on:
                raise AblbenchError(f"{flag} is for the builtin engine; under harbor the task's allow_internet "
                                    "and --env decide")
        if o.harbor_agent not in HARBOR_AGENTS:
            raise AblbenchError(f"--agent must be ablbench or terminus-2, got '{o.harbor_agent}'")
    else:
        raise AblbenchError(f"--engine must be builtin or harbor, got '{o.engine}'")
    check_unseen_tasks(models, o.run)


def check_unseen_tasks(models: list[tuple[str, Path]], run: RunOptions) -> None:
    """Rule 6: no model is evaluated on a task its ``ablbench sft`` fine-tuning read."""
    from ablbench.paths import BUNDLED_TASKS
    from harness.tasks import discover_tasks
    from sft.provenance import check_unseen

    evaluated = {t.name for t in discover_tasks(run.tasks or BUNDLED_TASKS, include=run.include, exclude=run.exclude)}
    for name, path in models:
        check_unseen(name, Path(path), evaluated)


def say(text: str) -> None:
    print(text, flush=True)


def _gpu() -> bool:
    from harness.servers import gpu_present

    return gpu_present()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"full_bench_parallel: {message} -- see --help", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    """The flags of ``scripts/full_bench_parallel.sh`` (defaults: ``RunOptions``'s, rule 2)."""
    d = RunOptions()
    p = _Parser(prog="scripts/full_bench_parallel.sh", description=__doc__.split("\n\n")[0],
                epilog="Anything after `--` is passed to the model server (e.g. -- --context-length 32768).")
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="a model to benchmark: an HF folder or a GGUF file (repeat; the first is the reference)")
    p.add_argument("--tasks", type=Path, help="task folder (default: the bundled tasks)")
    p.add_argument("--backend", default="auto", help="sglang | vllm | transformers | llamacpp | auto (default)")
    p.add_argument("-n", "--parallel", type=int, help="trials running at once (default 6 with a GPU, 2 without)")
    p.add_argument("-k", "--attempts", type=int, default=d.attempts, help=f"attempts per task (default {d.attempts})")
    p.add_argument("--max-turns", type=int, default=d.max_turns, help=f"agent turns per trial (default {d.max_turns})")
    p.add_argument("--max-tokens", type=int, default=d.max_tokens, help=f"tokens per reply (default {d.max_tokens})")
    p.add_argument("--temperature", type=float, default=d.temperature, help=f"(default {d.temperature})")
    p.add_argument("--timeout-multiplier", type=float, default=d.timeout_multiplier,
                   help=f"multiply task agent timeouts (default {d.timeout_multiplier})")
    p.add_argument("--structured", action="store_true", help="constrain replies to the action JSON schema")
    p.add_argument("--out", type=Path, default=SweepOptions.out, help="results root; each model's run goes to "
                   "OUT/NAME (default results/fullpar); rerunning with the same OUT resumes")
    p.add_argument("--include", action="append", default=[], help="only tasks matching GLOB (repeatable)")
    p.add_argument("--exclude", action="append", default=[], help="skip tasks matching GLOB (repeatable)")
    p.add_argument("--offline", action="store_true", help="never pull images")
    p.add_argument("--no-network", action="store_true", help="no network in task containers")
    p.add_argument("--health-budget", type=float, help="seconds to wait for a server to become healthy")
    p.add_argument("--engine", default="builtin", help="builtin (default) | harbor (`harbor run`, make setup-harbor)")
    p.add_argument("--agent", default="ablbench", help="with --engine harbor: ablbench (default) | terminus-2")
    p.add_argument("-e", "--env", help="with --engine harbor: docker | modal | daytona | ... | module:Class")
    return p


def main(argv: list[str] | None = None) -> int:
    """``scripts/full_bench_parallel.sh ARGS``: parse, check, sweep (rule 5)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    server_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    a = parser().parse_args(argv)
    models = []
    for spec in a.model:
        name, eq, path = spec.partition("=")
        if not (name and eq):
            return _usage_error(f"--model needs NAME=PATH, got '{spec}'")
        models.append((name, Path(path)))
    run = RunOptions(agent="terminus", tasks=a.tasks, include=tuple(a.include), exclude=tuple(a.exclude),
                     attempts=a.attempts, max_turns=a.max_turns, max_tokens=a.max_tokens, temperature=a.temperature,
                     timeout_multiplier=a.timeout_multiplier, structured=a.structured, offline=a.offline,
                     no_network=a.no_network)
    options = SweepOptions(run=run, out=a.out.resolve(), backend=None if a.backend == "auto" else a.backend,
                           parallel=a.parallel, health_budget=a.health_budget, server_args=tuple(server_args),
                           engine=a.engine, harbor_agent=a.agent, harbor_env=a.env)
    try:
        sweep = Sweep(models, options)
    except AblbenchError as exc:
        return _usage_error(str(exc))
    return sweep.run()


def _usage_error(message: str) -> int:
    print(f"full_bench_parallel: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
