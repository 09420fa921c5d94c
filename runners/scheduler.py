"""The parallel run: a bounded pool of worker threads over (task, attempt) trials.

Rules, in order:

1. One writer per results folder: the whole run holds ``OUT/.lock`` (``runners.run_lock``);
   a second run on the same folder fails at once, naming the holder.
2. ``--resume`` continues only the same experiment: the run's fingerprint (``RunConfig.
   fingerprint``, built by the CLI) must equal the one in run.json, else the run fails listing
   the differing keys. run.json keeps one entry per invocation (``invocations``).
3. Each trial gets its own folder and container, so attempts never collide. Results are
   written as each trial ends (its result.json, then ``master_summary.csv`` rewritten).
4. Stopping (``request_stop``; the CLI wires SIGINT/SIGTERM to it) stops scheduling, removes
   the running trials' containers, keeps the finished trials and leaves the run resumable.
   Containers are created through a ``CreationGate`` that closes with the stop flag; the final
   sweep first waits for creations in flight, so no container appears after it.
5. Leftover containers of an earlier crashed run of the same results folder are removed at
   start (found by the ``ablbench.results`` label).
6. On resume, finished trials are kept, except those whose outcome is in ``rerun``
   (``--rerun-errors``: infra and LLM errors; ``--rerun OUTCOME``: any outcome, explicitly).
7. A fault of the whole run stops it at once with one line (``RunSummary.fault``, a
   :class:`RunFault` naming the cause, the fix and the exit code): the results folder cannot
   be written (disk full, read-only), the Docker engine stopped answering, or the model server
   ablbench started has died. The trial that met the fault is not kept as finished
   (its result.json says ``finished: false``), so a plain ``--resume`` runs it again.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ablbench.agent_api import Agent, Outcome
from ablbench.records import RunRecord, check_record
from ablbench.results import scan_results, trial_dir, write_json_atomic, write_summary
from ablbench.task_spec import TaskSpec
from runners.environment import CreationGate, sweep_containers
from runners.fingerprint import describe, differences, digest
from runners.images import ImageResolver
from runners.run_lock import RunFolderLock
from runners.trial import Trial, TrialConfig, now_iso

#: outcomes that say nothing about the agent (the progress line counts them as errors)
ERROR_OUTCOMES = frozenset({Outcome.INFRA_ERROR.value, Outcome.LLM_ERROR.value, Outcome.VERIFIER_ERROR.value})
#: what ``--rerun-errors`` reruns: failures of the machinery, never of the agent's environment
#: (a verifier_error can be the agent's doing, e.g. a broken python: rerun it only explicitly)
RERUN_ERRORS = frozenset({Outcome.INFRA_ERROR.value, Outcome.LLM_ERROR.value})


class RunError(RuntimeError):
    """A run cannot start as asked (the message names the fix)."""


#: errno values meaning "the results folder cannot be written"
UNWRITABLE = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO})


@dataclass(frozen=True)
class RunFault:
    """Module rule 7: what stopped the run, as one line, and the exit code the CLI returns."""

    line: str
    code: int


#: what the docker SDK raises when the engine does not answer (requests' errors are OSErrors)
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


def engine_fault(exc: BaseException) -> RunFault:
    """The one line for a Docker engine that stopped answering."""
    return RunFault(f"the Docker engine stopped answering ({type(exc).__name__}); finished trials are kept: "
                    "start it, then continue with --resume", EXIT_ENGINE_LOST)


#: exit codes of ``ablbench run`` (README "Faults and exit codes")
EXIT_RESULTS_UNWRITABLE = 3
EXIT_SERVER_DIED = 4
EXIT_ENGINE_LOST = 5
EXIT_LLM_ERRORS = 6


def unwritable_fault(exc: OSError, out_dir: Path) -> RunFault:
    """The one line for a results folder that cannot be written."""
    where = exc.filename or out_dir
    fix = ("free space there" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
           else "make it writable" if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else "check that disk")
    return RunFault(f"cannot write the results ({exc.strerror or exc}: {where}); finished trials are kept: "
                    f"{fix}, then continue with --resume", EXIT_RESULTS_UNWRITABLE)


@dataclass
class RunConfig:
    """What to run and how."""

    attempts: int = 1
    parallel: int = 1
    resume: bool = False
    rerun_errors: bool = False
    #: outcomes whose finished trials a resume reruns, besides ``RERUN_ERRORS`` with rerun_errors
    rerun: frozenset[str] = frozenset()
    infra_retries: int = 1
    #: stop the run after this many LLM errors in a row (the server is likely down); 0: never
    max_llm_errors_in_row: int = 5
    #: this invocation's provenance (command, versions, ...): one ``invocations`` entry of run.json
    provenance: dict[str, Any] = field(default_factory=dict)
    #: everything that defines the experiment; a resume must match it (empty: not checked)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    #: experiment-level facts for the top of run.json (agent settings, model), kept from the first invocation
    experiment: dict[str, Any] = field(default_factory=dict)
    show_progress: bool = True
    #: after a stop, how long the final sweep waits for container creations in flight
    creation_drain_s: float = 120.0

    def rerun_outcomes(self) -> frozenset[str]:
        """The outcomes of finished trials that a resume runs again."""
        return (RERUN_ERRORS if self.rerun_errors else frozenset()) | self.rerun


@dataclass
class RunSummary:
    """The state of the run when :meth:`Scheduler.run` returns."""

    out_dir: Path
    total: int
    results: dict[tuple[str, int], dict]
    kept: int
    interrupted: bool
    wall_s: float
    removed_leftovers: list[str] = field(default_factory=list)
    #: what stopped the run (module rule 7), None when nothing did
    fault: RunFault | None = None

    @property
    def counts(self) -> Counter:
        """Number of finished trials per outcome."""
        return Counter(r["outcome"] for r in self.results.values())

    @property
    def mean_reward(self) -> float:
        """Mean reward over finished trials (errors count as 0)."""
        rs = [float(r.get("reward") or 0.0) for r in self.results.values()]
        return sum(rs) / len(rs) if rs else 0.0


class Scheduler:
    """Runs every (task, attempt) of a run with at most ``parallel`` trials at a time."""

    #: after a stop request, how long to wait for running trials to wind down
    STOP_GRACE_S = 30.0

    def __init__(
        self,
        client: docker.DockerClient,
        tasks: list[TaskSpec],
        agent_factory: Callable[[], Agent],
        images: ImageResolver,
        trial_config: TrialConfig,
        config: RunConfig,
        console: Console | None = None,
    ) -> None:
        if config.parallel < 1 or config.attempts < 1:
            raise RunError("-n/--parallel and -k/--attempts must be at least 1")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise RunError("two tasks share a name; rename one of them")
        self.client = client
        self.tasks = tasks
        self.agent_factory = agent_factory
        self.images = images
        self.tc = trial_config
        self.config = config
        self.out_dir = trial_config.out_dir
        self.console = console or Console(stderr=True)
        self.stop = threading.Event()
        self.gate = CreationGate(self.stop)
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._running = 0
        self._llm_errors_in_row = 0
        self.results: dict[tuple[str, int], dict] = {}
        self.fault: RunFault | None = None

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop scheduling and abandon running trials (safe from a signal handler)."""
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    def fail_run(self, fault: RunFault) -> None:
        """Module rule 7: remember the first fault and stop the run."""
        with self._lock:
            if self.fault is None:
                self.fault = fault
        self.request_stop(fault.line)

    def results_label(self) -> dict[str, str]:
        """The label every container of this results folder carries."""
        return {"ablbench.results": str(self.out_dir.resolve())}

    # -- planning ------------------------------------------------------------------------
    def plan(self) -> tuple[list[tuple[TaskSpec, int]], dict[tuple[str, int], dict]]:
        """(trials to run, finished trials kept); wipes folders of trials that will be rerun."""
        existing = scan_results(self.out_dir)
        if existing and not self.config.resume:
            raise RunError(
                f"{self.out_dir} already holds {len(existing)} finished trials: pass --resume "
                "to continue that run, or choose another --out"
            )
        wanted = {(t.name, a) for t in self.tasks for a in range(1, self.config.attempts + 1)}
        rerun = self.config.rerun_outcomes()
        kept = {k: r for k, r in existing.items() if k in wanted and r.get("outcome") not in rerun}
        # attempt by attempt; within one, tasks with the longest time budget first (shorter tail)
        longest_first = sorted(self.tasks, key=lambda t: (-t.agent_timeout_s, t.name))
        pending = [(t, a) for a in range(1, self.config.attempts + 1) for t in longest_first if (t.name, a) not in kept]
        for spec, attempt in pending:
            folder = trial_dir(self.out_dir, spec.name, attempt)
            if folder.exists():
                shutil.rmtree(folder)
        return pending, kept

    # -- running -------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run every pending trial under the folder's lock; returns when all are done or the run was stopped."""
        with RunFolderLock(self.out_dir, self.config.provenance.get("command")):
            return self._run_locked()

    def check_fingerprint(self) -> None:
        """On resume, refuse a run whose fingerprint differs from the one in run.json (listing the keys)."""
        if not (self.config.resume and self.config.fingerprint):
            return
        old = self._read_run_json().get("fingerprint")
        if not isinstance(old, dict):
            return  # a fresh folder, or one written before fingerprints existed
        diffs = differences(old, self.config.fingerprint)
        if diffs:
            raise RunError(
                f"{self.out_dir} holds another experiment; differing settings: {describe(diffs)}. "
                "Resume with the same settings, or choose another --out"
            )

    def _run_locked(self) -> RunSummary:
        t0 = time.monotonic()
        self.check_fingerprint()
        leftovers = sweep_containers(self.client, self.results_label())
        if leftovers:
            self.console.print(f"[yellow]removed {len(leftovers)} leftover container(s) of an earlier run[/]")
        pending, kept = self.plan()
        self.results = dict(kept)
        session = {
            "start": now_iso(),
            "end": None,
            "status": "running",
            "planned": len(pending),
            "kept": len(kept),
            "parallel": self.config.parallel,
        }
        self._write_run_json(session)
        write_summary(self.out_dir, list(self.results.values()))

        jobs: queue.Queue[tuple[TaskSpec, int]] = queue.Queue()
        for job in pending:
            jobs.put(job)
        done_q: queue.Queue[dict] = queue.Queue()
        workers = [
            threading.Thread(target=self._worker, args=(jobs, done_q), daemon=True, name=f"worker-{i}")
            for i in range(min(self.config.parallel, max(1, len(pending))))
        ]
        for w in workers:
            w.start()
        self._drive(pending, kept, workers, done_q)

        if self.stop.is_set():
            # let abandoned trials finish removing their containers, then sweep whatever is left
            deadline = time.monotonic() + 5
            for w in workers:
                w.join(max(0.1, deadline - time.monotonic()))
            try:
                self.final_sweep()
            except ENGINE_ERRORS as exc:  # the engine is gone: resume's start-up sweep removes them
                self.console.print(f"[red]could not remove the run's containers ({type(exc).__name__}); "
                                   "--resume removes them once the engine answers[/]")
            while not done_q.empty():  # trials that ended while we were winding down
                late = done_q.get_nowait()
                if late.get("finished"):
                    self.results[(late["task"], int(late["attempt"]))] = late
        interrupted = self.stop.is_set() and len(self.results) < len(kept) + len(pending)
        session.update(
            end=now_iso(),
            status="interrupted" if interrupted else "complete",
            finished=len(self.results),
            outcomes=dict(Counter(r["outcome"] for r in self.results.values())),
        )
        try:
            write_summary(self.out_dir, list(self.results.values()))
            self._write_run_json(session)
        except OSError as exc:  # every finished trial's result.json is on disk: the summary is rebuilt from them
            if self.fault is None:
                self.fault = unwritable_fault(exc, self.out_dir)
            interrupted = True
        return RunSummary(
            self.out_dir,
            len(kept) + len(pending),
            dict(self.results),
            len(kept),
            interrupted,
            time.monotonic() - t0,
            leftovers,
            self.fault,
        )

    def final_sweep(self) -> list[str]:
        """After a stop: wait for container creations in flight (none can start now), then remove all."""
        self.request_stop(self.stop_reason or "stop requested")
        left = self.gate.drain(0)
        if left:
            self.console.print(f"[yellow]waiting for {left} container creation(s) in flight before the sweep[/]")
            left = self.gate.drain(self.config.creation_drain_s)
            if left:
                self.console.print(f"[red]{left} container creation(s) still in flight after "
                                   f"{self.config.creation_drain_s:.0f}s; the docker engine may be stuck[/]")
        return sweep_containers(self.client, self.results_label())

    def _drive(self, pending: list, kept: dict, workers: list[threading.Thread], done_q: queue.Queue) -> None:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.config.show_progress,
            transient=False,
        )
        with progress:
            bar = progress.add_task("trials", total=len(pending), stats=self._stats())
            finished_now = 0
            stopped_at: float | None = None
            while finished_now < len(pending):
                try:
                    result = done_q.get(timeout=0.25)
                except queue.Empty:
                    progress.update(bar, stats=self._stats())
                    if not any(w.is_alive() for w in workers) and done_q.empty():
                        break
                    if self.stop.is_set():
                        stopped_at = stopped_at or time.monotonic()
                        if time.monotonic() - stopped_at > self.STOP_GRACE_S:
                            break  # e.g. an image build that cannot be interrupted: leave it
                    continue
                finished_now += 1
                if not result.get("finished") and not self.stop.is_set():
                    progress.console.print(
                        f"[red]trial {result['task']}/{result['attempt']} did not finish: "
                        f"{escape(str(result.get('error')))}[/]"
                    )
                if result.get("finished"):
                    self.results[(result["task"], int(result["attempt"]))] = result
                    self._watch_llm_errors(result)
                    try:
                        write_summary(self.out_dir, list(self.results.values()))
                    except OSError as exc:
                        self.fail_run(unwritable_fault(exc, self.out_dir))
                    mark = {"passed": "[green]pass[/]", "failed": "[red]fail[/]"}.get(
                        result["outcome"], f"[yellow]{result['outcome']}[/]"
                    )
                    progress.console.print(
                        f"{mark} {result['task']}/{result['attempt']} "
                        f"reward={result['reward']:g} {result['timings']['total']:.1f}s"
                        + (f"  {escape(str(result.get('error'))[:100])}" if result.get("error") else ""),
                        highlight=False,
                    )
                progress.update(bar, advance=1 if result.get("finished") else 0, stats=self._stats())

    def _watch_llm_errors(self, result: dict) -> None:
        limit = self.config.max_llm_errors_in_row
        self._llm_errors_in_row = self._llm_errors_in_row + 1 if result["outcome"] == Outcome.LLM_ERROR else 0
        if limit and self._llm_errors_in_row >= limit and not self.stop.is_set():
            self.fail_run(RunFault(f"{limit} LLM errors in a row, last: {result.get('error')}; check the model "
                                   "server, then continue with --resume --rerun-errors", EXIT_LLM_ERRORS))

    def _stats(self) -> str:
        c = Counter(r["outcome"] for r in self.results.values())
        errors = sum(v for k, v in c.items() if k in ERROR_OUTCOMES)
        other = sum(v for k, v in c.items() if k not in ERROR_OUTCOMES | {"passed"}) - c.get("failed", 0)
        with self._lock:
            running = self._running
        return (
            f"running {running}  [green]passed {c.get('passed', 0)}[/]  [red]failed "
            f"{c.get('failed', 0) + other}[/]  [yellow]errors {errors}[/]"
        )

    def _worker(self, jobs: queue.Queue, done_q: queue.Queue) -> None:
        while not self.stop.is_set():
            try:
                spec, attempt = jobs.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                self._running += 1
            try:
                result = self._run_trial(spec, attempt)
            except ENGINE_ERRORS as exc:
                self.fail_run(engine_fault(exc))
                result = {"task": spec.name, "attempt": attempt, "finished": False,
                          "error": f"{type(exc).__name__}: {exc}"}
            except OSError as exc:
                if exc.errno in UNWRITABLE:
                    self.fail_run(unwritable_fault(exc, self.out_dir))
                result = {"task": spec.name, "attempt": attempt, "finished": False,
                          "error": f"{type(exc).__name__}: {exc}"}
            except Exception as exc:  # noqa: BLE001 - never lose a trial silently
                result = {"task": spec.name, "attempt": attempt, "finished": False, "error": repr(exc)}
            finally:
                with self._lock:
                    self._running -= 1
            done_q.put(result)

    def _run_trial(self, spec: TaskSpec, attempt: int) -> dict:
        """One trial, retried while it ends in an infrastructure error (bounded)."""
        previous: list[str] = []
        for n in range(self.config.infra_retries + 1):
            folder = trial_dir(self.out_dir, spec.name, attempt)
            if folder.exists():
                shutil.rmtree(folder)
            trial = Trial(
                spec,
                attempt,
                self.agent_factory(),
                client=self.client,
                images=self.images,
                config=self.tc,
                stop=self.stop,
                gate=self.gate,
            )
            result = trial.run()
            fault = self._run_level_fault(result)
            if fault is not None:  # not the trial's doing: not kept, a plain --resume runs it again
                result.update(finished=False, interrupted=True, run_fault=fault.line)
                write_json_atomic(folder / "result.json", result)
                self.fail_run(fault)
                return result
            if (
                not (result.get("finished") and result["outcome"] == Outcome.INFRA_ERROR.value)
                or n == self.config.infra_retries
                or self.stop.is_set()
            ):
                break
            previous.append(str(result.get("error")))
            self.console.print(f"[yellow]infra error in {spec.name}/{attempt}, retrying: {result.get('error')}[/]")
        if previous:
            result["infra_retries"] = len(previous)
            result["previous_errors"] = previous
            write_json_atomic(folder / "result.json", result)
        return result

    def _run_level_fault(self, result: dict) -> RunFault | None:
        """Module rule 7: a server that died, or an engine that stopped answering, behind this trial's end."""
        if not result.get("finished"):
            return None
        extra = result.get("agent_extra") or {}
        if extra.get("server_died") and result.get("outcome") != Outcome.PASSED.value:
            return RunFault(str(result.get("error")), EXIT_SERVER_DIED)
        if extra.get("server_died"):  # it passed all the same: kept, but the next trials would meet a dead server
            self.fail_run(RunFault(str(result.get("agent_error")), EXIT_SERVER_DIED))
        if result.get("outcome") == Outcome.INFRA_ERROR.value:
            try:
                self.client.ping()
            except Exception as exc:  # noqa: BLE001 - any failure: the engine is not answering
                return engine_fault(exc)
        return None

    def _read_run_json(self) -> dict:
        try:
            data = json.loads((self.out_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_run_json(self, session: dict) -> None:
        """run.json: the experiment at the top, then one ``invocations`` entry per ``ablbench run``.

        Earlier invocations are kept only on resume (a fresh run of a folder starts a new history).
        """
        old = self._read_run_json() if self.config.resume else {}
        entry = {**self.config.provenance, "pid": os.getpid(), **session}
        invocations = [i for i in old.get("invocations", []) if i.get("start") != session["start"]]
        invocations.append(entry)
        data = {
            **self.config.experiment,
            **{k: v for k, v in old.items() if k in self.config.experiment},  # the first invocation's
            "run_id": self.tc.run_id,
            "out_dir": str(self.out_dir.resolve()),
            "tasks": [t.name for t in self.tasks],
            "attempts": self.config.attempts,
            "timeout_multiplier": self.tc.timeout_multiplier,
            "no_network": self.tc.no_network,
            "fingerprint": self.config.fingerprint or old.get("fingerprint"),
            "fingerprint_digest": digest(self.config.fingerprint) if self.config.fingerprint else None,
            "start": old.get("start") or session["start"],
            "end": session.get("end"),
            "status": session.get("status"),
            "invocations": invocations,
        }
        check_record(RunRecord, json.loads(json.dumps(data, default=str)), self.out_dir / "run.json")
        write_json_atomic(self.out_dir / "run.json", data)


@contextmanager
def stop_on_signals(scheduler: Scheduler, console: Console | None = None) -> Iterator[dict]:
    """SIGINT/SIGTERM -> ``scheduler.request_stop``; a second signal exits at once after a sweep.

    Yields a dict whose ``"signal"`` entry names the signal received (None if none).
    """
    state: dict[str, Any] = {"signal": None}
    console = console or scheduler.console

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if state["signal"] is None:
            state["signal"] = name
            console.print(
                f"[yellow]{name}: stopping (running trials are abandoned, finished ones kept); "
                "send it again to quit at once[/]"
            )
            scheduler.request_stop(name)
            return
        try:
            scheduler.console.print(f"[yellow]{name} again: sweeping containers and quitting[/]")
            scheduler.config.creation_drain_s = min(scheduler.config.creation_drain_s, 20.0)
            scheduler.final_sweep()
        finally:
            os._exit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)
