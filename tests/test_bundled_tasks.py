"""Every bundled task builds offline, its reference solution earns reward 1 and doing nothing earns 0.

A direct check with real containers (no runner): build environment/ with no network, start
a network-less container, (run solution/solve.sh), copy tests/ to /tests, run
``bash /tests/test.sh`` and read /logs/verifier/reward.txt and ctrf.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ablbench.paths import BUNDLED_TASKS
from ablbench.task_spec import TaskSpec
from harness.tasks import discover_tasks

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SPECS = discover_tasks(BUNDLED_TASKS)


def _tar(folder: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=arcname)
    return buf.getvalue()


def _content_tag(spec: TaskSpec) -> str:
    digest = hashlib.sha256()
    for p in sorted(spec.build_context.rglob("*")):
        if p.is_file():
            digest.update(str(p.relative_to(spec.build_context)).encode() + b"\0" + p.read_bytes())
    return f"ablbench-test/task-{spec.name}:{digest.hexdigest()[:12]}"


def _build(client, spec: TaskSpec) -> str:
    import docker

    tag = _content_tag(spec)
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        client.images.build(path=str(spec.build_context), dockerfile=spec.dockerfile.name, tag=tag,
                            rm=True, forcerm=True, network_mode="none",
                            timeout=int(spec.build_timeout_s))
    repo = tag.rsplit(":", 1)[0]
    for image in client.images.list(name=repo):  # drop images of older versions of the task
        for old in image.tags:
            if old != tag and old.startswith(repo + ":"):
                client.images.remove(old)
    return tag


def _trial(client, image: str, spec: TaskSpec, labels: dict, oracle: bool) -> dict:
    """Run one trial; return reward, ctrf summary and logs."""
    container = client.containers.run(
        image, ["sleep", "infinity"], detach=True, network_mode="none", labels=labels,
        name=f"ablbench-test-{spec.name}-{uuid.uuid4().hex[:6]}", mem_limit="1g", pids_limit=512)
    try:
        container.exec_run(["mkdir", "-p", "/logs/verifier"])
        solve = ""
        if oracle:
            container.put_archive("/", _tar(spec.solution.parent, "solution"))
            code, out = container.exec_run(
                ["timeout", "120", "bash", f"/solution/{spec.solution.name}"], workdir="/app")
            solve = out.decode(errors="replace")[-2000:]
            assert code == 0, f"{spec.name}: solve.sh exited {code}: {solve}"
        container.put_archive("/", _tar(spec.tests_dir, "tests"))
        _, out = container.exec_run(
            ["timeout", str(int(spec.verifier_timeout_s)), "bash", f"/tests/{spec.test_script}"], workdir="/app")
        _, reward = container.exec_run(["cat", "/logs/verifier/reward.txt"])
        _, ctrf = container.exec_run(["cat", "/logs/verifier/ctrf.json"])
        return {"reward": reward.decode().strip(), "ctrf": json.loads(ctrf or b"null"),
                "log": solve + out.decode(errors="replace")[-3000:]}
    finally:
        container.remove(force=True)


@pytest.fixture(scope="session")
def bundled_results(docker_client, base_image, test_labels) -> dict[tuple[str, bool], dict]:
    """Oracle and nop trials of every bundled task, run 4 at a time."""
    with ThreadPoolExecutor(2) as pool:  # builds: light, but the machine is shared
        images = dict(zip([s.name for s in SPECS], pool.map(lambda s: _build(docker_client, s), SPECS),
                          strict=True))
    jobs = [(s, oracle) for s in SPECS for oracle in (True, False)]
    with ThreadPoolExecutor(4) as pool:
        futures = {(s.name, oracle): pool.submit(_trial, docker_client, images[s.name], s, test_labels, oracle)
                   for s, oracle in jobs}
        return {key: _outcome(f) for key, f in futures.items()}


def _outcome(future) -> dict:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - reported by the test of that trial
        return {"reward": None, "ctrf": None, "log": f"trial failed: {exc!r}"}


@pytest.mark.parametrize("name", [s.name for s in SPECS])
def test_oracle_solution_earns_reward_1(bundled_results, name):
    result = bundled_results[(name, True)]
    assert result["reward"] == "1", result["log"]
    assert result["ctrf"], "no ctrf.json"
    summary = result["ctrf"]["results"]["summary"]
    assert summary["tests"] > 0 and summary["failed"] == 0


@pytest.mark.parametrize("name", [s.name for s in SPECS])
def test_doing_nothing_earns_reward_0(bundled_results, name):
    result = bundled_results[(name, False)]
    assert result["reward"] == "0", result["log"]
    assert result["ctrf"], "no ctrf.json"
    assert result["ctrf"]["results"]["summary"]["failed"] > 0
