"""The real ``transformers serve`` on the bundled SmolLM2: start, health, chat, identity, stop.

Also the ``ablbench serve`` command line around it: foreground until Ctrl-C, and --detach
with ``serve list`` / ``serve stop``. Every test ends with no server process left.
"""

from __future__ import annotations

import json
import os
import signal

import httpx
import pytest
from server_helpers import assert_gone, pids_with_port_arg, run_cli, serve_in_foreground_then_ctrl_c

from harness.llm_client import LLMClient
from harness.llm_types import ContextOverflowError, LLMError, SamplingParams
from runners.servers import ServerError, TransformersServer, make_server

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_lifecycle_chat_identity_stop(smollm2_dir, tmp_path):
    server = make_server("transformers", smollm2_dir, name="smol", log_path=tmp_path / "server.log")
    with server:
        assert httpx.get(f"{server.base_url}/health").status_code == 200
        ident = server.identity()
        assert ident["served_model"] == str(smollm2_dir.resolve()) == server.model_name
        assert ident["reply_model"].startswith(str(smollm2_dir.resolve()))  # "<folder>@main"
        assert ident["max_model_len"] == 8192 and ident["pid"] == server.pid

        client = LLMClient(server.base_url, server.model_name, timeout_s=120, max_retries=1)
        result = client.chat([{"role": "user", "content": "Say hello."}],
                             SamplingParams(temperature=0.0, top_p=1.0, max_tokens=8, seed=0))
        assert result.content.strip()
        assert result.usage.prompt_tokens > 5 and 0 < result.usage.completion_tokens <= 8
        assert result.finish_reason in {"stop", "length"} and result.retries == 0

        # a client naming another model is refused, and it is not mistaken for an overflow
        wrong = LLMClient(server.base_url, "some-other-model", timeout_s=60, max_retries=0)
        with pytest.raises(LLMError, match="pinned") as exc:
            wrong.chat([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=2))
        assert not isinstance(exc.value, ContextOverflowError)

        # a server object for another folder, pointed at this port, fails its identity check
        impostor = TransformersServer(tmp_path, port=server.port, warmup=False)
        with pytest.raises(ServerError, match="is pinned to"):
            impostor.identity()
        pid, port = server.pid, server.port
    assert_gone(pid, port)
    assert "Uvicorn running" in server.logs_tail(100) or "Application startup complete" in server.logs_tail(100)


def test_missing_folder_fails_clearly(tmp_path):
    server = make_server("transformers", tmp_path / "nope")
    with pytest.raises(ServerError, match="does not exist"):
        server.start()


def test_cli_detach_list_stop(smollm2_dir, tmp_path):
    home = tmp_path / "home"
    started = run_cli("serve", "--backend", "transformers", "--model", str(smollm2_dir), "--name", "det",
                      "--detach", home=home)
    assert started.returncode == 0, started.stderr
    url = next(line.split(" ", 1)[1] for line in started.stdout.splitlines() if line.startswith("url: "))
    state = json.loads((home / "servers" / "det.json").read_text())
    pid, port = state["detach"]["pid"], int(url.rsplit(":", 1)[1])
    try:
        assert state["base_url"] == url and state["identity"]["served_model"] == str(smollm2_dir.resolve())
        assert httpx.get(f"{url}/health").status_code == 200  # still up after the CLI exited
        listed = run_cli("serve", "list", home=home)
        assert "det\ttransformers\t" in listed.stdout and "running" in listed.stdout
        again = run_cli("serve", "--model", str(smollm2_dir), "--name", "det", "--backend", "transformers",
                        home=home)
        assert again.returncode == 1 and "already running" in again.stderr
        stopped = run_cli("serve", "stop", "det", home=home)
        assert stopped.returncode == 0 and "det: stopped" in stopped.stdout
    finally:
        if pids_with_port_arg(port):
            os.killpg(pid, signal.SIGKILL)
    assert_gone(pid, port)
    assert not (home / "servers" / "det.json").exists()
    unknown = run_cli("serve", "stop", "det", home=home)
    assert unknown.returncode == 1 and "no detached server named det" in unknown.stderr


def test_cli_foreground_until_ctrl_c(smollm2_dir, tmp_path):
    serve_in_foreground_then_ctrl_c(smollm2_dir, tmp_path, backend_line="backend: transformers",  # no GPU
                                    probe_path="/health")
