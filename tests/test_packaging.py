"""The wheel works outside the checkout, and a core-only install runs, analyzes and explains extras.

One module-scoped fresh venv (outside the repo) gets the built wheel with its core dependencies
only: no torch, no transformers, no matplotlib. Every command then runs from a temporary
directory, so nothing can come from the checkout by accident.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ablbench.paths import REPO_ROOT

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parent / "fixtures" / "analysis" / "user_report"


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    """A fresh venv holding the ablbench wheel and its core requirements only."""
    root = tmp_path_factory.mktemp("core-install")
    src = root / "src"  # build from a copy: the checkout's own build/ and egg-info stay untouched
    junk = shutil.ignore_patterns(".venv*", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = {"tests", "results"} & set(names) if Path(folder) == REPO_ROOT else set()
        return set(junk(folder, names)) | top

    shutil.copytree(REPO_ROOT, src, ignore=ignore)
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(src)], check=True, timeout=600)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    wheel = next(wheels.glob("ablbench-*.whl"))
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a checkout on the path hides the wheel
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, timeout=900, env=clean_env)
    return venv


def _ablbench(venv: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(Path.home()), "NO_COLOR": "1",
           "COLUMNS": "200"}
    return subprocess.run([str(venv / "bin" / "ablbench"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_core_install_has_no_heavy_dependencies(core_venv: Path) -> None:
    probe = "import importlib.util as u; print([m for m in ('torch', 'transformers', 'matplotlib') if u.find_spec(m)])"
    out = subprocess.run([str(core_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tasks_list_finds_the_bundled_tasks_from_anywhere(core_venv: Path, tmp_path: Path) -> None:
    out = _ablbench(core_venv, "tasks", "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for task in ("hello-world", "make-output-dir", "sqlite-top-customers"):
        assert task in out.stdout
    assert str(REPO_ROOT) not in out.stdout  # they come from the installed package data


def test_the_wheel_ships_the_training_tasks_apart_from_the_evaluation_tasks(core_venv: Path, tmp_path: Path) -> None:
    probe = "from ablbench.paths import TRAIN_TASKS; print(TRAIN_TASKS)"
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the wheel's paths, not the checkout's
    train = subprocess.run([str(core_venv / "bin" / "python"), "-c", probe], cwd=tmp_path, capture_output=True,
                           text=True, check=True, env=clean_env).stdout.strip()
    assert str(REPO_ROOT) not in train
    listed = _ablbench(core_venv, "tasks", "list", train, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "copy-backup-todo" in listed.stdout and "hello-world" not in listed.stdout
    default = _ablbench(core_venv, "tasks", "list", cwd=tmp_path)
    assert "12 tasks" in default.stdout and "copy-backup-todo" not in default.stdout


@pytest.mark.docker
def test_oracle_run_of_two_bundled_tasks_outside_the_checkout(core_venv: Path, tmp_path: Path, base_image) -> None:
    out = _ablbench(core_venv, "run", "--agent", "oracle", "-n", "2", "--include", "hello-world",
                    "--include", "make-output-dir", "--out", "results/oracle", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = tmp_path / "results" / "oracle" / "master_summary.csv"
    rows = list(csv.DictReader(summary.open()))
    assert sorted(r["task"] for r in rows) == ["hello-world", "make-output-dir"]
    assert all(r["outcome"] == "passed" for r in rows)


def test_core_install_analyzes_two_results_folders(core_venv: Path, tmp_path: Path) -> None:
    for name in ("base", "abl"):
        shutil.copytree(FIXTURES / name, tmp_path / name)
    out = _ablbench(core_venv, "analyze", "base", "abl", "--markdown", "report.md", "--html", "report.html",
                    cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = (tmp_path / "report.md").read_text()
    assert "abl vs base" in report or "base vs abl" in report
    assert "0.289" in report  # the user's McNemar exact p, computed by the core install
    html = (tmp_path / "report.html").read_text()  # its template, CSS and JS ship in the wheel
    assert "0.289" in html and "renderMatrix" in html and "[plots] extra" in html  # no matplotlib: no figures


def test_a_verb_without_its_extra_says_which_pip_install(core_venv: Path, tmp_path: Path) -> None:
    helped = _ablbench(core_venv, "abliterate", "pipeline", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "--model" in helped.stdout
    out = _ablbench(core_venv, "abliterate", "pipeline", "--model", str(tmp_path), "--out", "x", cwd=tmp_path)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "pip install 'ablbench[abliterate]'" in lines[0] and "Traceback" not in out.stderr
