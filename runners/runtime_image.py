"""The agent's runtime (tmux, bash) in any task image, without touching the task.

Rules, in order:

1. Probe. A task image is probed once (a throw-away container, ``sh -c``, no network): which
   of the needed tools (``tmux``, ``bash``) it has, and its first package manager among
   ``apt-get``, ``apk``, ``dnf``, ``microdnf``, ``yum``. The answer is cached by image id,
   in memory and on disk (an image id names immutable content).
2. Ready. An image that has every needed tool is used as it is.
3. Bootstrap. Otherwise a derived image is built: ``FROM <image id>``, ``USER root``, one
   ``RUN`` that installs the missing tools with the image's own package manager and checks
   them, then the image's original ``USER`` again (WORKDIR, ENV, ENTRYPOINT are inherited).
   Its tag is ``ablbench-runtime:<key>``, the key being sha256 over the task image's id, the
   recipe version (:data:`RECIPE_VERSION`) and the tools installed: k attempts and later runs
   reuse it, and an edited task image gets a new one. Builds of one key are serialized (a
   thread lock and a file lock, so parallel runs build it once). The build's output goes to
   the trial's log, prefixed ``runtime |``.
4. Cannot run. No ``sh``, no package manager, or an install that fails (usually: no network
   to the package mirror) raise :class:`RuntimeImageError`, a one-line message naming what is
   missing and the fix (add tmux to the task's Dockerfile, or ``--base-image-map`` its image
   to one that has it). The trial records it as an ``infra_error``. A failed build is not
   retried by later trials of the same run (they fail at once with the same message).
5. ``check`` says the same without building anything (``ablbench tasks check --images``,
   :mod:`runners.task_readiness`):
   ready, needs bootstrap, cannot run, or unknown (image not present locally and its name
   says nothing about its package manager).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import docker
import docker.errors
from filelock import FileLock

from ablbench.paths import cache_dir
from runners.image_errors import ImageError
from runners.keyed_locks import KeyedLocks

Log = Callable[[str], None]
#: bump when the Dockerfile recipe below changes: every derived image is rebuilt
RECIPE_VERSION = 1
TAG_REPO = "ablbench-runtime"
#: what the terminal (tmux) and the verifier (bash) need inside the task container
AGENT_TOOLS = ("tmux", "bash")
PACKAGE_MANAGERS = ("apt-get", "apk", "dnf", "microdnf", "yum")
INSTALL = {
    "apt-get": "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {pkgs}"
    " && rm -rf /var/lib/apt/lists/*",
    "apk": "apk add --no-cache {pkgs}",
    "dnf": "dnf install -y {pkgs} && dnf clean all",
    "microdnf": "microdnf install -y {pkgs} && microdnf clean all",
    "yum": "yum install -y {pkgs} && yum clean all",
}
_VERIFY = {"tmux": "tmux -V", "bash": "bash -c true"}
_PROBE_SH = (
    "for t in tmux bash; do command -v $t >/dev/null 2>&1 && echo \"has $t\"; done; "
    "for p in " + " ".join(PACKAGE_MANAGERS) + "; do command -v $p >/dev/null 2>&1 && { echo \"pm $p\"; break; }; done; "
    "[ -r /etc/os-release ] && . /etc/os-release && echo \"os ${ID:-?}\"; true"
)
Status = Literal["ready", "needs bootstrap", "cannot run", "unknown"]


class RuntimeImageError(ImageError):
    """The agent's runtime cannot be provided in a task image (an infrastructure error)."""


@dataclass(frozen=True)
class Probe:
    """What a task image holds."""

    image_id: str
    has_sh: bool
    tools: tuple[str, ...] = ()
    package_manager: str | None = None
    os: str | None = None

    def missing(self, needs: tuple[str, ...]) -> tuple[str, ...]:
        """The needed tools this image lacks."""
        return tuple(t for t in needs if t not in self.tools)


@dataclass(frozen=True)
class Readiness:
    """A task image's state for the agent runtime (``tasks check --images``)."""

    status: Status
    detail: str


def runtime_key(image_id: str, tools: tuple[str, ...]) -> str:
    """The content key of a derived image: sha256 over image id, recipe version and tools."""
    raw = f"{image_id}\0recipe-{RECIPE_VERSION}\0{','.join(sorted(tools))}"
    return hashlib.sha256(raw.encode()).hexdigest()


def runtime_tag(image_id: str, tools: tuple[str, ...]) -> str:
    """``ablbench-runtime:<key>`` for a task image id and the tools added to it."""
    return f"{TAG_REPO}:{runtime_key(image_id, tools)[:24]}"


def recipe(image_id: str, package_manager: str, tools: tuple[str, ...], user: str = "") -> str:
    """The derived image's Dockerfile (rule 3)."""
    install = INSTALL[package_manager].format(pkgs=" ".join(tools))
    verify = " && ".join(_VERIFY[t] for t in tools)
    lines = [f"FROM {image_id}", "USER root", f"RUN {install} && {verify}"]
    if user and user not in ("root", "0", "0:0"):
        lines.append(f"USER {user}")
    return "\n".join(lines) + "\n"


def fix_hint(ref: str) -> str:
    """The one-line fix for an image that cannot host the agent's runtime."""
    # an image built from the task's Dockerfile is mapped through its FROM line, not its own tag
    source = "its base image" if ref.startswith("ablbench-task/") else "the image"
    target = "FROM" if ref.startswith("ablbench-task/") else ref
    return (f"add tmux and bash to the task's Dockerfile, or map {source} to one that has them "
            f"with --base-image-map {target}=IMAGE")


class AgentRuntime:
    """Provides the needed tools in task images (see the module doc)."""

    def __init__(
        self, client: docker.DockerClient, *, tools: tuple[str, ...] = AGENT_TOOLS,
        cache_root: Path | None = None, build_network: str | None = None, install_timeout_s: float = 600.0,
    ) -> None:
        self.client = client
        self.tools = tuple(tools)
        self.cache_root = cache_root or cache_dir() / "runtime"
        #: docker build network mode for the install (None: the engine's default, bridge)
        self.build_network = build_network
        self.install_timeout_s = install_timeout_s
        self._probes: dict[str, Probe] = {}
        self._failed: dict[str, str] = {}  # tag -> the error of its failed build (this run)
        self._lock_for = KeyedLocks()

    # -- probing -------------------------------------------------------------------------
    def image_id(self, ref: str) -> str:
        """The local image id of ``ref`` (ImageError when absent)."""
        try:
            return str(self.client.images.get(ref).id)
        except docker.errors.ImageNotFound:
            raise ImageError(f"image {ref} is not present locally") from None

    def probe(self, ref: str) -> Probe:
        """Rule 1: the tools and package manager of the local image ``ref`` (cached by id)."""
        image_id = self.image_id(ref)
        with self._lock_for(f"probe:{image_id}"):
            if image_id in self._probes:
                return self._probes[image_id]
            disk = self.cache_root / "probes" / f"{image_id.split(':')[-1]}.json"
            try:
                data = json.loads(disk.read_text(encoding="utf-8"))
                found = Probe(image_id, bool(data["has_sh"]), tuple(data.get("tools") or ()),
                              data.get("package_manager"), data.get("os"))
            except (OSError, ValueError, TypeError, KeyError):
                found = self._run_probe(image_id)
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(f".{secrets.token_hex(4)}.tmp")
                tmp.write_text(json.dumps(asdict(found)), encoding="utf-8")
                tmp.replace(disk)
            self._probes[image_id] = found
            return found

    def _run_probe(self, image_id: str) -> Probe:
        name = f"ablbench-probe-{secrets.token_hex(4)}"
        container = None
        try:
            container = self.client.containers.create(
                image_id, entrypoint=["sh", "-c", _PROBE_SH], command=[], name=name, user="0",
                network_mode="none", labels={"ablbench.runtime-probe": "1"},
            )
            container.start()
            container.wait(timeout=60)
            out = container.logs().decode("utf-8", "replace")
        except docker.errors.ImageNotFound:
            raise
        except docker.errors.APIError as exc:
            text = str(exc)
            if re.search(r"executable file not found|no such file or directory", text, re.IGNORECASE):
                return Probe(image_id, has_sh=False)
            raise ImageError(f"cannot probe image {image_id[:19]}: {text.splitlines()[0][:200]}") from exc
        except Exception as exc:  # requests timeouts: a probe that hangs
            raise ImageError(f"probing image {image_id[:19]} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if container is not None:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
        tools = tuple(t for t in AGENT_TOOLS if f"has {t}" in out.split("\n"))
        pm = re.search(r"^pm (\S+)$", out, re.MULTILINE)
        os_id = re.search(r"^os (\S+)$", out, re.MULTILINE)
        return Probe(image_id, True, tools, pm.group(1) if pm else None, os_id.group(1) if os_id else None)

    # -- providing -----------------------------------------------------------------------
    def ensure(self, ref: str, log: Log = lambda _m: None) -> str:
        """Rules 2-4: ``ref`` itself when it has the tools, else its (cached) derived image."""
        image_id = self.image_id(ref)
        # a derived image already built for this content needs no probe at all
        for missing in self._candidate_sets():
            tag = runtime_tag(image_id, missing)
            if self._exists(tag):
                log(f"using cached runtime image {tag} ({', '.join(missing)} added to {ref})")
                return tag
        probe = self.probe(ref)
        if not probe.has_sh:
            raise RuntimeImageError(f"image {ref} has no /bin/sh, so the agent's terminal cannot run in it: {fix_hint(ref)}")
        missing = probe.missing(self.tools)
        if not missing:
            log(f"image {ref} has {', '.join(self.tools)}: no runtime bootstrap needed")
            return ref
        if probe.package_manager is None:
            raise RuntimeImageError(
                f"image {ref} lacks {', '.join(missing)} and has no package manager "
                f"({', '.join(PACKAGE_MANAGERS)}) to install it: {fix_hint(ref)}"
            )
        tag = runtime_tag(image_id, missing)
        self.cache_root.mkdir(parents=True, exist_ok=True)
        with self._lock_for(tag), FileLock(str(self.cache_root / f"{tag.split(':')[-1]}.lock")):
            if self._exists(tag):
                log(f"using cached runtime image {tag} ({', '.join(missing)} added to {ref})")
                return tag
            if tag in self._failed:
                raise RuntimeImageError(self._failed[tag])
            try:
                self._build(ref, image_id, probe.package_manager, missing, tag, log)
            except RuntimeImageError as exc:
                self._failed[tag] = str(exc)
                raise
        return tag

    def _candidate_sets(self) -> list[tuple[str, ...]]:
        """Every non-empty subset of the needed tools, in order (a derived image adds one of them)."""
        subsets: list[tuple[str, ...]] = []
        n = len(self.tools)
        for mask in range(1, 2**n):
            subsets.append(tuple(t for i, t in enumerate(self.tools) if mask >> i & 1))
        return sorted(subsets, key=len, reverse=True)

    def _exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _build(self, ref: str, image_id: str, pm: str, missing: tuple[str, ...], tag: str, log: Log) -> None:
        user = (self.client.images.get(image_id).attrs.get("Config") or {}).get("User") or ""
        dockerfile = recipe(image_id, pm, missing, user)
        log(f"runtime bootstrap: {ref} lacks {', '.join(missing)}; installing with {pm} into {tag}")
        t0 = time.monotonic()
        tail: list[str] = []
        kwargs: dict = {}
        if self.build_network:
            kwargs["network_mode"] = self.build_network
        try:
            stream = self.client.api.build(
                fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True, decode=True,
                pull=False, timeout=int(self.install_timeout_s),
                labels={"ablbench.runtime.source": ref, "ablbench.runtime.source_id": image_id,
                        "ablbench.runtime.recipe": str(RECIPE_VERSION)},
                **kwargs,
            )
            for chunk in stream:
                for line in str(chunk.get("stream", "")).splitlines():
                    if line.strip():
                        log(f"runtime | {line}")
                        tail = [*tail[-4:], line.strip()]
                if "error" in chunk:
                    # the package manager's own last error line says more than "returned a non-zero code"
                    why = next((t for t in reversed(tail) if t.startswith(("E:", "ERROR:", "error:"))),
                               chunk["error"].strip().splitlines()[-1])[:200]
                    raise RuntimeImageError(
                        f"installing {', '.join(missing)} into {ref} with {pm} failed "
                        f"(no network to its package mirror?): {why}; {fix_hint(ref)}"
                    )
        except docker.errors.APIError as exc:
            raise RuntimeImageError(f"runtime bootstrap of {ref} failed: {str(exc)[:200]}; {fix_hint(ref)}") from exc
        except RuntimeImageError:
            raise
        except Exception as exc:  # requests timeouts etc.
            raise RuntimeImageError(
                f"runtime bootstrap of {ref} failed ({type(exc).__name__}, limit {self.install_timeout_s:.0f}s): "
                f"{fix_hint(ref)}"
            ) from exc
        if not self._exists(tag):
            raise RuntimeImageError(f"runtime bootstrap of {ref} produced no image ({' | '.join(tail)[-200:]})")
        log(f"runtime bootstrap: built {tag} in {time.monotonic() - t0:.1f}s")

    # -- checking (no builds) ------------------------------------------------------------
    def readiness(self, ref: str) -> Readiness:
        """Rule 5 for a local image: probe it."""
        image_id = self.image_id(ref)
        for missing in self._candidate_sets():
            if self._exists(runtime_tag(image_id, missing)):
                return Readiness("ready", f"derived image {runtime_tag(image_id, missing)} is cached")
        probe = self.probe(ref)
        if not probe.has_sh:
            return Readiness("cannot run", "no /bin/sh in the image")
        missing = probe.missing(self.tools)
        if not missing:
            return Readiness("ready", f"has {', '.join(self.tools)}")
        if probe.package_manager is None:
            return Readiness("cannot run", f"lacks {', '.join(missing)} and has no package manager")
        return Readiness("needs bootstrap", f"lacks {', '.join(missing)}; installs with {probe.package_manager}")


# -- inference for images that are not present locally ---------------------------------------

_APK = re.compile(r"(^|[/:_-])alpine")
_RPM = re.compile(r"(^|/)(fedora|centos|rockylinux|almalinux|amazonlinux|oraclelinux|ubi\d*(-minimal)?|redhat/)")
_NONE = re.compile(r"(^scratch$|distroless|(^|/)busybox(:|$))")
_APT = re.compile(
    r"(^|/)(debian|ubuntu|python|node|golang|rust|openjdk|eclipse-temurin|buildpack-deps|gcc|r-base|perl|ruby|php|"
    r"nvidia/cuda|pytorch/pytorch|continuumio/miniconda3|rocker/|kalilinux/)|bookworm|bullseye|buster|jammy|noble|focal"
)
INSTALLS_TMUX = re.compile(r"^\s*RUN\b.*\b(apt-get|apt|apk|dnf|microdnf|yum)\b.*\btmux\b", re.IGNORECASE | re.MULTILINE)


def infer_from_name(ref: str, dockerfile_text: str | None = None) -> Readiness:
    """Rule 5 for an image that is not present locally: judged by its name (and the Dockerfile
    that builds it, when it installs tmux itself)."""
    name = ref.lower()
    if dockerfile_text and INSTALLS_TMUX.search(dockerfile_text):
        return Readiness("ready", "its Dockerfile installs tmux")
    if _NONE.search(name):
        return Readiness("cannot run", f"{ref} has no package manager (scratch/distroless/busybox)")
    if _APK.search(name):
        return Readiness("needs bootstrap", f"{ref} is Alpine: apk (inferred from the name)")
    if _RPM.search(name):
        return Readiness("needs bootstrap", f"{ref} is RPM-based: dnf/microdnf/yum (inferred from the name)")
    if _APT.search(name):
        return Readiness("needs bootstrap", f"{ref} is Debian/Ubuntu-based: apt-get (inferred from the name)")
    return Readiness("unknown", f"{ref} is not present locally; pull it (or --base-image-map it) to check")


_FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


def final_base(dockerfile_text: str) -> str | None:
    """The image the final stage of a Dockerfile starts from (stage names followed)."""
    stages: dict[str, str] = {}
    last = None
    for image, alias in _FROM_RE.findall(dockerfile_text):
        base = stages.get(image.lower(), image)
        if alias:
            stages[alias.lower()] = base
        last = base
    return last
