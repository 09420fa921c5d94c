"""The tmux terminal in a real container: idle detection, key names, chunking, observations."""

from __future__ import annotations

import uuid

import pytest
from conftest import missing

from ablbench.paths import DEBIAN_IMAGE
from runners.environment import TaskEnvironment
from runners.terminal import CHUNK_BYTES, TerminalError, TmuxTerminal, _chunks, cut_head_tail, expected_prompts


def test_chunks_respect_the_byte_limit_and_characters():
    text = ("é" * 5000) + ("x" * 9000) + "😀" * 3000
    pieces = _chunks(text)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= CHUNK_BYTES for p in pieces) and len(pieces) > 3


def test_cut_head_tail():
    text = "".join(f"line {i}\n" for i in range(5000))
    cut = cut_head_tail(text, 1000)
    assert cut.startswith("line 0\n") and cut.rstrip().endswith("line 4999")
    assert "bytes omitted" in cut and len(cut.encode()) < 1200
    assert cut_head_tail("short", 1000) == "short"


def test_expected_prompts():
    assert expected_prompts("ls\n") == 1
    assert expected_prompts("cd /\nls\n") == 2
    assert expected_prompts("C-c") == 0 and expected_prompts("Enter") == 1
    assert expected_prompts("echo -n x") == 0


@pytest.fixture(scope="module")
def term(docker_client, base_image, test_labels):
    c = docker_client.containers.run(
        base_image, ["sleep", "infinity"], detach=True, network_mode="none", labels=test_labels,
        name=f"ablbench-test-term-{uuid.uuid4().hex[:8]}",
    )
    try:
        t = TmuxTerminal(TaskEnvironment.attach(c), observation_bytes=2000)
        screen = t.start()
        assert screen.rstrip().endswith("#")  # root prompt
        assert t.counter_ok
        yield t
    finally:
        c.remove(force=True)




@pytest.mark.docker
def test_size_and_history(term):
    out = term.env.container.exec_run(["tmux", "display", "-p", "-t", term.session,
                                   "#{pane_width}x#{pane_height} #{history_limit}"]).output.decode()
    assert out.split() == ["160x40", "100000"]


@pytest.mark.docker
def test_returns_when_idle_and_shows_new_output_only(term):
    r = term.send("echo first-$((6*7))\n", 30)
    assert r.how == "idle-prompt"
    first = term.observe()
    assert "first-42" in first
    r = term.send("cd /tmp\nsleep 0.3\npwd\n", 30)
    assert r.how == "idle-prompt"  # waited for all three prompts, not the first
    second = term.observe()
    assert "first-42" not in second and second.rstrip().endswith("/tmp#")
    assert "\n/tmp\n" in second


@pytest.mark.docker
def test_heredoc_settles_with_fewer_prompts_than_lines(term):
    r = term.send("cat > /tmp/h.txt << 'EOF'\nalpha\nbeta\nEOF\n", 30)
    assert r.how == "idle-settle"
    assert term.env.container.exec_run(["cat", "/tmp/h.txt"]).output == b"alpha\nbeta\n"
    term.observe()


@pytest.mark.docker
def test_duration_bounds_a_long_command_and_keys_interrupt_it(term):
    r = term.send("sleep 20\n", 0.5)
    assert r.how == "timeout" and r.waited_s < 5
    r = term.send("C-c", 5)
    assert r.idle
    assert "^C" in term.observe()


@pytest.mark.docker
def test_interactive_program_prompt(term):
    assert term.send("python3\n", 20).how == "idle-repl"
    assert term.send("print(6 * 7)\n", 20).how == "idle-repl"
    assert "42" in term.observe()
    assert term.send("exit()\n", 20).how == "idle-prompt"


@pytest.mark.docker
def test_large_keystrokes_arrive_whole(term):
    lines = [f"{i:05d} " + "abcdefghij" * 7 for i in range(600)]  # ~47 KB, several tmux chunks
    body = "\n".join(lines) + "\n"
    r = term.send(f"cat > /tmp/big.txt << 'EOF'\n{body}EOF\n", 60)
    assert r.idle
    out = term.env.container.exec_run(["cat", "/tmp/big.txt"]).output.decode()
    assert out == body
    obs = term.observe()
    assert "bytes omitted" in obs and len(obs.encode()) < 2300  # cut to head + tail


@pytest.mark.docker
def test_shell_exit_gets_a_fresh_shell(term):
    term.send("exit\n", 5)
    assert "a new shell was started" in term.observe()
    assert term.send("echo back\n", 10).how == "idle-prompt"
    assert "back" in term.observe()


@pytest.mark.docker
def test_commands_then_exit_in_one_batch_is_idle_not_an_error(term):
    # the prompt counter moves, then the session dies while the wait looks at the pane
    for _ in range(3):
        assert term.send("echo one; echo two\nexit\n", 5).how.startswith("idle")
        assert "a new shell was started" in term.observe()
    assert term.send("echo alive\n", 10).how == "idle-prompt"
    assert "alive" in term.observe()


@pytest.mark.docker
def test_image_without_tmux_is_a_clear_error(docker_client, test_labels):
    try:
        docker_client.images.get(DEBIAN_IMAGE)
    except Exception:  # noqa: BLE001
        missing(f"image {DEBIAN_IMAGE} missing: run scripts/setup.sh")
    c = docker_client.containers.run(DEBIAN_IMAGE, ["sleep", "infinity"], detach=True, network_mode="none",
                                     labels=test_labels, name=f"ablbench-test-notmux-{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(TerminalError, match="tmux is not installed.*Dockerfile"):
            TmuxTerminal(TaskEnvironment.attach(c)).start()
    finally:
        c.remove(force=True)
