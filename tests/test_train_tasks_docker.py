"""Every bundled TRAINING task builds offline, doing nothing earns reward 0 and its reference
solution earns 1: real containers, as ``test_bundled_tasks`` (its image builds), but one container
per task. The verifier only reads, so it runs first on the untouched container (the nop result),
then the solution runs and the verifier again (the oracle result)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_bundled_tasks import _build, _outcome, _tar

from ablbench.paths import TRAIN_TASKS
from ablbench.task_spec import TaskSpec
from harness.tasks import discover_tasks

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TRAIN = discover_tasks(TRAIN_TASKS)


def _verify(container, spec: TaskSpec) -> dict:
    container.exec_run(["rm", "-f", "/logs/verifier/reward.txt", "/logs/verifier/ctrf.json"])
    _, out = container.exec_run(
        ["timeout", str(int(spec.verifier_timeout_s)), "bash", f"/tests/{spec.test_script}"], workdir="/app")
    _, reward = container.exec_run(["cat", "/logs/verifier/reward.txt"])
    _, ctrf = container.exec_run(["cat", "/logs/verifier/ctrf.json"])
    return {"reward": reward.decode().strip(), "ctrf": json.loads(ctrf or b"null"),
            "log": out.decode(errors="replace")[-3000:]}


def _nop_then_oracle(client, image: str, spec: TaskSpec, labels: dict) -> tuple[dict, dict]:
    container = client.containers.run(
        image, ["sleep", "infinity"], detach=True, network_mode="none", labels=labels,
        name=f"ablbench-test-{spec.name}-{uuid.uuid4().hex[:6]}", mem_limit="512m", pids_limit=256)
    try:
        container.exec_run(["mkdir", "-p", "/logs/verifier"])
        container.put_archive("/", _tar(spec.tests_dir, "tests"))
        nop = _verify(container, spec)
        container.put_archive("/", _tar(spec.solution.parent, "solution"))
        code, out = container.exec_run(["timeout", "60", "bash", f"/solution/{spec.solution.name}"], workdir="/app")
        oracle = _verify(container, spec)
        oracle["log"] = f"solve.sh exited {code}: {out.decode(errors='replace')[-2000:]}\n{oracle['log']}"
        return nop, oracle
    finally:
        container.remove(force=True)


@pytest.fixture(scope="session")
def train_results(docker_client, base_image, test_labels) -> dict[str, dict]:
    """Per task: its nop and oracle verdicts, 4 tasks at a time."""
    with ThreadPoolExecutor(2) as pool:
        images = dict(zip([s.name for s in TRAIN], pool.map(lambda s: _build(docker_client, s), TRAIN), strict=True))
    with ThreadPoolExecutor(4) as pool:
        futures = {s.name: pool.submit(_nop_then_oracle, docker_client, images[s.name], s, test_labels)
                   for s in TRAIN}
        return {name: _outcome(f) for name, f in futures.items()}


def _pick(result, which: int) -> dict:
    return result[which] if isinstance(result, tuple) else result


@pytest.mark.parametrize("name", [s.name for s in TRAIN])
def test_doing_nothing_earns_0_and_the_reference_solution_1(train_results, name):
    nop, oracle = _pick(train_results[name], 0), _pick(train_results[name], 1)
    assert nop["reward"] == "0", nop["log"]
    assert nop["ctrf"]["results"]["summary"]["failed"] > 0
    assert oracle["reward"] == "1", oracle["log"]
    assert oracle["ctrf"]["results"]["summary"]["failed"] == 0
