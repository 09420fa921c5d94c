"""Getting the image a task runs in: a prebuilt one, or a cached build of its environment.

Order: the task's ``docker_image`` (after ``--base-image-map``) when it is present locally or
can be pulled (never pulled with ``offline``); otherwise the task's build context is built
and tagged ``ablbench-task/<name>:<content hash>``, so an unchanged folder is built once and
then reused. Builds of one tag are serialized (a thread lock plus a file lock for other
processes). Base images are rewritten in a temporary copy of the Dockerfile, never in the
task folder; with ``offline`` any base image that is not present locally becomes the
fallback image (a warning says so).
With ``runtime_tools`` set, the image found is then passed through the agent-runtime bootstrap
(``runners.runtime_image``): an image lacking those tools gets a cached derived image.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from filelock import FileLock

from ablbench.task_spec import TaskSpec
from runners.image_errors import ImageError
from runners.keyed_locks import KeyedLocks
from runners.runtime_image import AgentRuntime

Log = Callable[[str], None]
TAG_REPO = "ablbench-task"
_FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE)


def parse_image_map(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["FROM=TO", ...]`` -> ``{FROM: TO}``; raises ValueError naming a malformed pair."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"--base-image-map {pair!r} is not FROM=TO (e.g. python:3.13-slim=ablbench/base:bookworm)")
        mapping[src.strip()] = dst.strip()
    return mapping


@dataclass
class ImageOptions:
    """How images are found: base-image rewrites, offline mode and its fallback image."""

    base_image_map: dict[str, str] = field(default_factory=dict)
    offline: bool = False
    fallback_image: str | None = None
    cache_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "ablbench-image-locks")
    #: called once per distinct warning (e.g. an offline fallback), besides the trial log
    warn: Callable[[str], None] | None = None
    #: tools the agent needs in the task container (e.g. ("tmux", "bash")); () = no bootstrap
    runtime_tools: tuple[str, ...] = ()


def _normalize(ref: str) -> str:
    return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else f"{ref}:latest"


def context_hash(context: Path, dockerfile_text: str) -> str:
    """sha256 over every file below ``context`` (path, mode and bytes) and the final Dockerfile."""
    h = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(context).as_posix()
        h.update(rel.encode() + b"\0")
        if path.is_symlink():
            h.update(b"L" + str(path.readlink()).encode())
        else:
            h.update(oct(path.stat().st_mode & 0o777).encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(b"\0DOCKERFILE\0" + dockerfile_text.encode())
    return h.hexdigest()


def sanitize_repo(name: str) -> str:
    """A task name as a valid image repository component."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-")
    return cleaned[:100] or "task"


class ImageResolver:
    """Resolves a TaskSpec to a local image name, building and caching where needed."""

    def __init__(self, client: docker.DockerClient, options: ImageOptions | None = None) -> None:
        self.client = client
        self.options = options or ImageOptions()
        self._lock_for = KeyedLocks()
        self._guard = threading.Lock()
        self._warned: set[str] = set()
        self._pull_failed: set[str] = set()
        self._runtime: AgentRuntime | None = None

    # -- small helpers -------------------------------------------------------------------
    def exists(self, ref: str) -> bool:
        """True when ``ref`` is present in the local engine."""
        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError:
            return False

    def _warn(self, message: str, log: Log) -> None:
        log(f"WARNING: {message}")
        with self._guard:
            fresh = message not in self._warned
            self._warned.add(message)
        if fresh and self.options.warn is not None:
            self.options.warn(message)

    def _try_pull(self, ref: str, log: Log) -> bool:
        if self.options.offline or ref in self._pull_failed:
            return False
        log(f"pulling {ref}")
        try:
            repo, _, tag = _normalize(ref).rpartition(":")
            self.client.images.pull(repo, tag=tag)
            return True
        except (docker.errors.APIError, docker.errors.ImageNotFound) as exc:
            log(f"pull of {ref} failed: {str(exc).splitlines()[0][:200]}")
            self._pull_failed.add(ref)  # do not retry it for every trial of the run
            return False

    def map_base(self, ref: str, log: Log, *, stages: set[str] = frozenset()) -> str:
        """Apply ``--base-image-map`` and, offline, the fallback for base images not present locally."""
        if ref.lower() == "scratch" or ref in stages or "$" in ref:
            return ref
        mapped = self.options.base_image_map.get(ref) or self.options.base_image_map.get(_normalize(ref), ref)
        if mapped != ref:
            log(f"base image {ref} -> {mapped} (--base-image-map)")
        fallback = self.options.fallback_image
        if self.options.offline and fallback and mapped != fallback and not self.exists(mapped):
            self._warn(f"offline and base image {mapped} is not present locally: using {fallback} instead", log)
            return fallback
        return mapped

    def rewrite_dockerfile(self, text: str, log: Log) -> str:
        """The Dockerfile with every ``FROM`` image passed through :meth:`map_base`."""
        stages: set[str] = set()
        out = []
        for line in text.splitlines():
            match = _FROM.match(line)
            if match:
                head, flags, image, rest = match.groups()
                new = self.map_base(image, log, stages=stages)
                alias = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
                if alias:
                    stages.add(alias.group(1))
                line = f"{head}{flags}{new}{rest}"
            out.append(line)
        return "\n".join(out) + "\n"

    # -- the public entry point ----------------------------------------------------------
    def resolve(self, spec: TaskSpec, log: Log = lambda _m: None) -> str:
        """The name of a local image to run ``spec`` in (pulling or building it if needed), with
        the agent's runtime tools provided when ``runtime_tools`` asks for them."""
        image = self.task_image(spec, log)
        if not self.options.runtime_tools:
            return image
        return self.runtime().ensure(image, log)

    def runtime(self) -> AgentRuntime:
        """The agent-runtime bootstrap shared by every trial of this resolver."""
        with self._guard:
            if self._runtime is None:
                self._runtime = AgentRuntime(self.client, tools=self.options.runtime_tools)
            return self._runtime

    def task_image(self, spec: TaskSpec, log: Log = lambda _m: None) -> str:
        """The task's own image (prebuilt, pulled or built), before any runtime bootstrap."""
        if spec.docker_image:
            ref = self.options.base_image_map.get(spec.docker_image, spec.docker_image)
            if ref != spec.docker_image:
                log(f"prebuilt image {spec.docker_image} -> {ref} (--base-image-map)")
            with self._lock_for(f"pull:{ref}"):
                if self.exists(ref):
                    log(f"using local prebuilt image {ref}")
                    return ref
                if self._try_pull(ref, log):
                    return ref
            if spec.dockerfile is None:
                if self.options.offline and self.options.fallback_image:
                    self._warn(
                        f"offline, prebuilt image {ref} is not present locally and the task has "
                        f"no Dockerfile: using {self.options.fallback_image}",
                        log,
                    )
                    return self.options.fallback_image
                raise ImageError(
                    f"image {ref} is neither present locally nor pullable and task "
                    f"{spec.name} has no Dockerfile to build"
                )
            log(f"prebuilt image {ref} unavailable: building {spec.dockerfile.name}")
        if spec.dockerfile is None:
            raise ImageError(f"task {spec.name} has neither a docker_image nor a Dockerfile")
        return self.build(spec, log)

    def build(self, spec: TaskSpec, log: Log = lambda _m: None) -> str:
        """Build the task's context (cached by content hash) and return the tag."""
        assert spec.dockerfile is not None
        context = spec.build_context or spec.dockerfile.parent
        text = self.rewrite_dockerfile(spec.dockerfile.read_text(encoding="utf-8"), log)
        tag = self.build_tag(spec, text)
        with self._lock_for(tag), self._file_lock(tag):
            if self.exists(tag):
                log(f"using cached image {tag}")
                return tag
            log(f"building {tag} from {context}")
            with tempfile.TemporaryDirectory(prefix="ablbench-dockerfile-") as tmp:
                dockerfile = Path(tmp) / "Dockerfile"
                dockerfile.write_text(text, encoding="utf-8")
                self._build(context, dockerfile, tag, spec, log)
            self._prune_older(tag, log)
        return tag

    @staticmethod
    def build_tag(spec: TaskSpec, dockerfile_text: str) -> str:
        """The cache tag of the task's build: ``ablbench-task/<name>:<content hash>``."""
        assert spec.dockerfile is not None
        context = spec.build_context or spec.dockerfile.parent
        return f"{TAG_REPO}/{sanitize_repo(spec.name)}:{context_hash(context, dockerfile_text)[:20]}"

    def _prune_older(self, tag: str, log: Log) -> None:
        """Remove this task's images of earlier folder contents (unless a container uses them)."""
        repo = tag.rsplit(":", 1)[0]
        try:
            images = self.client.images.list(name=repo)
        except docker.errors.APIError:
            return
        for image in images:
            for old in image.tags:
                if old != tag and old.rsplit(":", 1)[0] == repo:
                    try:
                        self.client.images.remove(old)
                        log(f"removed outdated image {old}")
                    except docker.errors.APIError:
                        pass  # in use by a running trial: leave it

    def _file_lock(self, tag: str):
        self.options.cache_root.mkdir(parents=True, exist_ok=True)
        path = self.options.cache_root / (hashlib.sha1(tag.encode()).hexdigest()[:16] + ".lock")
        return FileLock(str(path))

    def _build(self, context: Path, dockerfile: Path, tag: str, spec: TaskSpec, log: Log) -> None:
        try:
            stream = self.client.api.build(
                path=str(context),
                dockerfile=str(dockerfile),
                tag=tag,
                rm=True,
                forcerm=True,
                decode=True,
                timeout=max(60, int(spec.build_timeout_s)),
                pull=False,
                labels={"ablbench.task": spec.name},
            )
            for chunk in stream:
                if "stream" in chunk:
                    for line in chunk["stream"].splitlines():
                        if line.strip():
                            log(f"build | {line}")
                if "error" in chunk:
                    raise ImageError(f"docker build of {spec.name} failed: {chunk['error'].strip()[:500]}")
        except docker.errors.APIError as exc:
            raise ImageError(f"docker build of {spec.name} failed: {exc}") from exc
        except Exception as exc:  # requests timeouts etc.
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"docker build of {spec.name} failed: {type(exc).__name__}: {exc}") from exc
        if not self.exists(tag):
            raise ImageError(f"docker build of {spec.name} produced no image {tag}")
