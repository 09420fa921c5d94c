"""sglang and vLLM as docker containers (Docker SDK), plus the spec they are started from.

The spec is a plain dataclass so it can be checked without a GPU: image, command line,
mounts, device requests, published ports. ``image`` and ``launcher`` can be overridden, which
lets a small stand-in container play the part of sglang where no GPU exists (tests).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.servers.base import ModelServer, ServerError, model_entries, tail_lines

log = logging.getLogger("ablbench.serve")

SGLANG_IMAGE = "lmsysorg/sglang:v0.5.19-cu129"  # last CUDA-12 tag; newer tags need a CUDA-13 driver
VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
#: every container a model server starts carries this label (``ablbench serve stop --all`` finds them)
ROLE_LABEL = "ablbench.role"
ROLE_VALUE = "model-server"
MODEL_MOUNT_ROOT = "/models"


@dataclass
class ContainerSpec:
    """Everything ``docker run`` needs for one model-server container."""

    name: str
    image: str
    command: list[str]
    entrypoint: list[str] | None
    container_port: int
    host_port: int
    model_dir: Path
    model_mount: str
    cache_volume: str | None
    environment: dict[str, str] = field(default_factory=dict)
    gpus: str | int | None = "all"
    ipc_host: bool = True
    shm_size: str | None = None
    memlock: int | None = -1
    labels: dict[str, str] = field(default_factory=dict)

    def volumes(self) -> dict[str, dict[str, str]]:
        """Docker SDK volume map: the model folder read-only, the cache volume read-write."""
        vols = {str(self.model_dir): {"bind": self.model_mount, "mode": "ro"}}
        if self.cache_volume:
            vols[self.cache_volume] = {"bind": "/root/.cache", "mode": "rw"}
        return vols

    def ports(self) -> dict[str, tuple[str, int]]:
        """The server port, published on 127.0.0.1 only."""
        return {f"{self.container_port}/tcp": ("127.0.0.1", self.host_port)}

    def device_requests(self) -> list[Any]:
        """GPU requests: ``"all"``, a count, or a comma-separated list of device ids; none if None."""
        import docker

        if self.gpus is None:
            return []
        if self.gpus == "all":
            return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
        if isinstance(self.gpus, int):
            return [docker.types.DeviceRequest(count=self.gpus, capabilities=[["gpu"]])]
        ids = [d.strip() for d in str(self.gpus).split(",") if d.strip()]
        return [docker.types.DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``client.containers.run``."""
        import docker

        kwargs: dict[str, Any] = {
            "image": self.image,
            "command": self.command,
            "name": self.name,
            "detach": True,
            "init": True,  # signals reach the server; SIGTERM stops it promptly
            "environment": dict(self.environment),
            "volumes": self.volumes(),
            "ports": self.ports(),
            "device_requests": self.device_requests(),
            "ulimits": (
                [docker.types.Ulimit(name="memlock", soft=self.memlock, hard=self.memlock)]
                if self.memlock is not None else []
            ),
            "labels": dict(self.labels),
        }
        if self.entrypoint is not None:
            kwargs["entrypoint"] = self.entrypoint
        if self.ipc_host:
            kwargs["ipc_mode"] = "host"
        if self.shm_size:
            kwargs["shm_size"] = self.shm_size
        return kwargs


class ContainerServer(ModelServer):
    """A model server running in a docker container; subclasses say which engine."""

    default_image: str = ""
    container_port: int = 30000
    cache_volume: str | None = None
    #: argv before the engine arguments (None: the image's own entrypoint/command)
    default_launcher: list[str] = []
    default_health_budget_s = 1200.0  # first boots compile kernels and capture CUDA graphs

    def __init__(
        self,
        model_dir: Path,
        *,
        image: str | None = None,
        launcher: list[str] | None = None,
        gpus: str | int | None = "all",
        ipc_host: bool = True,
        shm_size: str | None = None,
        memlock: int | None = -1,
        cache_volume: str | None = "default",
        environment: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        stands_for: str | None = None,
        docker_client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_dir, **kwargs)
        self.image = image or self.default_image
        self.launcher = list(self.default_launcher if launcher is None else launcher)
        self.gpus = gpus
        self.ipc_host = ipc_host
        self.shm_size = shm_size
        self.memlock = memlock  # -1: unlimited (pinned memory for NCCL/CUDA); None: engine default
        self.cache_volume_name = self.cache_volume if cache_volume == "default" else cache_volume
        self.environment = {"HF_HUB_OFFLINE": "1", **(environment or {})}
        self.extra_labels = dict(labels or {})
        #: set when a stand-in image plays this engine (recorded in identity and labels)
        self.stands_for = stands_for
        self._client = docker_client
        self._container: Any = None
        self._launching: str | None = None
        self._last_logs = ""

    # -- spec ---------------------------------------------------------------------------------
    @property
    def model_mount(self) -> str:
        """Where the model folder appears inside the container."""
        return f"{MODEL_MOUNT_ROOT}/{self.model_dir.name}"

    @property
    def container_name(self) -> str:
        return f"ablbench-{self.backend}-{self.name}"

    #: the engine's flag naming the model folder (sglang: --model-path, vLLM: --model)
    model_flag = "--model"

    def engine_args(self) -> list[str]:
        """The engine's command-line arguments (model, name, host, port, dtype, extra args)."""
        # extra args come last: argparse lets a later flag override ours (e.g. --dtype)
        return [
            self.model_flag, self.model_mount,
            "--served-model-name", self.name,
            "--host", "0.0.0.0",
            "--port", str(self.container_port),
            "--dtype", "bfloat16",
            *self.extra_args,
        ]

    def spec(self) -> ContainerSpec:
        """The container this server runs as."""
        labels = {
            ROLE_LABEL: ROLE_VALUE,
            "ablbench.backend": self.backend,
            "ablbench.name": self.name,
            "ablbench.model-dir": str(self.model_dir),
            "ablbench.port": str(self.port),
            **({"ablbench.stands-for": self.stands_for} if self.stands_for else {}),
            **self.extra_labels,
        }
        return ContainerSpec(
            name=self.container_name,
            image=self.image,
            command=[*self.launcher, *self.engine_args()],
            entrypoint=None,
            container_port=self.container_port,
            host_port=self.port,
            model_dir=self.model_dir,
            model_mount=self.model_mount,
            cache_volume=self.cache_volume_name,
            environment=self.environment,
            gpus=self.gpus,
            ipc_host=self.ipc_host,
            shm_size=self.shm_size,
            memlock=self.memlock,
            labels=labels,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env(timeout=120)
            except docker.errors.DockerException as exc:
                raise ServerError(f"cannot reach the Docker engine ({exc}); start docker first") from exc
        return self._client

    def _launch(self) -> None:
        import docker

        if not self.model_dir.is_dir():
            raise ServerError(f"model folder {self.model_dir} does not exist")
        spec = self.spec()
        try:
            self.client.images.get(spec.image)
        except docker.errors.ImageNotFound as exc:
            raise ServerError(
                f"image {spec.image} is not present locally: run `docker pull {spec.image}`"
            ) from exc
        try:
            old = self.client.containers.get(spec.name)
        except docker.errors.NotFound:
            old = None
        if old is not None:
            raise ServerError(
                f"a container named {spec.name} already exists ({old.status}): "
                f"stop it with `ablbench serve stop {self.name}`"
            )
        log.info("starting %s: %s %s", spec.name, spec.image, " ".join(spec.command))
        self._launching = spec.name  # an interrupt inside run() must not leave the container behind
        try:
            self._container = self.client.containers.run(**spec.run_kwargs())
        except docker.errors.APIError as exc:
            # a created-but-not-started container (e.g. port taken, no GPU runtime) must not linger
            self._remove_by_name(spec.name)
            raise ServerError(f"docker could not start {spec.name}: {exc.explanation or exc}") from exc

    def _remove_by_name(self, name: str) -> None:
        import docker

        with contextlib.suppress(docker.errors.NotFound):
            self.client.containers.get(name).remove(force=True)

    def _exit_status(self) -> str | None:
        import docker

        if self._container is None:
            return "was never started"
        try:
            self._container.reload()
        except docker.errors.NotFound:
            return "disappeared (container removed)"
        state = self._container.attrs.get("State", {})
        if state.get("Status") in {"exited", "dead"}:
            oom = " (OOM-killed)" if state.get("OOMKilled") else ""
            return f"exited with code {state.get('ExitCode')}{oom}"
        return None

    def logs_tail(self, n: int = 50) -> str:
        import docker

        if self._container is None:
            return tail_lines(self._last_logs, n)
        try:
            text = self._container.logs(tail=n).decode("utf-8", errors="replace")
        except docker.errors.NotFound:
            return tail_lines(self._last_logs, n)
        return tail_lines(text, n)

    def _terminate(self, grace_s: float) -> None:
        import docker

        container, self._container = self._container, None
        launching, self._launching = self._launching, None
        if container is None:
            if launching:
                self._remove_by_name(launching)
            return
        try:
            self._last_logs = container.logs(tail=200).decode("utf-8", errors="replace")
            container.stop(timeout=int(max(1, grace_s)))
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            log.warning("stopping %s failed (%s); removing it by force", container.name, exc)
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)

    def detach_info(self) -> dict[str, Any]:
        return {
            "kind": "container",
            "container_id": self._container.id if self._container is not None else None,
            "container_name": self.container_name,
        }

    # -- identity -----------------------------------------------------------------------------
    def _entry_for_name(self, models: dict[str, Any]) -> dict[str, Any]:
        entries = model_entries(models)
        for entry in entries:
            if entry.get("id") == self.name:
                return entry
        ids = [e.get("id") for e in entries]
        raise ServerError(f"{self.backend} server '{self.name}' lists models {ids}, not '{self.name}'")

    def _mount_source(self) -> str | None:
        if self._container is None:
            return None
        self._container.reload()
        for mount in self._container.attrs.get("Mounts", []):
            if mount.get("Destination") == self.model_mount:
                return mount.get("Source")
        return None

    def _container_facts(self) -> dict[str, Any]:
        source = self._mount_source()
        if source is not None and Path(source).resolve() != self.model_dir:
            raise ServerError(f"container {self.container_name} mounts {source}, not {self.model_dir}")
        image = self._container.image if self._container is not None else None
        return {
            "image": self.image,
            "image_id": getattr(image, "id", None),
            "container": self.container_name,
            "mount_source": source,
            **({"stands_for": self.stands_for} if self.stands_for else {}),
        }


class SglangServer(ContainerServer):
    """``python3 -m sglang.launch_server`` in ``lmsysorg/sglang``."""

    backend = "sglang"
    default_image = SGLANG_IMAGE
    container_port = 30000
    cache_volume = "ablbench-sglang-cache"
    default_launcher = ["python3", "-m", "sglang.launch_server"]
    model_flag = "--model-path"

    def _expected_identity(self, models: dict[str, Any]) -> dict[str, Any]:
        entry = self._entry_for_name(models)
        info = self._get_json("/get_model_info")
        model_path = info.get("model_path")
        if model_path != self.model_mount:
            raise ServerError(
                f"sglang server '{self.name}' loaded {model_path!r}, "
                f"not {self.model_mount!r} ({self.model_dir})"
            )
        return {
            "served_model": entry.get("id"),
            "max_model_len": entry.get("max_model_len"),
            "model_path": model_path,
            **self._container_facts(),
        }


class VllmServer(ContainerServer):
    """The OpenAI-compatible server of ``vllm/vllm-openai`` (engine args after the image name)."""

    backend = "vllm"
    default_image = VLLM_IMAGE
    container_port = 8000
    cache_volume = "ablbench-vllm-cache"
    default_launcher: list[str] = []  # the image's entrypoint is the server

    def _expected_identity(self, models: dict[str, Any]) -> dict[str, Any]:
        entry = self._entry_for_name(models)
        root = entry.get("root")
        if root is not None and root != self.model_mount:
            raise ServerError(f"vLLM server '{self.name}' loaded {root!r}, not {self.model_mount!r}")
        return {
            "served_model": entry.get("id"),
            "max_model_len": entry.get("max_model_len"),
            "model_path": root,
            **self._container_facts(),
        }


def find_server_containers(client: Any, name: str | None = None) -> list[Any]:
    """Containers (running or not) started by ablbench model servers, optionally one name."""
    labels = [f"{ROLE_LABEL}={ROLE_VALUE}"]
    if name:
        labels.append(f"ablbench.name={name}")
    return client.containers.list(all=True, filters={"label": labels})
