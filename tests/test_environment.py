"""The task container: limits, lockdown, exec with timeouts, file copies, removal, sweeping."""

from __future__ import annotations

import time

import docker.errors
import pytest

from runners.environment import (
    DROPPED_CAPS,
    EnvironmentSpec,
    TaskEnvironment,
    container_name,
    sweep_containers,
)

pytestmark = pytest.mark.docker


@pytest.fixture
def env(docker_client, base_image, test_labels):
    spec = EnvironmentSpec(
        image=base_image,
        name=container_name("envtest", "some/task name", 3),
        labels={**test_labels, "ablbench.run": "envtest", "ablbench.task": "t"},
        cpus=64,
        memory_mb=256,
        network=False,
        pids_limit=300,
    )
    e = TaskEnvironment(docker_client, spec)
    e.start()
    yield e
    e.remove()


def test_container_is_locked_down(env, docker_client):
    env.container.reload()
    attrs = env.container.attrs
    host = attrs["HostConfig"]
    assert env.spec.name.startswith("ablbench-envtest-some-task-name-3-")
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "none"
    assert host["PidsLimit"] == 300
    assert host["Memory"] == 256 * 1024 * 1024
    host_cpus = docker_client.info()["NCPU"]
    assert host["NanoCpus"] == int(host_cpus * 1e9)  # 64 requested, clamped to the host
    assert set(DROPPED_CAPS) <= set(host["CapDrop"])
    assert any("no-new-privileges" in s for s in host["SecurityOpt"])
    assert not attrs["Mounts"]  # in particular no docker socket
    assert attrs["Config"]["Labels"]["ablbench.run"] == "envtest"
    res = env.exec("test -d /logs/verifier && test -d /logs/agent && ls /var/run/docker.sock", timeout_s=30)
    assert res.exit_code != 0 and "docker.sock" in res.output
    # no network interface but loopback
    res = env.exec("cat /proc/net/dev", timeout_s=30)
    assert "eth0" not in res.output


def test_exec_timeout_and_output(env):
    res = env.exec("echo hello; echo err >&2; exit 3", timeout_s=30)
    assert res.exit_code == 3 and "hello" in res.output and "err" in res.output and not res.timed_out
    t = time.monotonic()
    res = env.exec("sleep 30", timeout_s=2)
    assert res.timed_out and time.monotonic() - t < 15


def test_exec_wait_polls_long_commands(env):
    res = env.exec_wait("sleep 1; echo done > /tmp/x; exit 4", timeout_s=30)
    assert res.exit_code == 4 and not res.timed_out and res.duration_s >= 1
    assert env.read_file("/tmp/x") == b"done\n"
    res = env.exec_wait("sleep 30", timeout_s=2)
    assert res.timed_out


def test_copy_in_and_fetch(env, tmp_path):
    src = tmp_path / "tests"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.sh").write_text("echo B")
    env.copy_in(src, "/tests")
    assert env.exec("cat /tests/a.txt /tests/sub/b.sh", timeout_s=30).output == "Aecho B"
    env.write_file("/logs/verifier/reward.txt", "1\n")
    files = env.fetch_dir("/logs/verifier")
    assert files == {"reward.txt": b"1\n"}
    assert env.read_file("/nope/missing") is None
    assert env.fetch_dir("/nope") == {}


def test_remove_is_idempotent_and_sweep_finds_by_label(docker_client, base_image, test_labels):
    labels = {**test_labels, "ablbench.results": "/tmp/sweep-test-results"}
    e = TaskEnvironment(
        docker_client, EnvironmentSpec(image=base_image, name=container_name("sw", "t", 1), labels=labels)
    )
    e.start()
    assert sweep_containers(docker_client, {"ablbench.results": "/tmp/sweep-test-results"}) == [e.spec.name]
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(e.spec.name)
    e.remove()  # already gone: no error
