"""Task images: base-image mapping, offline fallback, content-hash build cache, serialized builds."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from harness.tasks import load_task
from runners.images import ImageError, ImageOptions, ImageResolver, context_hash, parse_image_map


def _task(root: Path, name: str, dockerfile: str, docker_image: str | None = None) -> Path:
    folder = root / name
    (folder / "environment").mkdir(parents=True)
    (folder / "tests").mkdir()
    (folder / "environment" / "Dockerfile").write_text(dockerfile)
    (folder / "instruction.md").write_text("Do nothing.\n")
    (folder / "tests" / "test.sh").write_text("echo 1 > /logs/verifier/reward.txt\n")
    image_line = f'docker_image = "{docker_image}"\n' if docker_image else ""
    (folder / "task.toml").write_text(
        'version = "1.0"\n[agent]\ntimeout_sec = 30\n[verifier]\ntimeout_sec = 30\n'
        f"[environment]\nallow_internet = false\n{image_line}"
    )
    return folder


def test_parse_image_map():
    assert parse_image_map(["python:3.13-slim=ablbench/base:bookworm", "a=b"]) == {
        "python:3.13-slim": "ablbench/base:bookworm",
        "a": "b",
    }
    for bad in ("nothing", "=x", "x="):
        with pytest.raises(ValueError, match="FROM=TO"):
            parse_image_map([bad])


def test_context_hash_follows_content(tmp_path):
    (tmp_path / "f").write_text("one")
    h1 = context_hash(tmp_path, "FROM x\n")
    assert h1 == context_hash(tmp_path, "FROM x\n")
    assert h1 != context_hash(tmp_path, "FROM y\n")
    (tmp_path / "f").write_text("two")
    assert h1 != context_hash(tmp_path, "FROM x\n")


@pytest.mark.docker
def test_rewrite_maps_and_offline_fallback(docker_client, base_image):
    warnings: list[str] = []
    resolver = ImageResolver(
        docker_client,
        ImageOptions(
            base_image_map={"python:3.13-slim": base_image},
            offline=True,
            fallback_image=base_image,
            warn=warnings.append,
        ),
    )
    text = (
        "FROM python:3.13-slim AS build\nRUN true\nFROM build\n"
        "FROM --platform=linux/amd64 nosuch/image:404\nFROM scratch\n"
    )
    out = resolver.rewrite_dockerfile(text, lambda _m: None)
    lines = out.splitlines()
    assert lines[0] == f"FROM {base_image} AS build"
    assert lines[2] == "FROM build"  # a stage name is left alone
    assert lines[3] == f"FROM --platform=linux/amd64 {base_image}"
    assert lines[4] == "FROM scratch"
    assert len(warnings) == 1 and "nosuch/image:404" in warnings[0]
    online = ImageResolver(docker_client, ImageOptions())
    assert online.rewrite_dockerfile("FROM nosuch/image:404\n", lambda _m: None) == "FROM nosuch/image:404\n"


@pytest.mark.docker
def test_build_is_cached_serialized_and_leaves_task_untouched(docker_client, base_image, tmp_path):
    dockerfile = "FROM nosuch/base:1\nRUN echo built > /built.txt\nWORKDIR /app\n"
    spec = load_task(_task(tmp_path, "img-cache", dockerfile))
    logs: list[str] = []
    lock = threading.Lock()

    def log(m: str) -> None:
        with lock:
            logs.append(m)

    resolver = ImageResolver(docker_client, ImageOptions(base_image_map={"nosuch/base:1": base_image}))
    tags: list[str] = []
    threads = [threading.Thread(target=lambda: tags.append(resolver.resolve(spec, log))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(set(tags)) == 1 and tags[0].startswith("ablbench-task/img-cache:")
        building = [m for m in logs if m.startswith("building ")]
        cached = [m for m in logs if m.startswith("using cached image")]
        assert len(building) <= 1 and len(building) + len(cached) == 3
        out = docker_client.containers.run(tags[0], ["cat", "/built.txt"], remove=True, network_mode="none")
        assert out == b"built\n"
        assert (spec.dockerfile).read_text() == dockerfile  # the task folder is never modified
        # a changed context gives a new tag
        (spec.build_context / "extra.txt").write_text("x")
        new_tag = resolver.resolve(spec)
        assert new_tag != tags[0]
        assert not resolver.exists(tags[0])  # the outdated image is pruned
    finally:
        for img in docker_client.images.list(name="ablbench-task/img-cache"):
            docker_client.images.remove(img.id, force=True)


@pytest.mark.docker
def test_prebuilt_image_used_or_error(docker_client, base_image, tmp_path):
    resolver = ImageResolver(docker_client, ImageOptions(offline=True, fallback_image=base_image))
    logs: list[str] = []
    spec = load_task(_task(tmp_path, "pre-local", "FROM nosuch/x:1\n", docker_image=base_image))
    assert resolver.resolve(spec, logs.append) == base_image
    assert any("using local prebuilt image" in m for m in logs)
    # a missing prebuilt image, offline, no Dockerfile -> the fallback with a warning
    spec2 = dataclasses.replace(spec, docker_image="nosuch/prebuilt:1", dockerfile=None, build_context=None)
    assert resolver.resolve(spec2, logs.append) == base_image
    strict = ImageResolver(docker_client, ImageOptions(offline=True))
    with pytest.raises(ImageError, match="nosuch/prebuilt:1"):
        strict.resolve(spec2)
