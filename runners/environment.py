"""One task container: start it locked down, run commands in it with timeouts, copy files in/out, remove it.

Every container carries labels (``ablbench.run``, ``ablbench.results``, ``ablbench.task``,
``ablbench.attempt``) so a later run can find and remove leftovers of a crashed one.
Containers get no privileges, a reduced capability set, ``no-new-privileges``, a pids limit,
the task's cpu/memory limits and no network unless the task allows internet access. They
never see the docker socket (nothing is mounted at all).
Containers are created only through a ``CreationGate`` when one is given: once the run stops,
the gate admits no new creation, and the final sweep waits for the ones in flight, so no
container can appear after the sweep.
"""

from __future__ import annotations

import io
import re
import secrets
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import docker
import docker.errors
from docker.models.containers import Container

from ablbench.agent_api import EnvironmentFault, ExecResult

#: capabilities of docker's default set that no task needs
DROPPED_CAPS = ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP"]


class ContainerError(EnvironmentFault):
    """A docker failure while setting up or talking to a task container (infrastructure)."""


class CreationGate:
    """Admits container creations until ``stop`` is set; ``drain`` waits for those in flight.

    The stop flag is checked under the gate's lock, and ``drain`` takes the same lock, so a
    creation is either counted before the sweep waits or refused: none can start after it.
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._cond = threading.Condition()
        self._in_flight = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a creation slot for the ``with`` body; ContainerError when the run is stopping."""
        with self._cond:
            if self.stop.is_set():
                raise ContainerError("run stopping: no new container")
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def drain(self, timeout_s: float) -> int:
        """Wait (at most ``timeout_s``) until no creation is in flight; returns how many still are.

        Only meaningful once ``stop`` is set (no new admissions).
        """
        with self._cond:
            self._cond.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)
            return self._in_flight


@dataclass
class EnvironmentSpec:
    """How to start one task container."""

    image: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    cpus: float | None = None
    memory_mb: int | None = None
    network: bool = False
    pids_limit: int = 4096
    no_new_privileges: bool = True


def container_name(run_id: str, task: str, attempt: int) -> str:
    """``ablbench-<run>-<task>-<attempt>-<rand>``, restricted to docker's name alphabet."""
    raw = f"ablbench-{run_id}-{task}-{attempt}"
    cleaned = re.sub(r"[^a-zA-Z0-9_.-]+", "-", raw)[:180]
    return f"{cleaned}-{secrets.token_hex(3)}"


def _host_cpus(client: docker.DockerClient) -> float:
    try:
        return float(client.info().get("NCPU") or 1)
    except docker.errors.APIError:
        return 1.0


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def tar_of(src: Path, dest: str = "") -> bytes:
    """An in-memory tar (owned by root) of ``src`` placed at ``dest``.

    A folder's contents go below ``dest``; a file becomes ``dest`` itself (default: its
    name). The folders of ``dest`` get explicit entries, so extracting the tar at ``/``
    creates them without a ``mkdir`` exec.
    """
    dest = dest.strip("/")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        parts = PurePosixPath(dest).parts if dest else ()
        dirs = parts if src.is_dir() else parts[:-1]
        for i in range(1, len(dirs) + 1):
            info = tarfile.TarInfo("/".join(dirs[:i]))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(_as_root(info))
        if src.is_dir():
            for child in sorted(src.iterdir()):
                tar.add(str(child), arcname=f"{dest}/{child.name}" if dest else child.name, filter=_as_root)
        else:
            tar.add(str(src), arcname=dest or src.name, filter=_as_root)
    return buf.getvalue()


def tar_file(path: str, data: bytes, mode: int = 0o644) -> bytes:
    """An in-memory tar holding one file at absolute ``path`` (with its folders), for extraction at ``/``."""
    parts = PurePosixPath(path.strip("/")).parts
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(1, len(parts)):
            info = tarfile.TarInfo("/".join(parts[:i]))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(_as_root(info))
        info = tarfile.TarInfo("/".join(parts))
        info.size, info.mode, info.mtime = len(data), mode, now
        tar.addfile(_as_root(info), io.BytesIO(data))
    return buf.getvalue()


def _dirs_tar(dirs: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(_as_root(info))
    return buf.getvalue()


class TaskEnvironment:
    """A running task container and the operations a trial needs on it (an ``ablbench.agent_api.Environment``)."""

    def __init__(self, client: docker.DockerClient, spec: EnvironmentSpec, gate: CreationGate | None = None) -> None:
        self.client = client
        self.spec = spec
        self.gate = gate
        self.container: Container | None = None
        self._removed = threading.Event()

    @classmethod
    def attach(cls, container: Container) -> TaskEnvironment:
        """Wrap an already running container (as agents receive it)."""
        env = cls(container.client, EnvironmentSpec(image="", name=container.name))
        env.container = container
        return env

    @property
    def name(self) -> str:
        """The container's name."""
        return self.container.name if self.container is not None else self.spec.name

    @property
    def image(self) -> str:
        """The container's image (its tags), or "" when unknown."""
        if self.spec.image:
            return self.spec.image
        return ",".join(getattr(getattr(self.container, "image", None), "tags", None) or [])

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Container:
        """Create and start the container (``sleep infinity``), with /logs prepared."""
        s = self.spec
        kwargs: dict = {
            "name": s.name,
            "labels": s.labels,
            "detach": True,
            "entrypoint": ["sleep"],
            "command": ["infinity"],
            "init": True,
            "privileged": False,
            "cap_drop": DROPPED_CAPS,
            "pids_limit": s.pids_limit,
            "network_mode": "bridge" if s.network else "none",
            "security_opt": ["no-new-privileges:true"] if s.no_new_privileges else None,
        }
        if s.cpus:
            kwargs["nano_cpus"] = int(min(float(s.cpus), _host_cpus(self.client)) * 1e9)
        if s.memory_mb:
            kwargs["mem_limit"] = f"{int(s.memory_mb)}m"
            kwargs["memswap_limit"] = f"{int(s.memory_mb)}m"
        try:
            with self.gate.admit() if self.gate is not None else nullcontext():
                self.container = self.client.containers.run(s.image, **kwargs)
        except docker.errors.DockerException as exc:
            raise ContainerError(f"cannot start container from {s.image}: {exc}") from exc
        if self._removed.is_set():  # removed (interrupted) while starting
            self.remove()
            raise ContainerError("container removed while starting (interrupted)")
        self.put_archive("/", _dirs_tar(["logs", "logs/agent", "logs/verifier"]))
        return self.container

    def remove(self) -> None:
        """Force-remove the container (idempotent; safe from any thread)."""
        self._removed.set()
        target = self.container
        if target is None:
            try:
                target = self.client.containers.get(self.spec.name)
            except docker.errors.DockerException:
                return
        try:
            target.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

    @property
    def removed(self) -> bool:
        """True once :meth:`remove` was called."""
        return self._removed.is_set()

    def _require(self) -> Container:
        if self.container is None:
            raise ContainerError("container is not started")
        return self.container

    # -- commands ------------------------------------------------------------------------
    def exec(
        self,
        cmd: str | list[str],
        timeout_s: float | None = 60,
        *,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
    ) -> ExecResult:
        """Run ``bash -c cmd`` (a list: that argv) and capture its output (for short commands).

        The command is wrapped in coreutils ``timeout`` inside the container; the host also
        stops waiting a little after the deadline, so a wedged engine cannot hang a trial.
        Without a timeout the command runs as it is, in the caller's thread.
        """
        container = self._require()
        inner = list(cmd) if isinstance(cmd, list) else ["bash", "-c", cmd]
        if timeout_s is None:
            start = time.monotonic()
            try:
                res = container.exec_run(inner, environment=env, workdir=workdir, user=user or "")
            except docker.errors.DockerException as exc:
                raise ContainerError(f"exec in {self.spec.name} failed: {exc}") from exc
            return ExecResult(res.exit_code, (res.output or b"").decode("utf-8", "replace"), False,
                              time.monotonic() - start)
        inner = ["timeout", "-k", "5", f"{max(1.0, timeout_s):.0f}", *inner]
        box: dict = {}

        def target() -> None:
            try:
                box["res"] = container.exec_run(inner, environment=env, workdir=workdir, user=user or "")
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                box["exc"] = exc

        start = time.monotonic()
        worker = threading.Thread(target=target, daemon=True, name=f"exec-{self.spec.name}")
        worker.start()
        worker.join(None if timeout_s is None else timeout_s + 30)
        took = time.monotonic() - start
        if worker.is_alive():
            return ExecResult(None, "", True, took)
        if "exc" in box:
            raise ContainerError(f"exec in {self.spec.name} failed: {box['exc']}") from box["exc"]
        res = box["res"]
        output = (res.output or b"").decode("utf-8", "replace")
        timed_out = timeout_s is not None and res.exit_code in (124, 137) and took >= timeout_s - 0.5
        return ExecResult(res.exit_code, output, timed_out, took)

    def exec_wait(
        self,
        cmd: str,
        timeout_s: float,
        *,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        stop: threading.Event | None = None,
        poll_s: float = 0.25,
    ) -> ExecResult:
        """Run a long ``bash -c cmd`` detached and poll until it ends (output: redirect it yourself).

        Polling avoids HTTP read timeouts on long quiet commands. Returns early with
        ``exit_code=None`` when ``stop`` is set.
        """
        container = self._require()
        inner = ["timeout", "-k", "10", f"{max(1.0, timeout_s):.0f}", "bash", "-c", cmd]
        api = self.client.api
        start = time.monotonic()
        try:
            exec_id = api.exec_create(container.id, inner, environment=env, workdir=workdir)["Id"]
            api.exec_start(exec_id, detach=True)
            while True:
                info = api.exec_inspect(exec_id)
                if not info.get("Running") and info.get("ExitCode") is not None:
                    took = time.monotonic() - start
                    code = int(info["ExitCode"])
                    return ExecResult(code, "", code in (124, 137) and took >= timeout_s - 0.5, took)
                took = time.monotonic() - start
                if took > timeout_s + 30:
                    return ExecResult(None, "", True, took)
                if stop is not None and stop.is_set():
                    return ExecResult(None, "", False, took)
                time.sleep(0.05 if took < 2 else poll_s)  # quick commands return quickly
        except docker.errors.DockerException as exc:
            raise ContainerError(f"exec in {self.spec.name} failed: {exc}") from exc

    # -- files ---------------------------------------------------------------------------
    def copy_in(self, src: Path, dest_dir: str) -> None:
        """Copy a host file or the contents of a host folder into ``dest_dir`` (created)."""
        self.put_archive("/", tar_of(src, dest_dir))

    def put_archive(self, dest_dir: str, data: bytes) -> None:
        """Extract a tar (bytes) into ``dest_dir``."""
        try:
            ok = self._require().put_archive(dest_dir, data)
        except docker.errors.DockerException as exc:
            raise ContainerError(f"copy into {dest_dir} failed: {exc}") from exc
        if not ok:
            raise ContainerError(f"copy into {dest_dir} failed")

    def write_file(self, path: str, content: bytes | str, mode: int = 0o644) -> None:
        """Create one file (and its folders) in the container."""
        data = content.encode() if isinstance(content, str) else content
        self.put_archive("/", tar_file(path, data, mode))

    def fetch_dir(self, path: str, max_file_bytes: int = 20_000_000) -> dict[str, bytes]:
        """Regular files below ``path`` in the container as {relative path: bytes} ({} if absent)."""
        try:
            stream, _ = self._require().get_archive(path)
        except docker.errors.NotFound:
            return {}
        except docker.errors.DockerException as exc:
            raise ContainerError(f"cannot read {path}: {exc}") from exc
        raw = b"".join(stream)
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for member in tar.getmembers():
                if not member.isfile() or member.size > max_file_bytes:
                    continue
                rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
                fh = tar.extractfile(member)
                if fh is not None:
                    files[rel] = fh.read()
        return files

    def read_file(self, path: str) -> bytes | None:
        """One file's bytes from the container, or None when it does not exist."""
        try:
            stream, stat = self._require().get_archive(path)
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise ContainerError(f"cannot read {path}: {exc}") from exc
        raw = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    fh = tar.extractfile(member)
                    return fh.read() if fh else None
        return None


def sweep_containers(client: docker.DockerClient, labels: dict[str, str], wait_s: float = 15.0) -> list[str]:
    """Force-remove every container carrying all ``labels``; returns the names removed.

    Uses the plain list call (``containers.list`` inspects each container and fails on one
    removed meanwhile). Removals already in progress elsewhere (another thread) are waited
    for, up to ``wait_s``.
    """
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    removed = []
    deadline = time.monotonic() + wait_s
    while True:
        busy = False
        for c in client.api.containers(all=True, filters=filters):
            name = (c.get("Names") or [c["Id"]])[0].lstrip("/")
            try:
                client.api.remove_container(c["Id"], force=True, v=True)
                removed.append(name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "in progress" not in str(exc):
                    raise
                busy = True
        if not busy or time.monotonic() > deadline:
            return removed
        time.sleep(0.2)
