"""``ablbench tasks check --images``: which image each task would run in, and whether the agent's
runtime can be provided there, without pulling or building anything.

Rules, in order:
1. The image is found as :class:`runners.images.ImageResolver` would find it (``--base-image-map``
   and ``--offline`` applied); a local image is probed (:class:`runners.runtime_image.AgentRuntime`).
2. An image that is not present locally is judged by its Dockerfile (installs tmux) or its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ablbench.task_spec import TaskSpec
from runners.images import ImageResolver
from runners.runtime_image import INSTALLS_TMUX, AgentRuntime, Status, final_base, infer_from_name


@dataclass
class TaskReadiness:
    """One row of ``ablbench tasks check --images``."""

    task: str
    image: str
    status: Status
    detail: str
    notes: list[str] = field(default_factory=list)


def check_task(spec: TaskSpec, resolver: ImageResolver, runtime: AgentRuntime) -> TaskReadiness:
    """Rule 5 for one task: which image it would run in and whether the runtime can be provided
    there; nothing is pulled or built (``--base-image-map`` and ``--offline`` are applied)."""
    opts = resolver.options
    notes: list[str] = []

    def local(ref: str, why: str = "") -> TaskReadiness:
        r = runtime.readiness(ref)
        return TaskReadiness(spec.name, ref, r.status, r.detail + why, notes)

    if spec.docker_image:
        ref = opts.base_image_map.get(spec.docker_image, spec.docker_image)
        if resolver.exists(ref):
            return local(ref)
        if spec.dockerfile is None:
            if opts.offline and opts.fallback_image and resolver.exists(opts.fallback_image):
                return local(opts.fallback_image, f" (offline: {ref} is absent, the fallback is used)")
            r = infer_from_name(ref)
            return TaskReadiness(spec.name, ref, r.status, r.detail, notes)
        notes.append(f"prebuilt {ref} absent: judged by its Dockerfile")
    if spec.dockerfile is None:
        return TaskReadiness(spec.name, "-", "cannot run", "neither a docker_image nor a Dockerfile", notes)
    text = resolver.rewrite_dockerfile(spec.dockerfile.read_text(encoding="utf-8"), lambda _m: None)
    tag = resolver.build_tag(spec, text)
    if resolver.exists(tag):
        return local(tag)
    base = final_base(text) or "?"
    if INSTALLS_TMUX.search(text):
        return TaskReadiness(spec.name, f"build FROM {base}", "ready", "its Dockerfile installs tmux", notes)
    if base.lower() != "scratch" and resolver.exists(base):
        r = runtime.readiness(base)
        return TaskReadiness(spec.name, f"build FROM {base}", r.status, r.detail, notes)
    r = infer_from_name(base, text)
    return TaskReadiness(spec.name, f"build FROM {base}", r.status, r.detail, notes)
