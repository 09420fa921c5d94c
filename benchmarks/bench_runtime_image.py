"""What the agent-runtime bootstrap (runners.runtime_image) adds to a trial's image phase.

On the raw debootstrap image (no tmux): the first trial's bootstrap (probe + derived-image
build with apt-get, which needs the Debian mirror), then a cached one (a fresh AgentRuntime,
as in a later run: one tag lookup). On an image that already has tmux: the first probe (a
throw-away container) and the cached probe (memory, then disk). Each case is repeated
``--repeat`` times on a fresh image id (a LABEL layer), so nothing is cached by accident.

    .venv/bin/python benchmarks/bench_runtime_image.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import docker

from ablbench.paths import BASE_IMAGE, DEBIAN_IMAGE
from runners.runtime_image import AgentRuntime


def fresh_image(client: docker.DockerClient, base: str) -> str:
    """A new image id on top of ``base`` (one LABEL), so no probe or derived image exists for it."""
    tag = f"ablbench-bench-runtime:{uuid.uuid4().hex[:10]}"
    client.images.build(fileobj=io.BytesIO(f"FROM {base}\nLABEL bench={tag}\n".encode()), tag=tag,
                        rm=True, forcerm=True)  # docker-py keeps the step's container by default
    return tag


def timed(client: docker.DockerClient, cache: Path, ref: str, made: list[str]) -> float:
    """Seconds one ``ensure`` of ``ref`` takes with a fresh AgentRuntime (as a new run has)."""
    t0 = time.perf_counter()
    out = AgentRuntime(client, cache_root=cache).ensure(ref)
    took = time.perf_counter() - t0
    if out != ref:
        made.append(out)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    rows: dict[str, list[float]] = {k: [] for k in ("raw first", "raw cached", "ready first", "ready cached")}
    made: list[str] = []
    try:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                cache = Path(tmp)
                for kind, base in (("raw", DEBIAN_IMAGE), ("ready", BASE_IMAGE)):
                    ref = fresh_image(client, base)
                    made.append(ref)
                    rows[f"{kind} first"].append(timed(client, cache, ref, made))
                    rows[f"{kind} cached"].append(timed(client, cache, ref, made))
    finally:
        for ref in reversed(made):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(ref, force=True)
    print(f"agent-runtime bootstrap, {args.repeat} repeat(s) (seconds: median, min, max)")
    for name, values in rows.items():
        print(f"  {name:13s} {statistics.median(values):7.2f} {min(values):7.2f} {max(values):7.2f}")
    print("raw = ablbench/debian:bookworm + a label (no tmux): first = probe + apt-get install into a derived image")
    print("ready = ablbench/base:bookworm + a label (has tmux, bash): first = one probe container")


if __name__ == "__main__":
    main()
