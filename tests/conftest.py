"""Shared fixtures: the real Docker engine, the local base image, the bundled model.

With ``CI=true`` a missing prerequisite FAILS the test instead of skipping it: CI must
never pass by skipping the real thing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablbench.paths import BASE_IMAGE

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
#: label put on every container a test creates, so the session can sweep leftovers
TEST_LABEL = "ablbench.test-session"
TEST_SESSION = uuid.uuid4().hex[:10]


def missing(reason: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: prerequisites must be present; run `make test`)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client():
    """A docker SDK client talking to a live engine."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        missing(f"no Docker engine: {exc}")
    yield client
    leftovers = client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={TEST_SESSION}"})
    for c in leftovers:
        c.remove(force=True)


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """Name of the local base image (built by scripts/setup.sh)."""
    import docker

    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        missing(f"image {BASE_IMAGE} missing: run scripts/setup.sh")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def test_labels() -> dict[str, str]:
    """Labels to put on containers created directly by tests (swept at session end)."""
    return {TEST_LABEL: TEST_SESSION}


@pytest.fixture
def container(docker_client, base_image, test_labels) -> Iterator:
    """A running, network-less container of the base image, removed afterwards."""
    c = docker_client.containers.run(
        base_image, ["sleep", "infinity"], detach=True, network_mode="none",
        labels=test_labels, name=f"ablbench-test-{uuid.uuid4().hex[:8]}",
    )
    try:
        yield c
    finally:
        c.remove(force=True)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The bundled SmolLM2-135M-Instruct as an HF folder (materialized once, cached)."""
    from harness.embedded_model import materialize

    try:
        return materialize()
    except Exception as exc:  # noqa: BLE001
        missing(f"bundled model unavailable: {exc}")


#: pipeline settings small enough for CI on 2 cores (16 prompts per bucket, two candidate layers)
SMALL_PIPELINE = ["--limit", "16", "--candidates", "8,16", "--gen-tokens", "4", "--eval-tokens", "12",
                  "--eval-limit", "2", "--batch-size", "8", "--report-prompts", "2", "--report-tokens", "8", "--quiet"]


@pytest.fixture(scope="session")
def abliterated_run(smollm2_dir, tmp_path_factory) -> Path:
    """One small abliteration pipeline run on the bundled SmolLM2, shared by the tests that need it."""
    import torch
    from cli_helpers import CliRunner

    from harness.cli import app

    out = tmp_path_factory.mktemp("abliteration") / "run"
    threads = torch.get_num_threads()
    mp = pytest.MonkeyPatch()
    mp.setenv("ABLBENCH_TORCH_THREADS", "1")  # a busy 2-core box runs these forwards faster on one thread
    try:
        res = CliRunner().invoke(
            app, ["abliterate", "pipeline", "--model", str(smollm2_dir), "--out", str(out), *SMALL_PIPELINE]
        )
    finally:
        mp.undo()
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    """The bundled SmolLM2 GGUF, where llama.cpp's server is installed to serve it."""
    from harness.embedded_model import gguf_path
    from runners.servers.llamacpp import llama_cpp_installed

    if not llama_cpp_installed():
        missing("llama-cpp-python[server] is not installed: run scripts/setup.sh")
    try:
        return gguf_path()
    except Exception as exc:  # noqa: BLE001 - any failure means "no bundled GGUF"
        missing(f"bundled GGUF unavailable: {exc}")
