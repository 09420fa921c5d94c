"""The import contract in pyproject.toml holds, and it catches an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ablbench.paths import REPO_ROOT

LINT = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("ablbench", "abliterate", "harness", "runners", "sft")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, timeout=300)


def _copy_tree(dst: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(REPO_ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", dst / "pyproject.toml")


def test_the_tree_keeps_every_contract() -> None:
    out = _lint(REPO_ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    keys = tmp_path / "runners" / "tmux_keys.py"
    keys.write_text(keys.read_text() + "\nfrom harness.parser import parse_action  # upward\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "runners.tmux_keys -> harness.parser" in out.stdout


def test_abliterate_importing_runners_breaks_the_contract(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    errors = tmp_path / "abliterate" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport runners.tmux_keys  # sideways\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "abliterate.errors -> runners.tmux_keys" in out.stdout


def test_one_error_root() -> None:
    """Every user-facing error, abliterate's included, is an AblbenchError."""
    from ablbench.errors import AblbenchError
    from abliterate.bake.errors import BakeError
    from abliterate.errors import AbliterationError
    from runners.terminal import TerminalError

    for cls in (AbliterationError, BakeError, TerminalError):
        assert issubclass(cls, AblbenchError), cls
