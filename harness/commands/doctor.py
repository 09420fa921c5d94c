"""``ablbench doctor``: one line per prerequisite, with the fix for each missing one."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import sys
from dataclasses import dataclass

from cyclopts import App
from rich.console import Console

from ablbench.paths import BASE_IMAGE, embedded_model_dir
from harness.errors import Exit

SGLANG_IMAGE_PREFIX = "lmsysorg/sglang"


@dataclass
class Check:
    """One prerequisite: its state, a detail line, and the fix when it is missing."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def run_checks() -> list[Check]:
    """Inspect the machine; never raises."""
    checks = [
        Check("python", sys.version_info >= (3, 11), sys.version.split()[0], "install Python >= 3.11"),
    ]
    for dist, fix in (("torch", "pip install torch==2.13.0"), ("transformers", "pip install 'transformers>=5'")):
        v = _version(dist)
        checks.append(Check(dist, v is not None, v or "not installed", f"{fix} (or run `make test`)"))
    serve_ok = _version("fastapi") is not None and _version("uvicorn") is not None
    checks.append(Check("transformers serve", serve_ok, "installed" if serve_ok else "missing",
                        "pip install 'ablbench[serve]'"))
    checks.append(_llama_cpp_check())

    client, engine_detail = None, ""
    try:
        import docker

        client = docker.from_env(timeout=10)
        engine_detail = f"engine {client.version().get('Version', '?')}"
    except Exception as exc:  # noqa: BLE001 - anything here means "no engine"
        engine_detail = str(exc).splitlines()[0][:100]
        client = None
    checks.append(Check("docker engine", client is not None, engine_detail,
                        "run scripts/setup.sh (installs docker.io and starts dockerd)"))
    images = []
    if client is not None:
        try:
            images = [t for img in client.images.list() for t in img.tags]
        except Exception:  # noqa: BLE001
            images = []
    checks.append(Check("base image", BASE_IMAGE in images, BASE_IMAGE if BASE_IMAGE in images else "missing",
                        "run scripts/setup.sh (debootstrap + docker import + build)"))

    model = embedded_model_dir()
    model_ok = (model / "model.safetensors").is_file()
    checks.append(Check("bundled model", model_ok, str(model) if model_ok else "not materialized",
                        "ablbench model embedded"))
    checks.append(_bundled_gguf_check())

    gpu = shutil.which("nvidia-smi") is not None
    cpu_note = "none (CPU: llama.cpp for GGUF files, transformers serve for HF folders)"
    checks.append(Check("gpu", gpu, "nvidia-smi found" if gpu else cpu_note,
                        "optional: sglang/vLLM need an NVIDIA GPU", required=False))
    sglang = [t for t in images if t.startswith(SGLANG_IMAGE_PREFIX)]
    checks.append(Check("sglang image", bool(sglang), ", ".join(sglang) or "absent",
                        "optional: docker pull lmsysorg/sglang:v0.5.19-cu129 on a GPU machine", required=False))
    return checks


def _llama_cpp_check() -> Check:
    """llama-cpp-python with its server extra: the CPU backend for GGUF files."""
    from runners.servers.llamacpp import cpu_threads, default_threads, llama_cpp_installed

    version = _version("llama_cpp_python")
    ok = version is not None and llama_cpp_installed()
    detail = f"llama-cpp-python {version} (server), {default_threads()} of {cpu_threads()} CPUs" if ok else (
        f"llama-cpp-python {version} without its server extra" if version else "not installed")
    return Check("llama.cpp", ok, detail, "run scripts/setup.sh (builds llama-cpp-python and its server extra once, then "
                 "reuses the cached wheel)")


def _bundled_gguf_check() -> Check:
    from ablbench.errors import AblbenchError
    from harness.embedded_model import gguf_path

    try:
        return Check("bundled GGUF", True, str(gguf_path()))
    except AblbenchError as exc:
        return Check("bundled GGUF", False, "missing", str(exc).split(" -- ")[-1])


def register(app: App) -> None:
    """Add the ``doctor`` verb."""

    @app.command(name="doctor")
    def doctor() -> None:
        """Check every prerequisite; exit 1 if a required one is missing."""
        console = Console(highlight=False, soft_wrap=True)
        checks = run_checks()
        for c in checks:
            mark = "[green]OK  [/]" if c.ok else ("[red]MISS[/]" if c.required else "[yellow]no  [/]")
            fix = "" if c.ok else f"  [dim]fix: {c.fix}[/]"
            console.print(f"{mark} {c.name:<20} {c.detail}{fix}")
        if any(c.required and not c.ok for c in checks):
            raise Exit(1)
