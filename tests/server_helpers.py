"""Checks shared by the local model-server tests (``transformers serve``, llama.cpp).

1. ``run_cli`` runs the real ``ablbench`` with its own ``ABLBENCH_HOME``.
2. ``assert_gone`` proves a server left nothing: its process is gone, no process carries
   ``--port PORT``, and the port answers no HTTP.
3. ``serve_in_foreground_then_ctrl_c`` is ``ablbench serve`` in the foreground: it comes up,
   answers, prints its identity, and Ctrl-C stops it cleanly (exit 0, nothing left).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ABLBENCH = str(Path(sys.executable).parent / "ablbench")


def run_cli(*args: str, home: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``ablbench ARGS`` with ``ABLBENCH_HOME=home``, output captured."""
    env = {**os.environ, "ABLBENCH_HOME": str(home)}
    return subprocess.run([ABLBENCH, *args], capture_output=True, text=True, env=env, timeout=timeout)


def pids_with_port_arg(port: int) -> list[int]:
    """Processes whose argv carries ``--port port`` (a leftover server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in argv and argv[argv.index(b"--port") + 1:][:1] == [str(port).encode()]:
            found.append(int(entry.name))
    return found


def assert_gone(pid: int | None, port: int) -> None:
    """The server process ``pid`` and everything serving ``port`` are gone."""
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert pids_with_port_arg(port) == []
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def serve_in_foreground_then_ctrl_c(model: Path, tmp_path: Path, *, backend_line: str, probe_path: str) -> None:
    """``ablbench serve --model MODEL --name fg``: says ``backend_line``, answers GET ``probe_path``,
    and stops on SIGINT with exit 0, leaving nothing behind."""
    env = {**os.environ, "ABLBENCH_HOME": str(tmp_path / "home")}
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([ABLBENCH, "serve", "--model", str(model), "--name", "fg"],
                                stdout=fo, stderr=fe, env=env)
    try:
        deadline = time.monotonic() + 150
        while "Ctrl-C" not in err.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.poll() is None, err.read_text()
        assert backend_line in err.read_text()
        text = out.read_text()
        ident = json.loads(text[text.index("{"):])
        pid, port = ident["pid"], int(ident["base_url"].rsplit(":", 1)[1])
        assert httpx.get(f"{ident['base_url']}{probe_path}").status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped fg" in err.read_text()
    assert_gone(pid, port)
