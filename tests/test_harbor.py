"""ablbench inside harbor, for real: harbor 0.25 from .venv-harbor, real containers, a real HTTP model.

The "model" is a scripted OpenAI-compatible server on 127.0.0.1 replying with each task's
reference solution (``harbor_helpers.oracle_model``). ablbench's agent runs in harbor's process
on this host, so it reaches the server on loopback; only its commands go into the containers.
The bundled tasks set ``allow_internet = false``, which harbor's own docker environment refuses
here (its egress sidecar needs a probe image from a registry), so every job uses ablbench's
environment (``runners.harbor_environment:AblbenchDocker``): the same compose machinery with
``network_mode: none`` and the built-in runner's hardening. Three harbor jobs in all (~2 min).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from cli_helpers import CliRunner
from conftest import missing
from harbor_helpers import (
    AGENT_IMPORT,
    ENV_IMPORT,
    harbor_python,
    harbor_ready,
    oracle_model,
    run_harbor,
    validate_atif,
)
from test_agent_scripted_server import ScriptedServer

from ablbench.paths import BUNDLED_TASKS, DEBIAN_IMAGE, REPO_ROOT
from harness.cli import app
from harness.seeds import request_seed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TASKS = {"hello.txt": BUNDLED_TASKS / "hello-world", "/app/output": BUNDLED_TASKS / "make-output-dir"}
PROBE = "ls /sys/class/net\n"  # a container without network lists only "lo"


def _trials(job: Path) -> dict[str, dict]:
    out = {}
    for result in job.glob("*/result.json"):
        data = json.loads(result.read_text())
        out[data["task_name"]] = {**data, "dir": result.parent}
    return out


def _interval(phase: dict) -> tuple[float, float]:
    return tuple(datetime.fromisoformat(phase[k].replace("Z", "+00:00")).timestamp()
                 for k in ("started_at", "finished_at"))


def _our_containers(docker_client, jobs: Path) -> list:
    return [c for c in docker_client.containers.list(all=True, filters={"label": "ablbench.harbor=1"})
            if c.labels.get("ablbench.trial_dir", "").startswith(str(jobs.resolve()))]


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory, docker_client, base_image) -> Path:
    """Where this module's harbor jobs go; whatever container they leave is a failure, then swept."""
    reason = harbor_ready()
    if reason:
        missing(reason)
    jobs = tmp_path_factory.mktemp("harbor-jobs")
    yield jobs
    for c in _our_containers(docker_client, jobs):
        c.remove(force=True)


def _job(jobs: Path, name: str, agent_args: list[str], tasks: list[str], n: int = 2, extra: list[str] = ()):
    args = ["run", "-p", str(BUNDLED_TASKS), *[a for t in tasks for a in ("-i", t)], "-e", ENV_IMPORT,
            "-n", str(n), "-o", str(jobs), "--job-name", name, "-y", "-q", *agent_args, *extra]
    res = run_harbor(args)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return jobs / name


@pytest.fixture(scope="module")
def plugin_job(jobs_dir):
    """ablbench's agent over two bundled tasks at -n 2; each reply takes 1 s (overlap is visible)."""
    with ScriptedServer([oracle_model(TASKS, first_commands=PROBE)], delay_s=1.0) as srv:
        job = _job(jobs_dir, "plugin", ["-a", AGENT_IMPORT, "--ak", f"api_base={srv.base_url}",
                                        "--ak", "model=scripted", "--ak", "max_turns=6"],
                   ["hello-world", "make-output-dir"])
    return job, srv.requests


def test_plugin_agent_job_scores_passes_without_network(plugin_job, docker_client, jobs_dir):
    job, requests = plugin_job
    trials = _trials(job)
    assert set(trials) == {"hello-world", "make-output-dir"}
    for task, t in trials.items():
        assert t["exception_info"] is None, (task, t["exception_info"])
        assert t["verifier_result"]["rewards"]["reward"] == 1.0, task
        assert t["agent_info"]["name"] == "ablbench-terminus"
        meta = t["agent_result"]["metadata"]["ablbench"]
        assert (meta["stop"], meta["turns"], meta["parse_failures"], meta["cut_offs"]) == ("completed", 3, 0, 0)
        assert meta["execs"] > 3 and not meta["cancelled"]
        assert (meta["task"], meta["attempt"]) == (task, 1)
        turn_seeds = [json.loads(line).get("seed") for line in (t["dir"] / "agent" / "trace.jsonl").read_text()
                      .splitlines() if '"turn"' in line]
        assert turn_seeds == [request_seed(0, task, 1, turn) for turn in (1, 2, 3)]  # as `ablbench run` seeds
        assert t["agent_result"]["n_input_tokens"] > 0 and t["agent_result"]["n_output_tokens"] > 0
        agent_dir = t["dir"] / "agent"
        turns = [json.loads(line) for line in (agent_dir / "trace.jsonl").read_text().splitlines()
                 if '"turn"' in line]
        # the task said allow_internet = false: the container has a loopback device and nothing else
        first = turns[0]["observation"]
        assert "\nlo\n" in first and "eth0" not in first, first
        assert (agent_dir / "trajectory.json").is_file()
    assert len(requests) == 6
    assert not _our_containers(docker_client, jobs_dir)


def test_two_trials_at_n2_overlap_in_time(plugin_job):
    """The agents' model requests and exec calls never block harbor's loop: both trials work at once."""
    job, requests = plugin_job
    a, b = (_interval(t["agent_execution"]) for t in _trials(job).values())
    assert max(a[0], b[0]) < min(a[1], b[1]), (a, b)
    by_task = {}
    for r in requests:
        task = "hello" if "hello.txt" in r["body"]["messages"][1]["content"] else "output"
        by_task.setdefault(task, []).append((r["arrived"], r["answered"]))
    # some request of one trial was in flight while one of the other trial's was (1 s each)
    assert any(x0 < y1 and y0 < x1 for x0, x1 in by_task["hello"] for y0, y1 in by_task["output"])


def test_trajectories_validate_against_harbors_atif_model(plugin_job, tmp_path):
    job, _ = plugin_job
    paths = sorted(job.glob("*/agent/trajectory.json"))
    # and ablbench's own runner writes one per trial too (oracle: a model-free agent)
    res = CliRunner().invoke(app, ["run", "--agent", "oracle", "--include", "hello-world", "--out",
                                   str(tmp_path / "own"), "--quiet"])
    assert res.exit_code == 0, res.output
    own = tmp_path / "own" / "hello-world" / "1" / "agent" / "trajectory.json"
    out = validate_atif(*paths, own)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("ATIF-v1.8") == 3
    traj = json.loads(paths[0].read_text())
    assert [s["source"] for s in traj["steps"]] == ["system", "user", "agent", "agent", "agent"]
    calls = traj["steps"][2]["tool_calls"]
    assert [c["function_name"] for c in calls] == ["bash_command", "bash_command"]
    assert calls[0]["arguments"]["keystrokes"] == PROBE
    assert traj["steps"][4]["tool_calls"][-1]["function_name"] == "mark_task_complete"
    assert traj["final_metrics"]["total_prompt_tokens"] > 0 and traj["extra"]["stop"] == "completed"


def test_ablbench_analyze_reads_plugin_and_terminus2_jobs(plugin_job, jobs_dir, monkeypatch):
    """The 3-arm comparison's inputs: a job of ablbench's agent and one of harbor's own Terminus-2."""
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")  # litellm wants a key; the scripted server ignores it
    with ScriptedServer([oracle_model(TASKS)]) as srv:
        t2 = _job(jobs_dir, "terminus2", ["-a", "terminus-2", "-m", "openai/scripted",
                                          "--ak", f"api_base={srv.base_url}/v1",
                                          "--ak", "record_terminal_session=false", "--ak", "max_turns=5"],
                  ["hello-world"], n=1)
    t2_trial = _trials(t2)["hello-world"]
    assert t2_trial["agent_info"]["name"] == "terminus-2" and t2_trial["exception_info"] is None
    job, _ = plugin_job
    report = jobs_dir / "report.json"
    res = CliRunner().invoke(app, ["analyze", str(job), str(t2), "--names", "ablbench,terminus2",
                                   "--json", str(report)])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    runs = {r["name"]: r for r in data["runs"]}
    # compared on the shared task (terminus-2 ran one of the two)
    assert {k: (r["kind"], r["tasks_in_run"], r["passes"], r["n"]) for k, r in runs.items()} == {
        "ablbench": ("harbor", 2, 1, 1), "terminus2": ("harbor", 1, 1, 1)}, data["runs"]
    assert runs["ablbench"]["parse_fail_mean"] == 0.0  # from the agent's metadata; terminus-2 records none
    assert "parse_fail_mean" not in runs["terminus2"]


def test_cancelled_trial_still_runs_the_verifier_and_leaves_no_container(jobs_dir, docker_client):
    """harbor's own timer fires (the agent's deadline is set past it) while a command runs."""
    sleepy = json.dumps({"analysis": "wait", "plan": "sleep", "commands": [{"keystrokes": "sleep 100\n",
                                                                             "duration": 60}]})
    with ScriptedServer([sleepy]) as srv:
        job = _job(jobs_dir, "cancel", ["-a", AGENT_IMPORT, "--ak", f"api_base={srv.base_url}",
                                        "--ak", "model=scripted", "--ak", "deadline_margin_s=-60"],
                   ["hello-world"], n=1, extra=["--agent-timeout-multiplier", "0.02"])  # 300 s -> 6 s
    t = _trials(job)["hello-world"]
    assert t["exception_info"]["exception_type"] == "AgentTimeoutError"
    assert t["verifier_result"]["rewards"]["reward"] == 0.0  # the verifier ran after the cancellation
    start, end = _interval(t["agent_execution"])
    assert end - start < 15
    meta = t["agent_result"]["metadata"]["ablbench"]
    assert meta["cancelled"] is True and meta["stop"] == "error" and "cancelled" in meta["error"]
    trace = [json.loads(line) for line in (t["dir"] / "agent" / "trace.jsonl").read_text().splitlines()]
    assert trace[-1]["event"] == "end"  # the agent thread noticed and ended within the grace period
    assert (t["dir"] / "agent" / "trajectory.json").is_file()
    assert not _our_containers(docker_client, jobs_dir)


NETWORK_POLICY = """
import json, sys, tempfile
from pathlib import Path
from harbor.models.task.config import EnvironmentConfig, NetworkMode, NetworkPolicy
from harbor.models.trial.paths import TrialPaths
from runners.harbor_environment import AblbenchDocker
task = Path(sys.argv[1])
out = {}
for mode in ("no-network", "public", "allowlist", "mixed"):
    policy = NetworkPolicy(network_mode=NetworkMode.ALLOWLIST, allowed_hosts=["example.org"]) \\
        if mode == "allowlist" else NetworkPolicy(network_mode=NetworkMode("no-network" if mode == "mixed" else mode))
    phases = [policy, NetworkPolicy(network_mode=NetworkMode.PUBLIC)] if mode == "mixed" else []
    try:
        env = AblbenchDocker(environment_dir=task / "environment", environment_name="t", session_id="t__x__env",
                             trial_paths=TrialPaths(Path(tempfile.mkdtemp())), task_env_config=EnvironmentConfig(),
                             network_policy=policy, phase_network_policies=phases)
        out[mode] = env.hardening()
    except ValueError as exc:
        out[mode] = "refused: " + str(exc)
print(json.dumps(out))
"""


def test_no_network_policy_is_enforced_or_refused_never_widened(jobs_dir):
    res = harbor_python(NETWORK_POLICY, str(BUNDLED_TASKS / "hello-world"))
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["no-network"]["network_mode"] == "none"
    assert "network_mode" not in out["public"]
    for hardened in (out["no-network"], out["public"]):
        assert "NET_RAW" in hardened["cap_drop"] and hardened["security_opt"] == ["no-new-privileges:true"]
        assert hardened["pids_limit"] > 0 and hardened["privileged"] is False
    assert out["allowlist"].startswith("refused: ") and "allowlist" in out["allowlist"]
    assert out["mixed"].startswith("refused: "), out["mixed"]


SWEEP = REPO_ROOT / "scripts" / "harbor_sweep.sh"


def test_harbor_sweep_resumes_and_fails_when_no_trial_is_graded(jobs_dir, tmp_path):
    """full_bench_parallel.sh --engine harbor runs this per model: harbor exits 0 whatever happens,
    the sweep does not when no trial reached its verifier (here: no tmux, and no package manager to get it)."""
    tasks = tmp_path / "tasks"
    shutil.copytree(BUNDLED_TASKS / "hello-world", tasks / "no-tmux")
    (tasks / "no-tmux" / "environment" / "Dockerfile").write_text(
        f"FROM {DEBIAN_IMAGE}\nRUN rm /usr/bin/apt-get\nWORKDIR /app\n")
    job = jobs_dir / "sweep"
    with ScriptedServer([oracle_model(TASKS)]) as srv:
        cmd = ["bash", str(SWEEP), "--url", srv.base_url, "--model", "scripted", "--job", str(job),
               "--tasks", str(tasks), "-n", "1", "--max-turns", "3"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
        assert "no trial of" in res.stderr and "tmux is not installed" in res.stderr, res.stderr[-2000:]
        assert "0 graded" in res.stdout
        config = json.loads((job / "config.json").read_text())
        assert config["agents"][0]["kwargs"]["api_base"] == srv.base_url
        # a second call resumes the same job (a restarted server may listen elsewhere: the URL is updated)
        again = subprocess.run([*cmd[:3], srv.base_url + "/", *cmd[4:]], capture_output=True, text=True, timeout=600)
    assert "resuming harbor job" in again.stdout and again.returncode == 1
    assert json.loads((job / "config.json").read_text())["agents"][0]["kwargs"]["api_base"] == srv.base_url + "/"
    assert len(list(job.glob("*/result.json"))) == 1  # the errored trial was kept, not duplicated


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "cloud"], "--engine must be builtin or harbor"),
    (["--agent", "terminus-2"], "--agent and --env need --engine harbor"),
    (["--engine", "harbor", "--no-network"], "--no-network is for the builtin engine"),
])
def test_full_bench_engine_options_are_checked(tmp_path, args, message):
    res = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "full_bench_parallel.sh"), "--model", f"m={tmp_path}",
                          *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and message in res.stderr, res.stderr


CLAIMS = """
import json, pathlib, sys
from harness.agents.harbor_agent import ATTEMPTS_FILE, claim_attempt
job = pathlib.Path(sys.argv[1])
for name in ("t__a", "t__b", "u__c"):
    (job / name).mkdir()
got = [claim_attempt(job, "t", "t__a"), claim_attempt(job, "t", "t__b"), claim_attempt(job, "u", "u__c"),
       claim_attempt(job, "t", "t__a")]
(job / "t__a").rmdir()  # harbor removed an unfinished trial on resume: its rerun takes the number over
got.append(claim_attempt(job, "t", "t__d"))
print(json.dumps({"got": got, "ledger": json.loads((job / ATTEMPTS_FILE).read_text())}))
"""


def test_attempt_numbers_are_claimed_per_task_in_the_job_folder(tmp_path):
    if harbor_ready():
        missing(harbor_ready())
    res = harbor_python(CLAIMS, str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["got"] == [1, 2, 1, 1, 1]
    assert out["ledger"] == {"t": {"1": "t__d", "2": "t__b"}, "u": {"1": "u__c"}}
