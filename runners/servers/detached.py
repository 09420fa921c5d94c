"""Servers left running by ``ablbench serve --detach``: check and stop them from another process."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from runners.servers.process import process_start_ticks, terminate_group


def detached_alive(info: dict[str, Any], docker_client: Any = None) -> bool:
    """True while the process or container described by ``info`` (a ``detach_info``) runs."""
    if info.get("kind") == "process":
        return _same_process(info)
    if info.get("kind") == "container":
        container = _container(info, docker_client)
        return container is not None and container.status in {"created", "running", "restarting"}
    return False


def stop_detached(info: dict[str, Any], grace_s: float = 10.0, docker_client: Any = None) -> bool:
    """Stop what ``info`` describes; True if something was running. Never signals a reused pid."""
    if info.get("kind") == "process":
        if not _same_process(info):
            return False
        return terminate_group(int(info["pid"]), grace_s)
    if info.get("kind") == "container":
        import docker

        container = _container(info, docker_client)
        if container is None:
            return False
        was_running = container.status == "running"
        with contextlib.suppress(docker.errors.APIError):
            container.stop(timeout=int(max(1, grace_s)))
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
        return was_running
    return False


def _same_process(info: dict[str, Any]) -> bool:
    pid = info.get("pid")
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    expected = info.get("start_ticks")
    return expected is None or process_start_ticks(int(pid)) == expected


def _container(info: dict[str, Any], docker_client: Any) -> Any:
    import docker

    client = docker_client or docker.from_env(timeout=120)
    for ref in (info.get("container_id"), info.get("container_name")):
        if ref:
            try:
                return client.containers.get(ref)
            except docker.errors.NotFound:
                continue
    return None
