"""Container lifecycle of the sglang backend, with real containers standing in for sglang.

No GPU here, so the sglang image cannot run. The stand-in is the project's base image running
a small Python HTTP server that takes sglang's command line (``--model-path``,
``--served-model-name``, ``--port``) and answers sglang's ``/health``, ``/v1/models`` and
``/get_model_info``; stand-in flags (passed as extra server args, which also proves the
pass-through) make it slow, crash, hang or lie. Everything else -- the Docker SDK calls, the
port published on 127.0.0.1, the read-only mount, the health wait, the identity check, the
clean-up -- is the real code path.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from runners.servers import SGLANG_IMAGE, ServerError, SglangServer, find_server_containers, make_server

pytestmark = pytest.mark.docker

STANDIN = r'''
import argparse, json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
p = argparse.ArgumentParser()
p.add_argument("--model-path"); p.add_argument("--served-model-name"); p.add_argument("--host")
p.add_argument("--port", type=int); p.add_argument("--dtype")
p.add_argument("--standin-delay", type=float, default=0.0)
p.add_argument("--standin-mode", default="serve")
p.add_argument("--standin-report-path")
a, unknown = p.parse_known_args()
print("stand-in for sglang.launch_server; args:", sys.argv[1:], flush=True)
print("Load weight begin.", flush=True)
if a.standin_mode == "crash":
    time.sleep(1.0)
    raise RuntimeError("stand-in: safetensors shard is truncated")
if a.standin_mode == "oom-line":
    print("RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.", flush=True)
ready_at = time.time() + a.standin_delay
class H(BaseHTTPRequestHandler):
    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        ready = a.standin_mode == "serve" and time.time() >= ready_at
        if self.path == "/health":
            self._send(200 if ready else 503, {})
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": a.served_model_name, "object": "model",
                       "root": a.model_path, "max_model_len": 4096}]})
        elif self.path == "/get_model_info":
            self._send(200, {"model_path": a.standin_report_path or a.model_path, "is_generation": True})
        else:
            self._send(404, {})
    def log_message(self, fmt, *args):
        print("request", fmt % args, flush=True)
ThreadingHTTPServer(("0.0.0.0", a.port), H).serve_forever()
'''


@pytest.fixture
def model_folder(tmp_path):
    """A folder to mount (the stand-in never reads weights)."""
    folder = tmp_path / "Tiny-Edited"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def standin(model_folder, base_image, test_labels, docker_client, *extra: str, budget: float = 60.0):
    """An sglang server whose image and launcher are the stand-in's."""
    return make_server(
        "sglang", model_folder, extra_args=list(extra), image=base_image,
        # no GPU, no cache, and no memlock raise: this sandbox's engine may not grant unlimited memlock
        launcher=["python3", "-c", STANDIN], gpus=None, cache_volume=None, ipc_host=False, memlock=None,
        labels=test_labels, stands_for="sglang", docker_client=docker_client,
        health_budget_s=budget, poll_s=0.5,
    )


def assert_no_container(docker_client, server):
    assert find_server_containers(docker_client, server.name) == []
    assert docker_client.containers.list(all=True, filters={"name": server.container_name}) == []


def test_healthy_late_serves_identity_and_cleans_up(model_folder, base_image, test_labels, docker_client):
    server = standin(model_folder, base_image, test_labels, docker_client, "--standin-delay", "3")
    assert server.image == base_image and server.stands_for == "sglang"
    started = time.monotonic()
    with server:
        waited = time.monotonic() - started
        assert waited >= 3.0  # health answered 503 until the stand-in was "loaded"
        assert "GET /health HTTP/1.1\" 503" in server.logs_tail(200)
        ident = server.identity()
        assert ident["served_model"] == server.name == "Tiny-Edited"
        assert ident["model_path"] == "/models/Tiny-Edited"
        assert ident["mount_source"] == str(model_folder.resolve())
        assert ident["max_model_len"] == 4096 and ident["stands_for"] == "sglang"
        # what the engine really got: port on 127.0.0.1 only, model read-only, memlock, labels
        container = docker_client.containers.get(server.container_name)
        host = container.attrs["HostConfig"]
        assert host["PortBindings"] == {"30000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(server.port)}]}
        mount = next(m for m in container.attrs["Mounts"] if m["Destination"] == "/models/Tiny-Edited")
        assert mount["RW"] is False
        assert container.labels["ablbench.role"] == "model-server"
        assert "--standin-delay" in container.attrs["Args"]  # extra args passed through
        assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert_no_container(docker_client, server)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.base_url}/health", timeout=2)


def test_exit_during_startup_reports_log_tail(model_folder, base_image, test_labels, docker_client):
    server = standin(model_folder, base_image, test_labels, docker_client, "--standin-mode", "crash")
    started = time.monotonic()
    with pytest.raises(ServerError) as err, server:
        pytest.fail("a crashing server must not become usable")
    assert time.monotonic() - started < 30  # ended by the exit, not by the 60 s budget
    text = str(err.value)
    assert "exited with code 1" in text
    assert "safetensors shard is truncated" in text and "Load weight begin." in text
    assert_no_container(docker_client, server)


def test_never_healthy_ends_at_budget(model_folder, base_image, test_labels, docker_client):
    server = standin(model_folder, base_image, test_labels, docker_client, "--standin-mode", "never", budget=4)
    server.start()
    started = time.monotonic()
    try:
        with pytest.raises(ServerError, match=r"not healthy after 4 s") as err:
            server.wait_healthy()
        assert 4.0 <= time.monotonic() - started < 20
        assert "/health answered 503" in str(err.value)
        assert "stand-in for sglang.launch_server" in str(err.value)  # log tail attached
    finally:
        server.stop()
    assert_no_container(docker_client, server)


def test_ctrl_c_while_waiting_removes_the_container(model_folder, base_image, test_labels, docker_client):
    server = standin(model_folder, base_image, test_labels, docker_client, "--standin-mode", "never")
    timer = threading.Timer(3.0, os.kill, args=(os.getpid(), signal.SIGINT))  # a real Ctrl-C
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt), server:
            pytest.fail("a never-healthy server must not become usable")
    finally:
        timer.cancel()
    assert_no_container(docker_client, server)


def test_fatal_log_line_ends_wait_at_once(model_folder, base_image, test_labels, docker_client):
    server = standin(model_folder, base_image, test_labels, docker_client, "--standin-mode", "oom-line")
    started = time.monotonic()
    with pytest.raises(ServerError, match="Not enough memory"), server:
        pass
    assert time.monotonic() - started < 30
    assert_no_container(docker_client, server)


def test_identity_mismatch_fails(model_folder, base_image, test_labels, docker_client):
    server = standin(model_folder, base_image, test_labels, docker_client,
                     "--standin-report-path", "/models/Some-Other-Model")
    with pytest.raises(ServerError, match="Some-Other-Model"), server:
        pass
    assert_no_container(docker_client, server)


def test_real_sglang_spec_is_accepted_by_the_engine(model_folder, base_image, test_labels, docker_client):
    """Create (never start: no GPU) a container from the exact sglang spec, with the image swapped."""
    server = SglangServer(model_folder, name="spec-check", port=31234, extra_args=["--context-length", "8192"],
                          labels=test_labels, docker_client=docker_client)
    kwargs = server.spec().run_kwargs()
    assert kwargs.pop("image") == SGLANG_IMAGE
    kwargs.pop("detach")
    container = docker_client.containers.create(base_image, **kwargs)
    try:
        attrs = container.attrs
        host = attrs["HostConfig"]
        assert attrs["Config"]["Cmd"][:3] == ["python3", "-m", "sglang.launch_server"]
        assert attrs["Config"]["Cmd"][-2:] == ["--context-length", "8192"]
        assert host["PortBindings"] == {"30000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "31234"}]}
        assert host["IpcMode"] == "host"
        assert {"Name": "memlock", "Soft": -1, "Hard": -1} in host["Ulimits"]
        assert host["DeviceRequests"][0]["Count"] == -1
        assert host["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
        assert f"{model_folder.resolve()}:/models/Tiny-Edited:ro" in host["Binds"]
        assert "ablbench-sglang-cache:/root/.cache:rw" in host["Binds"]
        assert "HF_HUB_OFFLINE=1" in attrs["Config"]["Env"]
    finally:
        container.remove(force=True)


def test_detached_container_is_found_and_stopped(model_folder, base_image, test_labels, docker_client):
    from runners.servers.detached import detached_alive, stop_detached

    server = standin(model_folder, base_image, test_labels, docker_client)
    with server:
        info = server.detach()
    # leaving the block did not stop a detached server
    assert detached_alive(info, docker_client)
    assert [c.name for c in find_server_containers(docker_client, server.name)] == [server.container_name]
    assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert stop_detached(info, grace_s=5, docker_client=docker_client) is True
    assert not detached_alive(info, docker_client)
    assert_no_container(docker_client, server)
    assert stop_detached(info, docker_client=docker_client) is False
