"""The real llama.cpp server (llama-cpp-python) on the bundled SmolLM2 GGUF.

One server for the module: health, identity, a chat answer, a schema-constrained action
that the agent's parser accepts, queued parallel requests. Then the command line: the
default backend for a GGUF and for the bundled model, Ctrl-C and ``serve stop`` leaving
nothing running, and the one-line refusals of what llama.cpp cannot serve.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from recording_proxy import RecordingProxy
from server_helpers import ABLBENCH, assert_gone, pids_with_port_arg, run_cli, serve_in_foreground_then_ctrl_c

from ablbench.errors import AblbenchError
from harness.action_schema import CEILING, ActionBounds, action_schema, bounds_for, response_format
from harness.llm_client import LLMClient
from harness.llm_types import SamplingParams
from harness.parser import parse_action
from harness.prompt import initial_messages
from runners.servers import LlamaCppServer, ServerError, make_server

pytestmark = [pytest.mark.model, pytest.mark.slow]

GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=24, seed=0)


@pytest.fixture(scope="module")
def llama_server(bundled_gguf, tmp_path_factory):
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    server = make_server("llamacpp", bundled_gguf, name="smol-gguf", log_path=log, threads=1)
    with server:
        yield server
    assert_gone(server.pid, server.port)


def test_health_and_identity(llama_server, bundled_gguf, tmp_path):
    models = httpx.get(f"{llama_server.base_url}/v1/models", timeout=30).json()
    alias = llama_server.model_name
    assert [m["id"] for m in models["data"]] == [alias] and alias.startswith("SmolLM2-135M-Instruct.Q4_1@")
    # the alias names the weights, not the server: another server object of the same file agrees
    assert LlamaCppServer(bundled_gguf, name="another", warmup=False).model_name == alias
    ident = llama_server.identity()
    assert ident["backend"] == "llamacpp" and ident["model_path"] == str(bundled_gguf.resolve())
    assert ident["max_model_len"] == 8192  # the file's trained context (= the default cap)
    assert ident["threads"] == 1 and ident["architecture"] == "llama"
    assert ident["file_bytes"] == bundled_gguf.stat().st_size and len(ident["tokenizer_digest"]) == 16
    argv = Path(f"/proc/{llama_server.pid}/cmdline").read_bytes().split(b"\0")
    assert argv[argv.index(b"--n_threads") + 1] == b"1" and argv[argv.index(b"--n_ctx") + 1] == b"8192"

    # a server object expecting another file on this port fails its identity check
    other = tmp_path / "other.gguf"
    shutil.copyfile(bundled_gguf, other)
    impostor = LlamaCppServer(other, name="other", port=llama_server.port, warmup=False)
    with pytest.raises(ServerError, match=rf"serves \['{re.escape(alias)}'\], not 'other@[0-9a-f]{{12}}'"):
        impostor.identity()


def test_chat_answers_paris(llama_server):
    client = LLMClient(llama_server.base_url, llama_server.model_name, timeout_s=120, max_retries=0)
    # plain "What is the capital of France?" is a near tie for this Q4_1 file ("The" vs "L'Étoile...")
    result = client.chat([{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
                         GREEDY)
    assert "Paris" in result.content
    assert result.usage.prompt_tokens > 5 and 0 < result.usage.completion_tokens <= 24
    assert result.finish_reason in {"stop", "length"}


def test_structured_reply_parses_as_an_action(llama_server):
    from harness.structured_check import check_structured

    bounds = bounds_for(256)
    found = check_structured(llama_server.base_url, llama_server.model_name, action_schema(bounds))
    style = found.style
    assert style == "json_object"  # llama-cpp-python rejects OpenAI's json_schema shape
    assert found.plain_ttft_s > 0 and found.ttft_s > 0 and found.grammar_s >= 0
    client = LLMClient(llama_server.base_url, llama_server.model_name, timeout_s=300, max_retries=0)
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=256, seed=0,
                            response_format=response_format(action_schema(bounds), style))
    result = client.chat(initial_messages("Create a directory named /app/output.", "root@box:/app# "), params)
    action = json.loads(result.content)  # constrained decoding: valid JSON, not a markdown block
    assert set(action) == {"analysis", "plan", "commands", "task_complete"}
    assert len(action["analysis"]) <= bounds.analysis and len(action["plan"]) <= bounds.plan
    assert len(action["commands"]) <= bounds.commands
    assert all(len(c["keystrokes"]) <= bounds.keystrokes for c in action["commands"])
    parsed = parse_action(result.content)
    assert parsed.status in {"ok", "no_cmd"} and parsed.error is None
    assert [c.keystrokes for c in parsed.commands] == [c["keystrokes"] for c in action["commands"]]


def test_preflight_stops_on_a_schema_that_crashes_llamacpp(bundled_gguf):
    """The bounds before issue 26 at --max-tokens 4096 (strings of 2000+ characters): llama.cpp
    cannot parse the grammar and its server dies on the request; the preflight says so in one
    line, before any trial. A throwaway server: this one is killed."""
    from harness.structured_check import check_structured

    old_4096 = action_schema(ActionBounds(analysis=2000, plan=1000, keystrokes=2457, commands=8))
    with make_server("llamacpp", bundled_gguf, name="doomed", threads=1) as server:
        with pytest.raises(AblbenchError) as exc:
            check_structured(server.base_url, server.model_name, old_4096)
        message = str(exc.value)
        assert "\n" not in message and "dropped the request carrying the action schema" in message
        assert "crashed compiling the schema's grammar" in message
        assert "answered the same request without the schema" in message
        deadline = time.monotonic() + 30
        while server.exit_status() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.exit_status() == "was killed by SIGSEGV"


def test_parallel_requests_are_queued_and_all_answered(llama_server):
    client = LLMClient(llama_server.base_url, llama_server.model_name, timeout_s=300, max_retries=0)
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        try:
            results[i] = client.chat([{"role": "user", "content": f"Count from 1 to {i + 3}."}], GREEDY)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(results) == [0, 1, 2]
    assert all(getattr(r, "content", None) for r in results.values()), results


def test_two_agents_taking_turns_resume_from_their_own_cached_prefix(llama_server):
    """The prompt cache (rule 3): after another conversation's request, a conversation's next turn
    restores its own state and evaluates only the new tokens, not everything after the shared system prompt."""
    def ask(messages: list[dict]) -> dict:
        body = {"model": llama_server.model_name, "messages": messages, "max_tokens": 8, "temperature": 0}
        return httpx.post(f"{llama_server.base_url}/v1/chat/completions", json=body, timeout=300).json()

    def last_prefix_hit() -> int:
        hits = re.findall(r"(\d+) prefix-match hit", llama_server.log_path.read_text())
        return int(hits[-1]) if hits else 0

    a = initial_messages("Create the folder /app/output.", "root@x:/app# ")
    b = initial_messages("Count the lines of /app/data.txt and write the number to /app/n.txt.", "root@x:/app# ")
    first_a = ask(a)
    ask(b)  # the context now holds b; a and b share only the system prompt and the message's start
    shared = last_prefix_hit()
    a_next = [*a, first_a["choices"][0]["message"], {"role": "user", "content": "New Terminal Output:\nroot@x:/app# "}]
    ask(a_next)
    assert llama_server.identity()["prompt_cache"] is True
    assert shared < first_a["usage"]["prompt_tokens"] <= last_prefix_hit()


def test_refusals_before_anything_starts(tmp_path, bundled_gguf):
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ServerError, match="llama.cpp serves GGUF files: use --backend transformers"):
        make_server("llamacpp", folder).start()
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf at all")
    with pytest.raises(ServerError, match="not a GGUF file"):
        make_server("llamacpp", fake).start()
    with pytest.raises(ServerError, match="needs a Hugging Face model folder; serve a GGUF with --backend llamacpp"):
        make_server("transformers", bundled_gguf).start()


def test_command_sets_threads_and_context_explicitly(bundled_gguf):
    from runners.servers.llamacpp import cpu_threads, default_threads

    assert default_threads() == max(1, cpu_threads() // 2)
    argv = make_server("llamacpp", bundled_gguf, port=40005).command()
    assert argv[:3] == [sys.executable, "-m", "llama_cpp.server"]
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    alias = flags["--model_alias"]
    assert alias.startswith("SmolLM2-135M-Instruct.Q4_1@") and len(alias.split("@")[1]) == 12
    assert flags == {"--model": str(bundled_gguf.resolve()), "--model_alias": alias,
                     "--host": "127.0.0.1", "--port": "40005", "--n_threads": str(default_threads()),
                     "--n_threads_batch": str(default_threads()), "--n_ctx": "8192", "--cache": "true"}
    # server arguments after `--` come last, win, and are what the identity reports
    custom = make_server("llamacpp", bundled_gguf, extra_args=["--n_threads", "3", "--n_ctx=2048"])
    assert custom.command()[-2:] == ["3", "--n_ctx=2048"]
    assert custom._effective() == (3, 2048) and custom.prompt_cache()
    assert not make_server("llamacpp", bundled_gguf, extra_args=["--cache", "false"]).prompt_cache()


def test_early_exit_is_reported_with_the_log(bundled_gguf):
    server = make_server("llamacpp", bundled_gguf, extra_args=["--no_such_option", "1"], health_budget_s=120)
    with pytest.raises(ServerError, match="exited with code") as exc:
        server.__enter__()
    assert "no_such_option" in str(exc.value)  # the log tail says which argument was wrong
    assert server.exit_status() is not None
    with pytest.raises(ServerError, match="--n_ctx 'lots' is not a whole number"):
        make_server("llamacpp", bundled_gguf, extra_args=["--n_ctx", "lots"]).start()


def test_cli_hf_folder_with_llamacpp_is_one_line(tmp_path):
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    res = run_cli("serve", "--backend", "llamacpp", "--model", str(folder), home=tmp_path / "home", timeout=120)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--backend transformers" in lines[0]


def test_cli_foreground_gguf_until_ctrl_c(tmp_path, bundled_gguf):
    serve_in_foreground_then_ctrl_c(bundled_gguf, tmp_path, backend_line="backend: llamacpp (a GGUF file)",
                                    probe_path="/v1/models")


def test_cli_bundled_model_detached_then_stopped(tmp_path, bundled_gguf):
    home = tmp_path / "home"
    started = run_cli("serve", "--name", "det", "--detach", home=home)
    assert started.returncode == 0, started.stderr
    state = json.loads((home / "servers" / "det.json").read_text())
    pid, port = state["detach"]["pid"], int(state["base_url"].rsplit(":", 1)[1])
    try:
        assert state["backend"] == "llamacpp" and state["identity"]["model_path"] == str(bundled_gguf.resolve())
        assert "bundled model's GGUF" in started.stderr  # the default for the bundled model on a CPU
        assert httpx.get(f"{state['base_url']}/v1/models").status_code == 200  # outlives the CLI
        stopped = run_cli("serve", "stop", "det", home=home)
        assert stopped.returncode == 0 and "det: stopped" in stopped.stdout
    finally:
        if pids_with_port_arg(port):
            os.killpg(pid, signal.SIGKILL)
    assert_gone(pid, port)


@pytest.mark.docker
@pytest.mark.parametrize("max_tokens", [256, 4096, 32768])
def test_run_structured_at_any_budget_sends_its_own_schema(llama_server, base_image, tmp_path, max_tokens):
    """`ablbench run --structured` at 256, 4096 and 32768 tokens, through a recording proxy: the
    preflight sends exactly the run's schema and prints its first-token time, every turn's reply
    is an action object, run.json records the schema, and the server survives (issue 26: at
    4096 the old schema's grammar crashed llama.cpp)."""
    out = tmp_path / "run"
    env = {**os.environ, "ABLBENCH_HOME": str(tmp_path / "home")}
    with RecordingProxy(llama_server.base_url) as proxy:
        res = subprocess.run(
            [ABLBENCH, "run", "--structured", "--model-url", proxy.base_url, "--model", llama_server.model_name,
             "--include", "make-output-dir", "--max-turns", "2", "--max-tokens", str(max_tokens),
             "--context-length", "8192", "--temperature", "0", "--offline", "--quiet", "--out", str(out)],
            capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"--structured preflight: first token after [0-9.]+ s with the action schema \(json_object\)",
                     " ".join(res.stderr.split()))
    assert llama_server.exit_status() is None
    assert httpx.get(f"{llama_server.base_url}/v1/models", timeout=30).status_code == 200

    schema = action_schema(bounds_for(max_tokens))
    if max_tokens >= 4096:
        props = schema["properties"]
        assert props["analysis"]["maxLength"] == CEILING.analysis and props["commands"]["maxItems"] == CEILING.commands
    meta = json.loads((out / "run.json").read_text())
    assert meta["structured"] is True
    sent = meta["agent"]["response_format"]
    assert sent == {"type": "json_object", "schema": schema}
    measured = meta["agent"]["structured_preflight"]
    assert measured["style"] == "json_object" and measured["ttft_s"] > 0 and measured["grammar_s"] >= 0
    # what the server received: the preflight's streamed requests carry the run's schema in each
    # shape (json_schema refused, json_object honoured), and every turn carries run.json's exactly
    with_schema = [b for b in proxy.bodies() if "response_format" in b]
    preflight = [b for b in with_schema if b.get("stream")]
    turns_sent = [b for b in with_schema if not b.get("stream")]
    assert [b["response_format"]["type"] for b in preflight] == ["json_schema", "json_object"]
    assert preflight[0]["response_format"]["json_schema"]["schema"] == schema
    assert preflight[1]["response_format"] == sent
    assert turns_sent and all(b["response_format"] == sent for b in turns_sent)

    [trace] = (out / "make-output-dir").glob("*/trace.jsonl")
    turns = [t for t in map(json.loads, trace.read_text().splitlines()) if "turn" in t]
    assert 1 <= len(turns) == len(turns_sent) <= 2
    for t in turns:
        if max_tokens >= 4096:  # the largest action fits the reply budget: every reply closes
            assert t["finish_reason"] == "stop", t
        if t["finish_reason"] == "stop":
            assert set(json.loads(t["reply"])) == {"analysis", "plan", "commands", "task_complete"}
            assert t["parse"]["status"] != "parse_fail"


def test_grammar_limit_stops_the_run_in_one_line(llama_server, tmp_path):
    """A schema that delays the first token past --grammar-limit stops the run before any trial.
    The proxy holds back each request with a schema by 3 s: it stands for a slow grammar engine."""
    out = tmp_path / "run"
    with RecordingProxy(llama_server.base_url, schema_delay_s=3.0) as proxy:
        res = run_cli("run", "--structured", "--model-url", proxy.base_url, "--model", llama_server.model_name,
                      "--include", "hello-world", "--max-tokens", "4096", "--grammar-limit", "1",
                      "--context-length", "8192", "--offline", "--out", str(out), home=tmp_path / "home", timeout=300)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert re.match(r"error: --structured: the action schema delays every reply of the server at \S+ by [3-9]\.\d s",
                    lines[0])
    assert "over --grammar-limit 1 s" in lines[0] and "raise --grammar-limit" in lines[0]
    assert not (out / "run.json").exists()


@pytest.mark.docker
def test_full_bench_serves_gguf_models_with_llamacpp_structured(bundled_gguf, base_image, tmp_path):
    """scripts/full_bench_parallel.sh with two GGUF files: llama.cpp is chosen per model, the served
    context reaches the agent, --structured reaches both runs, and nothing is left running."""
    from ablbench.paths import REPO_ROOT

    out = tmp_path / "bench"
    cmd = ["bash", str(REPO_ROOT / "scripts" / "full_bench_parallel.sh"), "--model", f"base={bundled_gguf}",
           "--model", f"again={bundled_gguf}", "--include", "hello-world", "-n", "1", "--max-turns", "1",
           "--max-tokens", "128", "--structured", "--offline", "--out", str(out)]
    env = {**os.environ, "ABLBENCH": ABLBENCH, "ABLBENCH_HOME": str(tmp_path / "home")}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for name in ("base", "again"):
        meta = json.loads((out / name / "run.json").read_text())
        assert meta["structured"] is True and meta["agent"]["context_length"] == 8192
        assert meta["model"]["served_ids"] == [meta["model"]["model"]]  # the llama.cpp alias, listed
    assert json.loads((out / "report.json").read_text())["n_tasks"] == 1
    assert not list((tmp_path / "home" / "servers").glob("*.json"))  # every server stopped
    ports = re.findall(r"^== \w+: http://127\.0\.0\.1:(\d+) ", res.stdout, flags=re.MULTILINE)
    assert len(ports) == 2
    assert all(pids_with_port_arg(int(port)) == [] for port in ports)
    # rerun: fresh servers (new ports, new script pid) of the same files resume; nothing runs again
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "holds another experiment" not in again.stdout + again.stderr
    assert (again.stdout + again.stderr).count("1/1 trials finished (1 kept from before)") == 2
