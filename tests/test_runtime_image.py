"""The agent's runtime in any task image (runners.runtime_image), with real containers.

A TB2-shaped task FROM the raw debootstrap image (no tmux) passes with the terminus agent
and a scripted model server: the first trial installs tmux into a derived image, the second
reuses it. An image without a package manager is an infra_error with a one-line message.
``ablbench tasks check --images`` classifies both, and images that are not present locally.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from pathlib import Path

import docker.errors
import pytest
from cli_helpers import CliRunner
from conftest import missing
from test_agent_scripted_server import ScriptedServer

from ablbench.paths import DEBIAN_IMAGE
from harness.cli import app
from harness.tasks import load_task
from runners.images import ImageResolver
from runners.runtime_image import (
    AgentRuntime,
    RuntimeImageError,
    final_base,
    infer_from_name,
    recipe,
    runtime_key,
    runtime_tag,
)

WRITE = ('{"analysis": "Empty shell.", "plan": "Write the file.", "commands": '
         '[{"keystrokes": "echo ok > /app/out.txt\\n", "duration": 1}], "task_complete": false}')
DONE = '{"analysis": "Written.", "plan": "Finish.", "commands": [], "task_complete": true}'
TEST_SH = """#!/bin/bash
if [ "$(cat /app/out.txt 2>/dev/null)" = "ok" ]; then echo 1 > /logs/verifier/reward.txt
else echo 0 > /logs/verifier/reward.txt; fi
"""


def tb2_task(root: Path, name: str, dockerfile: str, docker_image: str | None = None) -> Path:
    """A task folder of Terminal-Bench 2's shape."""
    folder = root / name
    for sub in ("environment", "tests", "solution"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "environment" / "Dockerfile").write_text(dockerfile)
    (folder / "instruction.md").write_text("Write ok to /app/out.txt.\n")
    (folder / "tests" / "test.sh").write_text(TEST_SH)
    (folder / "solution" / "solve.sh").write_text("#!/bin/bash\necho ok > /app/out.txt\n")
    image = f'docker_image = "{docker_image}"\n' if docker_image else ""
    (folder / "task.toml").write_text(
        'version = "1.0"\n[agent]\ntimeout_sec = 120.0\n[verifier]\ntimeout_sec = 60.0\n'
        f'[environment]\ncpus = 1\nmemory = "1G"\nallow_internet = false\n{image}'
    )
    return folder


def scripted(body: dict) -> str:
    """The model: write the file on the first turn, then say done (twice)."""
    return WRITE if len(body["messages"]) <= 2 else DONE


def run_cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    return res.exit_code, res.output + (repr(res.exception) if res.exception and res.exit_code not in (0, 1) else "")


@pytest.fixture(scope="module")
def debian_image(docker_client) -> str:
    try:
        docker_client.images.get(DEBIAN_IMAGE)
    except docker.errors.ImageNotFound:
        missing(f"image {DEBIAN_IMAGE} missing: run scripts/setup.sh")
    return DEBIAN_IMAGE


@pytest.fixture(scope="module")
def runs(docker_client, debian_image, tmp_path_factory):
    """Two CLI runs: the TB2-shaped task (2 attempts) and the task without a package manager."""
    root = tmp_path_factory.mktemp("rt")
    name = f"raw-debian-{uuid.uuid4().hex[:6]}"
    tasks = root / "tasks"
    raw = tb2_task(tasks, name, f"FROM {debian_image}\nWORKDIR /app\n")
    nopm = tb2_task(root / "nopm-tasks", f"no-pm-{uuid.uuid4().hex[:6]}",
                    f"FROM {debian_image}\nRUN rm -f /usr/bin/apt-get /usr/bin/apt /usr/bin/dpkg\nWORKDIR /app\n")
    # the derived image must not exist yet, so the first trial really installs
    image_id = docker_client.images.get(ImageResolver(docker_client).task_image(load_task(raw))).id
    derived = runtime_tag(image_id, ("tmux",))
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(derived, force=True)
    out = {"raw": root / "out-raw", "nopm": root / "out-nopm"}
    with ScriptedServer([scripted]) as srv:
        common = ["--model-url", srv.base_url, "--model", "scripted", "--agent", "terminus", "-n", "1", "--quiet"]
        code, log = run_cli("run", "--tasks", str(tasks), "-k", "2", "--out", str(out["raw"]), *common)
        code2, log2 = run_cli("run", "--tasks", str(nopm.parent), "--infra-retries", "0", "--out", str(out["nopm"]),
                              *common)
    yield {"raw": (raw, out["raw"], code, log), "nopm": (nopm, out["nopm"], code2, log2), "derived": derived,
           "root": root}
    images = [derived, *(i.id for t in (raw, nopm) for i in docker_client.images.list(name=f"ablbench-task/{t.name}"))]
    for ref in images:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(ref, force=True)


def _result(out: Path, task: str, attempt: int) -> dict:
    return json.loads((out / task / str(attempt) / "result.json").read_text())


@pytest.mark.docker
def test_raw_image_gets_tmux_once_and_the_agent_passes(runs, docker_client):
    task, out, code, log = runs["raw"]
    assert code == 0, log
    first, second = (_result(out, task.name, a) for a in (1, 2))
    assert (first["outcome"], second["outcome"]) == ("passed", "passed"), (first["error"], second["error"])
    # both trials ran in the derived image; only the first one installed anything
    assert first["image"] == second["image"] == runs["derived"]
    log1 = (out / task.name / "1" / "runner.stdout").read_text()
    log2 = (out / task.name / "2" / "runner.stdout").read_text()
    assert "runtime bootstrap:" in log1 and "runtime | " in log1 and "tmux" in log1
    assert "runtime |" not in log2 and "runtime bootstrap" not in log2
    assert f"using cached runtime image {runs['derived']}" in log2
    # the derived image keeps the task image's settings and carries its provenance
    attrs = docker_client.images.get(runs["derived"]).attrs
    assert attrs["Config"]["WorkingDir"] == "/app"
    assert attrs["Config"]["Labels"]["ablbench.runtime.recipe"] == "1"
    print(f"\nbootstrap: image phase {first['phases']['image']:.1f}s first, {second['phases']['image']:.2f}s cached")


@pytest.mark.docker
def test_image_without_package_manager_is_an_infra_error(runs):
    task, out, code, log = runs["nopm"]
    assert code == 0, log
    result = _result(out, task.name, 1)
    assert result["outcome"] == "infra_error"
    error = result["error"]
    assert "\n" not in error
    assert "lacks tmux" in error and "no package manager" in error
    assert "--base-image-map" in error and "Dockerfile" in error
    assert result["verifier"] is None and (out / "master_summary.csv").read_text().count("infra_error") == 1


@pytest.mark.docker
def test_install_without_network_names_the_fix(docker_client, debian_image, tmp_path):
    # an image of its own (a fresh id), so no derived image of it can be cached already
    tag = f"ablbench-test-nonet:{uuid.uuid4().hex[:8]}"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM {debian_image}\nLABEL t={tag}\n".encode()), tag=tag,
                               rm=True, forcerm=True)  # docker-py keeps the step's container by default
    runtime = AgentRuntime(docker_client, build_network="none", cache_root=tmp_path)
    logs: list[str] = []
    try:
        with pytest.raises(RuntimeImageError) as err:
            runtime.ensure(tag, logs.append)
        message = str(err.value)
        assert "\n" not in message and "with apt-get failed" in message and "network" in message
        assert "--base-image-map" in message
        assert any(m.startswith("runtime | ") for m in logs)  # the install log went to the trial's log
        # the next trial of the run fails at once, with the same message, without building again
        again: list[str] = []
        with pytest.raises(RuntimeImageError, match="with apt-get failed"):
            runtime.ensure(tag, again.append)
        assert not any(m.startswith("runtime") for m in again)
    finally:
        docker_client.images.remove(tag, force=True)
    # a ready image needs nothing, and its probe is cached on disk by image id
    base = AgentRuntime(docker_client, cache_root=tmp_path)
    assert base.ensure("ablbench/base:bookworm") == "ablbench/base:bookworm"
    assert len(list((tmp_path / "probes").glob("*.json"))) == 2


@pytest.mark.docker
def test_tasks_check_images_classifies_each_task(runs, debian_image):
    tasks = runs["root"] / "check"
    for src in (runs["raw"][0], runs["nopm"][0]):
        dest = tasks / src.name
        dest.mkdir(parents=True)
        for p in src.rglob("*"):
            if p.is_file():
                (dest / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
                (dest / p.relative_to(src)).write_bytes(p.read_bytes())
    tb2_task(tasks, "from-python-slim", "FROM python:3.13-slim-bookworm\nWORKDIR /app\n")
    tb2_task(tasks, "prebuilt-ubuntu", "FROM ubuntu:24.04\nWORKDIR /app\n", docker_image="alexgshaw/nosuch:20251031")
    tb2_task(tasks, "installs-tmux", "FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y tmux\n")
    tb2_task(tasks, "from-scratch", "FROM scratch\nCOPY x /x\n")
    code, out = run_cli("tasks", "check", str(tasks), "--images")
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert code == 1 and "cannot host the agent" in out, out
    assert "ready" in rows[runs["raw"][0].name]  # its derived image is cached
    assert "cannot run" in rows[runs["nopm"][0].name]
    assert "needs bootstrap" in rows["from-python-slim"] and "apt-get" in rows["from-python-slim"]
    assert "needs bootstrap" in rows["prebuilt-ubuntu"]
    assert "ready" in rows["installs-tmux"]
    assert "cannot run" in rows["from-scratch"]
    # offline, absent base images run in the local base image, which has tmux
    code, out = run_cli("tasks", "check", str(tasks), "--images", "--offline")
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert "ready" in rows["from-python-slim"] and "ready" in rows["prebuilt-ubuntu"]


def test_recipe_keys_and_name_inference():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert runtime_key(a, ("tmux",)) != runtime_key(b, ("tmux",)) != runtime_key(a, ("tmux", "bash"))
    assert runtime_key(a, ("bash", "tmux")) == runtime_key(a, ("tmux", "bash"))
    assert runtime_tag(a, ("tmux",)).startswith("ablbench-runtime:")
    df = recipe(a, "apk", ("tmux", "bash"), user="app")
    assert df.splitlines() == [f"FROM {a}", "USER root", "RUN apk add --no-cache tmux bash && tmux -V && bash -c true",
                               "USER app"]
    assert "apt-get install -y --no-install-recommends tmux" in recipe(a, "apt-get", ("tmux",))
    assert recipe(a, "dnf", ("tmux",)).splitlines()[-1].startswith("RUN dnf install -y tmux")
    assert final_base("FROM python:3.13 AS build\nRUN x\nFROM build\n") == "python:3.13"
    assert final_base("FROM --platform=linux/amd64 ubuntu:24.04\n") == "ubuntu:24.04"
    for ref, status in [("python:3.13-slim-bookworm", "needs bootstrap"), ("ubuntu:24.04", "needs bootstrap"),
                        ("node:20-alpine", "needs bootstrap"), ("fedora:40", "needs bootstrap"),
                        ("scratch", "cannot run"), ("gcr.io/distroless/static", "cannot run"),
                        ("someone/custom:1", "unknown")]:
        assert infer_from_name(ref).status == status, ref
    assert "apk" in infer_from_name("alpine:3.20").detail
    assert infer_from_name("ubuntu:24.04", "RUN apt-get install -y git tmux\n").status == "ready"
