"""Every bundled TRAINING task builds offline, its reference solution earns reward 1 and doing
nothing earns 0: the same direct container check as ``test_bundled_tasks`` (its helpers)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from test_bundled_tasks import _build, _outcome, _trial

from ablbench.paths import TRAIN_TASKS
from harness.tasks import discover_tasks

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TRAIN = discover_tasks(TRAIN_TASKS)


@pytest.fixture(scope="session")
def train_results(docker_client, base_image, test_labels) -> dict[tuple[str, bool], dict]:
    """Oracle and nop trials of every training task, run 4 at a time."""
    with ThreadPoolExecutor(2) as pool:
        images = dict(zip([s.name for s in TRAIN], pool.map(lambda s: _build(docker_client, s), TRAIN), strict=True))
    with ThreadPoolExecutor(4) as pool:
        futures = {(s.name, oracle): pool.submit(_trial, docker_client, images[s.name], s, test_labels, oracle)
                   for s in TRAIN for oracle in (True, False)}
        return {key: _outcome(f) for key, f in futures.items()}


@pytest.mark.parametrize("name", [s.name for s in TRAIN])
def test_reference_solution_earns_reward_1(train_results, name):
    result = train_results[(name, True)]
    assert result["reward"] == "1", result["log"]
    assert result["ctrf"]["results"]["summary"]["failed"] == 0


@pytest.mark.parametrize("name", [s.name for s in TRAIN])
def test_doing_nothing_earns_reward_0(train_results, name):
    result = train_results[(name, False)]
    assert result["reward"] == "0", result["log"]
    assert result["ctrf"]["results"]["summary"]["failed"] > 0
