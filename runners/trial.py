"""One trial: image -> container -> agent (under its deadline) -> verifier -> reward -> outcome.

The verifier always runs once the container is up, even after an agent timeout. Before it
runs, the agent is ended for good (``runners.agent_guard``: its docker access revoked, its
in-flight exec commands killed) and every process still alive is recorded in result.json
(``procs_before_verifier``; ``leftover_procs`` counts the ones the agent left). The reward comes
from ``reward.json`` only when the task's tests mention that file, else from ``reward.txt``
(a reward.json the tests never write was planted: warned about and ignored). The trial
folder ``<out>/<task>/<attempt>/`` receives ``trace.jsonl`` (the agent's), ``runner.stdout``
(this trial's log, build output included), ``verifier.log`` (the tests' output),
``verifier/`` (the other files the tests left in /logs/verifier), ``agent/trajectory.json`` (the
trace in ATIF, ``ablbench.atif``), ``reward.txt`` and, last, ``result.json``. The container is removed whatever happens.
Processes the kernel OOM-killed in the container are counted (``oom_kills``) and named in the
error of a trial that did not pass. A failed write to the results folder (disk full, read-only)
is raised once the container is gone, never recorded as the trial's outcome.
"""

from __future__ import annotations

import errno
import json
import secrets
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import docker

from ablbench.agent_api import Agent, AgentResult, AgentStop, Outcome
from ablbench.atif import TRAJECTORY_FILE, write_trajectory
from ablbench.results import write_result, write_text_atomic
from ablbench.task_spec import TaskSpec
from runners.agent_guard import end_agent_commands, revocable_container
from runners.environment import (
    ContainerError,
    CreationGate,
    EnvironmentSpec,
    TaskEnvironment,
    container_name,
    tar_of,
)
from runners.images import ImageError, ImageResolver

VERIFIER_DIR = "/logs/verifier"
TESTS_DIR = "/tests"


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class TrialConfig:
    """Run-wide settings every trial shares."""

    run_id: str
    out_dir: Path
    timeout_multiplier: float = 1.0
    no_network: bool = False
    agent_grace_s: float = 30.0
    pids_limit: int = 4096
    labels: dict[str, str] = field(default_factory=dict)

    def run_labels(self) -> dict[str, str]:
        """Labels that identify this run's containers (used for sweeping leftovers)."""
        return {"ablbench.run": self.run_id, "ablbench.results": str(self.out_dir.resolve()), **self.labels}


@dataclass
class VerifierResult:
    """What the verifier produced."""

    exit_code: int | None = None
    timed_out: bool = False
    reward: float | None = None
    reward_source: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


class TrialInterrupted(Exception):
    """The run is stopping (Ctrl-C / SIGTERM): the trial is abandoned, not finished."""


def parse_reward(files: dict[str, bytes], json_allowed: bool = True) -> tuple[float | None, str | None, str | None]:
    """(reward, source file, error) from /logs/verifier's files: reward.json first (when
    ``json_allowed``: the task's tests write it), else reward.txt."""
    if json_allowed and "reward.json" in files:
        try:
            data = json.loads(files["reward.json"].decode("utf-8", "replace"))
        except ValueError as exc:
            return None, "reward.json", f"reward.json is not JSON: {exc}"
        if isinstance(data, dict) and "reward" in data:
            value = data["reward"]
        elif isinstance(data, dict) and len(data) == 1:
            value = next(iter(data.values()))
        elif isinstance(data, int | float) and not isinstance(data, bool):
            value = data
        else:
            return None, "reward.json", "reward.json has no 'reward' key and not exactly one value"
        try:
            return float(value), "reward.json", None
        except (TypeError, ValueError):
            return None, "reward.json", f"reward.json value {value!r} is not a number"
    if "reward.txt" in files:
        text = files["reward.txt"].decode("utf-8", "replace").strip()
        try:
            return float(text), "reward.txt", None
        except ValueError:
            return None, "reward.txt", f"reward.txt holds {text[:40]!r}, not a number"
    return None, None, "verifier wrote no reward (/logs/verifier/reward.json or reward.txt)"


def tests_mention(needle: bytes, *paths: Path) -> bool:
    """True when any file in ``paths`` (files or folders, searched recursively) contains ``needle``."""
    for root in paths:
        for path in [root] if root.is_file() else root.rglob("*"):
            try:
                if path.is_file() and path.stat().st_size < 5_000_000 and needle in path.read_bytes():
                    return True
            except OSError:
                continue
    return False


def tests_use_ctrf(tests_dir: Path) -> bool:
    """True when any file of the tests mentions ``ctrf`` (TB2 verifiers that write ctrf.json)."""
    return tests_mention(b"ctrf", tests_dir)


def classify(
    agent: AgentResult | None, verifier: VerifierResult | None, infra_error: str | None
) -> tuple[Outcome, str | None]:
    """The trial's Outcome and error text.

    A reward of 1 is a pass whatever the agent reported (TB2 scores the final state); when the
    agent had ended in an error the error text says so (result.json's ``agent_error`` holds it).
    Otherwise: infrastructure > LLM > verifier problems > the agent's own stop reason.
    """
    if infra_error is not None:
        return Outcome.INFRA_ERROR, infra_error
    if verifier is not None and verifier.error is None and verifier.reward is not None and verifier.reward >= 1.0:
        if agent is not None and agent.stop in (AgentStop.ERROR, AgentStop.LLM_ERROR):
            return Outcome.PASSED, f"passed although the agent ended in an error: {agent.error or agent.stop.value}"
        return Outcome.PASSED, None
    if agent is not None and agent.stop is AgentStop.ERROR:
        return Outcome.INFRA_ERROR, agent.error or "agent raised an exception"
    if agent is not None and agent.stop is AgentStop.LLM_ERROR:
        return Outcome.LLM_ERROR, agent.error or "LLM request failed"
    if verifier is None:
        return Outcome.INFRA_ERROR, "verifier did not run"
    if verifier.error is not None:
        return Outcome.VERIFIER_ERROR, verifier.error
    by_stop = {
        AgentStop.TIMEOUT: Outcome.AGENT_TIMEOUT,
        AgentStop.CONTEXT_EXCEEDED: Outcome.CONTEXT_EXCEEDED,
        AgentStop.PARSE_FAIL_EXHAUSTED: Outcome.PARSE_FAIL_EXHAUSTED,
    }
    if agent is not None and agent.stop in by_stop:
        return by_stop[agent.stop], agent.error
    return Outcome.FAILED, None


class Trial:
    """Runs one (task, attempt) and writes its folder."""

    def __init__(
        self,
        spec: TaskSpec,
        attempt: int,
        agent: Agent,
        *,
        client: docker.DockerClient,
        images: ImageResolver,
        config: TrialConfig,
        stop: threading.Event | None = None,
        gate: CreationGate | None = None,
    ) -> None:
        self.spec = spec
        self.attempt = attempt
        self.agent = agent.for_task(spec) if hasattr(agent, "for_task") else agent
        if hasattr(self.agent, "for_trial"):  # per-attempt state, e.g. sampling seeds (issue 12)
            self.agent = self.agent.for_trial(spec.name, attempt)
        self.client = client
        self.images = images
        self.config = config
        self.stop = stop or threading.Event()
        self.gate = gate
        #: set once the agent is ended: its docker client refuses every call from then on
        self.agent_revoked = threading.Event()
        self.dir = config.out_dir / spec.name / str(attempt)
        self.env: TaskEnvironment | None = None
        self._log_fh = None
        #: finer timings (image, container_start, verifier_setup, verifier_run, verifier_collect, teardown)
        self.phases: dict[str, float] = {}
        #: the first failed write to the results folder (disk full, read-only): raised at the end
        self.write_fault: OSError | None = None

    # -- logging -------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """Append a timestamped line to runner.stdout."""
        if self._log_fh is not None and self.write_fault is None:
            stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
            try:
                self._log_fh.write(f"[{stamp}] {message}\n")
                self._log_fh.flush()
            except OSError as exc:  # disk full / read-only: the trial ends, then run() raises it
                self.write_fault = exc

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise TrialInterrupted("run interrupted")

    # -- the lifecycle -------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run the trial; returns the result.json content (``finished`` False if interrupted)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        timings = {"env_setup": 0.0, "agent": 0.0, "verifier": 0.0, "total": 0.0}
        result: dict[str, Any] = {
            "task": self.spec.name,
            "attempt": self.attempt,
            "finished": False,
            "interrupted": False,
            "agent": getattr(self.agent, "name", type(self.agent).__name__),
            "started_at": now_iso(),
        }
        agent_res: AgentResult | None = None
        verifier: VerifierResult | None = None
        infra: str | None = None
        exception: dict | None = None
        with (self.dir / "runner.stdout").open("a", encoding="utf-8") as self._log_fh:
            self.log(f"trial {self.spec.name} attempt {self.attempt} ({self.spec.path})")
            try:
                t = time.monotonic()
                self._check_stop()
                image = self.images.resolve(self.spec, self.log)
                result["image"] = image
                self.phases["image"] = time.monotonic() - t
                self._check_stop()
                self._start_env(image)
                result["container"] = self.env.spec.name if self.env else None
                timings["env_setup"] = time.monotonic() - t
                self.phases["container_start"] = timings["env_setup"] - self.phases["image"]
                self.log(f"container {result['container']} up in {timings['env_setup']:.2f}s")

                t = time.monotonic()
                agent_res = self._run_agent()
                timings["agent"] = time.monotonic() - t
                self.log(
                    f"agent stopped: {agent_res.stop} after {timings['agent']:.2f}s"
                    + (f" ({agent_res.error})" if agent_res.error else "")
                )
                self._check_stop()
                result.update(self._end_agent())

                t = time.monotonic()
                verifier = self._verify()
                timings["verifier"] = time.monotonic() - t
                result["oom_kills"] = self._oom_kills()
                self.log(
                    f"verifier: exit={verifier.exit_code} timed_out={verifier.timed_out} "
                    f"reward={verifier.reward} error={verifier.error}"
                )
                self._check_stop()
            except TrialInterrupted:
                result["interrupted"] = True
                infra = "interrupted (Ctrl-C/SIGTERM); --resume reruns this trial"
                self.log("interrupted: trial abandoned (it will be rerun by --resume)")
            except (ImageError, ContainerError, docker.errors.DockerException) as exc:
                if self.stop.is_set():
                    result["interrupted"] = True
                    infra = "interrupted (Ctrl-C/SIGTERM); --resume reruns this trial"
                    self.log(f"interrupted ({type(exc).__name__}: {exc})")
                else:
                    infra = f"{type(exc).__name__}: {exc}"
                    exception = _exc_info(exc)
                    self.log(f"infrastructure error: {infra}")
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):  # the results disk, not the trial
                    self.write_fault = self.write_fault or exc
                infra = f"{type(exc).__name__}: {exc}"
                exception = _exc_info(exc)
            except Exception as exc:  # noqa: BLE001 - a runner bug must not kill the run
                infra = f"{type(exc).__name__}: {exc}"
                exception = _exc_info(exc)
                self.log(f"unexpected error: {traceback.format_exc()}")
            finally:
                self.agent_revoked.set()
                t = time.monotonic()
                self._remove_env()
                self.phases["teardown"] = time.monotonic() - t
            timings["total"] = time.monotonic() - t0
            outcome, error = classify(agent_res, verifier, infra)
            if result.get("oom_kills") and outcome is not Outcome.PASSED:
                error = (f"{result['oom_kills']} process(es) in the task container were OOM-killed (memory limit "
                         f"{self.spec.memory_mb} MB): raise the task's memory or use less"
                         + (f"; {error}" if error else ""))
            reward = verifier.reward if verifier is not None and verifier.reward is not None else 0.0
            result.update(
                {
                    "finished": not result["interrupted"],
                    "reward": reward,
                    "outcome": outcome.value,
                    "error": error,
                    "agent_stop": agent_res.stop.value if agent_res else None,
                    # the agent's own fault, whatever the outcome (a pass after a crash counts apart)
                    "agent_error": agent_res.error if agent_res and agent_res.stop in (
                        AgentStop.ERROR, AgentStop.LLM_ERROR) else None,
                    "counters": _counters(agent_res),
                    "agent_extra": agent_res.extra if agent_res else {},
                    "verifier": asdict(verifier) if verifier else None,
                    "timings": {k: round(v, 3) for k, v in timings.items()},
                    "phases": {k: round(v, 3) for k, v in self.phases.items()},
                    "ended_at": now_iso(),
                    "exception": exception,
                }
            )
            self.log(f"outcome {outcome.value} reward {reward} total {timings['total']:.2f}s")
            self._export_trajectory(str(result["agent"]))
        self._log_fh = None
        if self.write_fault is not None:  # the container is gone; a record written now could not be trusted
            raise self.write_fault
        trace = self.dir / "trace.jsonl"
        if not trace.exists():
            trace.touch()
        if not (self.dir / "verifier.log").exists():
            write_text_atomic(self.dir / "verifier.log", "[ablbench] the verifier did not run\n")
        write_text_atomic(self.dir / "reward.txt", f"{reward:g}\n")
        write_result(self.dir, result)
        return result

    def _export_trajectory(self, agent_name: str) -> None:
        """``agent/trajectory.json``: the agent's trace in ATIF, for harbor's viewer and other ATIF tools."""
        try:
            write_trajectory(self.dir / "trace.jsonl", self.dir / "agent" / TRAJECTORY_FILE,
                             instruction=self.spec.instruction, agent_name=agent_name,
                             session_id=f"{self.config.run_id}/{self.spec.name}/{self.attempt}")
        except Exception as exc:  # noqa: BLE001 - an export problem must not fail the trial
            self.log(f"WARNING: ATIF export failed: {type(exc).__name__}: {exc}")

    def _start_env(self, image: str) -> None:
        s = self.spec
        labels = {**self.config.run_labels(), "ablbench.task": s.name, "ablbench.attempt": str(self.attempt)}
        network = s.allow_internet and not self.config.no_network
        self.env = TaskEnvironment(
            self.client,
            EnvironmentSpec(
                image=image,
                name=container_name(self.config.run_id, s.name, self.attempt),
                labels=labels,
                cpus=s.cpus,
                memory_mb=s.memory_mb,
                network=network,
                pids_limit=self.config.pids_limit,
            ),
            gate=self.gate,
        )
        self.log(
            f"starting container {self.env.spec.name} (network={'on' if network else 'none'}, "
            f"cpus={s.cpus}, memory_mb={s.memory_mb})"
        )
        if s.storage_mb:
            self.log(f"note: storage limit {s.storage_mb} MB is not enforced (needs an xfs/pquota docker root)")
        if s.metadata.get("gpus"):
            self.log(f"WARNING: the task asks for {s.metadata['gpus']} GPU(s); task containers get none")
        self.env.start()
        self._check_stop()

    def _remove_env(self) -> None:
        if self.env is None:
            return
        try:
            self.env.remove()
            self.log(f"container {self.env.spec.name} removed")
        except Exception as exc:  # noqa: BLE001 - the run-level sweep removes it by label
            self.log(f"WARNING: removing container failed: {exc}")

    def _run_agent(self) -> AgentResult:
        """Run the agent in a thread; abandon it if it overruns its deadline by the grace period."""
        assert self.env is not None and self.env.container is not None
        budget = self.spec.agent_timeout_s * self.config.timeout_multiplier
        deadline = time.monotonic() + budget
        box: dict[str, Any] = {}
        container, self.agent_revoked = revocable_container(self.env.container)
        agent_env = TaskEnvironment.attach(container)

        def target() -> None:
            try:
                box["res"] = self.agent.run(agent_env, self.spec.instruction, self.dir, deadline, self.spec.path)
            except BaseException as exc:  # noqa: BLE001 - reported as an agent error
                box["exc"] = exc
                box["tb"] = traceback.format_exc()

        self.log(f"agent {getattr(self.agent, 'name', '?')} starts (timeout {budget:.1f}s)")
        worker = threading.Thread(target=target, daemon=True, name=f"agent-{self.spec.name}-{self.attempt}")
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
            if self.stop.is_set():
                self.env.remove()  # makes the agent's next docker call fail; it is abandoned
                worker.join(5)
                raise TrialInterrupted("run interrupted during the agent phase")
            if time.monotonic() > deadline + self.config.agent_grace_s:
                self.log(f"agent overran its deadline by {self.config.agent_grace_s:.0f}s: abandoned")
                return AgentResult(
                    stop=AgentStop.TIMEOUT,
                    error=f"agent timed out after {budget:.0f}s and ignored the deadline; abandoned",
                )
        if "exc" in box:
            self.log(f"agent raised:\n{box['tb']}")
            exc = box["exc"]
            return AgentResult(stop=AgentStop.ERROR, error=f"agent raised {type(exc).__name__}: {exc}")
        res: AgentResult = box["res"]
        if res.stop in (AgentStop.COMPLETED, AgentStop.MAX_TURNS) and time.monotonic() > deadline + 1.0:
            res.stop = AgentStop.TIMEOUT
            res.error = res.error or f"agent returned after its {budget:.0f}s deadline"
        elif res.stop is AgentStop.TIMEOUT and not res.error:
            res.error = f"agent timed out after {budget:.0f}s"
        return res

    def _end_agent(self) -> dict[str, Any]:
        """End the agent for good (``runners.agent_guard``) and record the processes it left."""
        assert self.env is not None
        self.agent_revoked.set()
        t = time.monotonic()
        killed, procs = end_agent_commands(self.env)
        self.phases["end_agent"] = time.monotonic() - t
        left = [p for p in procs if p["kind"] == "agent"]
        if killed:
            self.log(f"killed the agent's exec commands still running: pids {killed}")
        for p in left:
            self.log(f"left running by the agent: pid {p['pid']}: {p['cmdline'][:200]}")
        return {"agent_commands_killed": killed, "procs_before_verifier": procs, "leftover_procs": len(left)}

    def _verify(self) -> VerifierResult:
        """Empty /logs/verifier, copy the tests in, run the test script, read the reward."""
        env = self.env
        assert env is not None
        s = self.spec
        t = time.monotonic()
        # stage the tests beside /tests; the command below swaps them in, so a planted /tests
        # or reward file is gone, in one exec. Renames, not `rm -rf`: a process the agent left
        # writing into /logs/verifier makes `rm -rf` fail ("Directory not empty"), which would
        # turn the trial into a verifier_error
        token = secrets.token_hex(4)
        stage = f"/.ablbench-tests-{token}"
        env.put_archive("/", tar_of(s.tests_dir, stage))
        script = s.test_script_path
        if not script.resolve().is_relative_to(s.tests_dir.resolve()):
            env.put_archive("/", tar_of(script, f"{stage}/{s.test_script}"))
        cmd = (
            f"old=/.ablbench-old-{token} && mkdir -p $old && {{ mv {VERIFIER_DIR} $old/verifier; mv {TESTS_DIR} $old/tests; "
            f"true; }} 2>/dev/null && mkdir -p {VERIFIER_DIR} && mv {stage} {TESTS_DIR} && "
            f"bash {TESTS_DIR}/{s.test_script} > {VERIFIER_DIR}/test-stdout.txt 2>&1"
        )
        self.log(f"verifier starts: {cmd} (timeout {s.verifier_timeout_s:.0f}s)")
        self.phases["verifier_setup"] = time.monotonic() - t
        res = env.exec_wait(cmd, timeout_s=s.verifier_timeout_s, env={"TEST_DIR": TESTS_DIR}, stop=self.stop)
        self.phases["verifier_run"] = res.duration_s
        self._check_stop()
        t = time.monotonic()
        files = env.fetch_dir(VERIFIER_DIR)
        self.phases["verifier_collect"] = time.monotonic() - t
        self._save_verifier_files(files, res.exit_code, res.timed_out, res.duration_s)
        out = VerifierResult(exit_code=res.exit_code, timed_out=res.timed_out, duration_s=round(res.duration_s, 3))
        if res.timed_out:
            out.error = f"verifier timed out after {s.verifier_timeout_s:.0f}s"
            return out
        if s.format == "legacy":
            out.reward, out.reward_source = (1.0 if res.exit_code == 0 else 0.0), "exit code"
            return out
        json_allowed = tests_mention(b"reward.json", s.tests_dir, s.test_script_path)
        if "reward.json" in files and not json_allowed:
            out.warnings.append(
                "reward.json ignored: the task's tests never write it (planted?); the reward comes from reward.txt"
            )
            self.log(f"WARNING: {out.warnings[-1]}")
        out.reward, out.reward_source, out.error = parse_reward(files, json_allowed=json_allowed)
        if (
            out.error is None
            and out.reward is not None
            and out.reward < 1.0
            and "ctrf.json" not in files
            and tests_use_ctrf(s.tests_dir)
        ):
            out.error = "tests write ctrf.json but none was produced (verifier set-up failed?)"
        return out

    def _oom_kills(self) -> int:
        """Processes the kernel OOM-killed in the container so far (``oom_kill`` of cgroup v2's
        ``memory.events`` or v1's ``memory.oom_control``), 0 if unknown."""
        if self.env is None:
            return 0
        res = self.env.exec("cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control "
                            "2>/dev/null", timeout_s=10)
        for line in res.output.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def _save_verifier_files(self, files: dict[str, bytes], code: int | None, timed_out: bool, took: float) -> None:
        log = files.pop("test-stdout.txt", b"").decode("utf-8", "replace")
        log += f"\n[ablbench] exit_code={code} timed_out={timed_out} duration_s={took:.2f}\n"
        write_text_atomic(self.dir / "verifier.log", log)
        for rel, data in files.items():
            parts = PurePosixPath(rel).parts
            if not parts or ".." in parts or rel.startswith("/"):
                continue
            dest = self.dir.joinpath("verifier", *parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)


def _counters(res: AgentResult | None) -> dict[str, int]:
    keys = ("turns", "parse_fail", "no_cmd", "retries", "context_events", "tokens_in", "tokens_out", "cut_off")
    return {k: int(getattr(res, k, 0) or 0) if res else 0 for k in keys}


def _exc_info(exc: BaseException) -> dict[str, str]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }
