"""ablbench's Python API: what the CLI calls, for Python users too.

Rules, in order:

1. ``Job(RunOptions(...)).run() -> RunResult``: one ``ablbench run`` (the run folder, trials per
   outcome, the exit code).
2. ``analyze(runs, AnalyzeOptions(...)) -> Analysis``: one ``ablbench analyze`` (the report, the
   runs read, warnings, the files written).
3. ``Sweep(models, SweepOptions(...)).run() -> int``: serve each model in turn, run it, analyse
   all runs (``scripts/full_bench_parallel.sh``).
4. ``start_server`` / ``stop_server`` serve one model and report it as a ``ServedModel``.
   ``run_evaluation(EvaluationOptions)`` and ``contrast_inputs`` are the abliteration steps that
   need the agent's prompt (the others are ``abliterate``'s own functions over typed options).
5. ``train_sft(SftOptions, log) -> dict``: one ``ablbench sft`` (the sft.json content), the
   agent's own reply format passed to :mod:`sft`, the bundled model when none is named. With
   ``replay`` it first runs the ``replay`` agent over ``tasks`` (the bundled training tasks by
   default) into ``out/replays``, resuming that run, and trains on it as on ``--traces``.
6. Errors a user can fix raise ``ablbench.errors.AblbenchError`` with a one-line message.
   Nothing here parses flags or prints to stdout.

Example (the README's)::

    from harness.api import AnalyzeOptions, Job, RunOptions, analyze
    result = Job(RunOptions(agent="oracle", include=("hello-world",))).run()
    print(analyze([result.out_dir], AnalyzeOptions()).report["runs"][0]["passes"])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ablbench.errors import AblbenchError
from harness.abliteration import contrast_inputs, run_evaluation
from harness.analysis.options import AnalyzeOptions
from harness.analysis.write import Analysis, analyze_paths
from harness.job import Job, RunResult
from harness.run_options import RunOptions
from harness.servers import ServedModel, ServeOptions, start_server, stop_server
from harness.sweep import Sweep, SweepOptions
from sft.run import SftOptions

__all__ = [
    "Analysis",
    "AnalyzeOptions",
    "Job",
    "RunOptions",
    "RunResult",
    "ServeOptions",
    "ServedModel",
    "SftOptions",
    "Sweep",
    "SweepOptions",
    "analyze",
    "contrast_inputs",
    "replay_solutions",
    "run_evaluation",
    "start_server",
    "stop_server",
    "train_sft",
]


def analyze(runs: list[Path | str], options: AnalyzeOptions = AnalyzeOptions()) -> Analysis:
    """Compare ``runs`` (results folders, master_summary.csv files, harbor jobs, tb runs): rule 2."""
    return analyze_paths([Path(r) for r in runs], options)


def train_sft(o: SftOptions, log: Callable[[str], None] = print) -> dict:
    """Fine-tune as ``o`` says (rule 5): the bundled SmolLM2 when ``o.model`` is None; returns sft.json's content."""
    import os

    # before torch loads OpenMP: idle threads sleep instead of spinning on a shared CPU
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from harness.extras import require

    require("sft", "sft")
    from harness.agents.terminus import history_reply
    from sft.run import run_sft

    if o.tasks is not None and not o.replay:
        raise AblbenchError(f"--tasks {o.tasks} gives training data only by replaying its reference solutions: add --replay")
    if o.model is None:
        from harness.embedded_model import materialize

        o = replace(o, model=materialize())
    replay = None
    if o.replay:
        replay = replay_solutions(o.tasks, Path(o.out) / "replays", parallel=o.parallel, quiet=o.quiet, log=log)
        o = replace(o, traces=(*o.traces, Path(replay["run"])))
    return run_sft(o, history_reply=history_reply, log=log, replay=replay)


def replay_solutions(tasks: Path | None, out: Path, *, parallel: int = 2, quiet: bool = False,
                     log: Callable[[str], None] = print) -> dict:
    """Replay each task's reference solution through the agent loop into ``out`` (resumed when it
    holds trials); ``tasks`` None is the bundled training set. Returns the run's description."""
    import time

    from ablbench.paths import TRAIN_TASKS

    tasks = Path(tasks) if tasks is not None else TRAIN_TASKS
    if parallel < 1:
        raise AblbenchError(f"--parallel {parallel}: give at least 1 replay at once")
    t = time.monotonic()
    result = Job(RunOptions(agent="replay", tasks=tasks, out=out, parallel=parallel,
                            resume=(out / "run.json").is_file(), quiet=quiet)).run()
    if result.exit_code != 0:
        raise AblbenchError(f"the replay of {tasks} stopped ({result.interrupted_by or f'exit {result.exit_code}'}); "
                            f"see {out}, and rerun the same command to resume it")
    seconds = round(time.monotonic() - t, 1)
    counts = {k: v for k, v in result.counts.items() if v}
    log(f"replayed the reference solutions of {tasks} in {seconds} s: "
        f"{', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}")
    return {"tasks": str(tasks.resolve()), "run": str(out), "trials": counts, "seconds": seconds}
