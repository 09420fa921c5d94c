"""The exact sglang and vLLM container specs, checked against what their documentation requires.

sglang (docs "Install SGLang / Method 3: Using docker"): ``docker run --gpus all --shm-size ...
-p 30000:30000 -v ...:/root/.cache/... --ipc=host lmsysorg/sglang:<tag> python3 -m
sglang.launch_server --model-path ... --host 0.0.0.0 --port 30000``. vLLM ("Using Docker"):
``docker run --gpus all -v ...:/root/.cache/... -p 8000:8000 --ipc=host vllm/vllm-openai:<tag>
--model ...`` with engine args after the image name. Ours add: port on 127.0.0.1 only, the
model folder read-only, memlock unlimited, bf16, a served name, pinned tags.
"""

from __future__ import annotations

import os
import stat

import pytest

from harness.servers import default_backend
from runners.servers import (
    SGLANG_IMAGE,
    VLLM_IMAGE,
    ServerError,
    SglangServer,
    TransformersServer,
    VllmServer,
    free_port,
    make_server,
)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "Qwen3-8B-abliterated"
    path.mkdir()
    return path


def test_sglang_spec(folder):
    server = make_server("sglang", folder, port=40001, extra_args=["--context-length", "32768",
                                                                     "--mem-fraction-static", "0.85"])
    assert isinstance(server, SglangServer)
    kw = server.spec().run_kwargs()
    assert kw["image"] == SGLANG_IMAGE == "lmsysorg/sglang:v0.5.19-cu129"  # pinned, CUDA-12 build
    assert kw["command"] == [
        "python3", "-m", "sglang.launch_server",
        "--model-path", "/models/Qwen3-8B-abliterated",
        "--served-model-name", "Qwen3-8B-abliterated",
        "--host", "0.0.0.0",  # required inside a container
        "--port", "30000",
        "--dtype", "bfloat16",  # auto would serve an fp32 checkpoint as fp16
        "--context-length", "32768", "--mem-fraction-static", "0.85",
    ]
    assert "entrypoint" not in kw
    assert kw["ports"] == {"30000/tcp": ("127.0.0.1", 40001)}
    assert kw["volumes"] == {
        str(folder.resolve()): {"bind": "/models/Qwen3-8B-abliterated", "mode": "ro"},
        "ablbench-sglang-cache": {"bind": "/root/.cache", "mode": "rw"},
    }
    assert kw["ipc_mode"] == "host" and "shm_size" not in kw
    [req] = kw["device_requests"]
    assert req["Count"] == -1 and req["Capabilities"] == [["gpu"]]
    [ulimit] = kw["ulimits"]
    assert (ulimit["Name"], ulimit["Soft"], ulimit["Hard"]) == ("memlock", -1, -1)
    assert kw["environment"]["HF_HUB_OFFLINE"] == "1"
    assert kw["labels"]["ablbench.role"] == "model-server" and kw["labels"]["ablbench.backend"] == "sglang"
    assert kw["name"] == "ablbench-sglang-Qwen3-8B-abliterated" and kw["detach"] is True
    assert server.base_url == "http://127.0.0.1:40001" and server.model_name == "Qwen3-8B-abliterated"


def test_vllm_spec(folder):
    server = make_server("vllm", folder, name="edited", port=40002, extra_args=["--max-model-len", "16384"],
                         gpus="0,1", shm_size="16g", ipc_host=False)
    assert isinstance(server, VllmServer)
    kw = server.spec().run_kwargs()
    assert kw["image"] == VLLM_IMAGE and VLLM_IMAGE.startswith("vllm/vllm-openai:v")  # pinned, not latest
    assert kw["command"] == [  # the image's entrypoint is the server: engine args only
        "--model", "/models/Qwen3-8B-abliterated",
        "--served-model-name", "edited",
        "--host", "0.0.0.0",
        "--port", "8000",
        "--dtype", "bfloat16",
        "--max-model-len", "16384",
    ]
    assert "entrypoint" not in kw
    assert kw["ports"] == {"8000/tcp": ("127.0.0.1", 40002)}
    assert kw["volumes"][str(folder.resolve())] == {"bind": "/models/Qwen3-8B-abliterated", "mode": "ro"}
    assert kw["volumes"]["ablbench-vllm-cache"] == {"bind": "/root/.cache", "mode": "rw"}
    assert "ipc_mode" not in kw and kw["shm_size"] == "16g"
    [req] = kw["device_requests"]
    assert req["DeviceIDs"] == ["0", "1"] and req["Capabilities"] == [["gpu"]]
    assert kw["name"] == "ablbench-vllm-edited"


def test_gpu_count_and_no_gpu(folder):
    [req] = make_server("sglang", folder, gpus=2).spec().run_kwargs()["device_requests"]
    assert req["Count"] == 2
    assert make_server("sglang", folder, gpus=None).spec().run_kwargs()["device_requests"] == []


def test_transformers_command(folder):
    server = make_server("transformers", folder, port=40003, extra_args=["--dtype", "bfloat16"])
    assert isinstance(server, TransformersServer)
    argv = server.command()
    assert argv[argv.index("serve"):] == [
        "serve", "--host", "127.0.0.1", "--port", "40003", "--device", "cpu", "--dtype", "bfloat16",
        str(folder.resolve()),
    ]
    assert server.model_name == str(folder.resolve())  # transformers serve is pinned to the path string


def test_unknown_backend_and_free_port(folder):
    with pytest.raises(ServerError, match="unknown backend 'tgi'"):
        make_server("tgi", folder)
    a, b = free_port(), free_port()
    assert 1024 < a < 65536 and 1024 < b < 65536


@pytest.mark.docker
def test_missing_image_is_a_clear_error(folder, docker_client):
    server = make_server("sglang", folder, image="ablbench/does-not-exist:1", docker_client=docker_client)
    with pytest.raises(ServerError, match=r"not present locally: run `docker pull ablbench/does-not-exist:1`"):
        server.start()
    server.stop()


def test_default_backend_without_and_with_gpu(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    backend, why = default_backend()
    assert backend == "transformers" and "no GPU" in why
    # an nvidia-smi stand-in (no GPU here) that lists one GPU; the sglang image is not present
    smi = empty / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}/usr/bin{os.pathsep}/bin")
    backend, why = default_backend()
    assert backend == "transformers" and SGLANG_IMAGE in why
