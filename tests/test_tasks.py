"""Task loading: TB2/harbor and legacy tb folders, validation, discovery and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CliRunner

from ablbench.errors import AblbenchError
from ablbench.paths import BASE_IMAGE, BUNDLED_TASKS
from harness.cli import app
from harness.tasks import check_tasks, discover_tasks, load_task, parse_size_mb, sanitize_name

FIX = Path(__file__).parent / "fixtures"
TB2_GOOD, TB2_BAD = FIX / "tb2" / "good", FIX / "tb2" / "bad"
LEG_GOOD, LEG_BAD = FIX / "legacy" / "good", FIX / "legacy" / "bad"

# The 89 Terminal-Bench 2 task names (facts from the public task list, not its files).
TB2_NAMES = """adaptive-rejection-sampler bn-fit-modify break-filter-js-from-html build-cython-ext build-pmars
build-pov-ray caffe-cifar-10 cancel-async-tasks chess-best-move circuit-fibsqrt cobol-modernization code-from-image
compile-compcert configure-git-webserver constraints-scheduling count-dataset-tokens crack-7z-hash
custom-memory-heap-crash db-wal-recovery distribution-search dna-assembly dna-insert extract-elf
extract-moves-from-video feal-differential-cryptanalysis feal-linear-cryptanalysis filter-js-from-html
financial-document-processor fix-code-vulnerability fix-git fix-ocaml-gc gcode-to-text git-leak-recovery
git-multibranch gpt2-codegolf headless-terminal hf-model-inference install-windows-3.11 kv-store-grpc
large-scale-text-editing largest-eigenval llm-inference-batching-scheduler log-summary-date-ranges mailman
make-doom-for-mips make-mips-interpreter mcmc-sampling-stan merge-diff-arc-agi-task model-extraction-relu-logits
modernize-scientific-stack mteb-leaderboard mteb-retrieve multi-source-data-merger nginx-request-logging
openssl-selfsigned-cert overfull-hbox password-recovery path-tracing path-tracing-reverse polyglot-c-py
polyglot-rust-c portfolio-optimization protein-assembly prove-plus-comm pypi-server pytorch-model-cli
pytorch-model-recovery qemu-alpine-ssh qemu-startup query-optimize raman-fitting regex-chess regex-log
reshard-c4-data rstan-to-pystan sam-cell-seg sanitize-git-repo schemelike-metacircular-eval sparql-university
sqlite-db-truncate sqlite-with-gcov torch-pipeline-parallelism torch-tensor-parallelism train-fasttext tune-mjcf
video-processing vulnerable-secret winning-avg-corewars write-compressor""".split()  # noqa: SIM905


def messages(problems) -> list[str]:
    return [f"{p.path}: {p.message}" for p in problems]


# ------------------------------------------------------------------ TB2 format


def test_tb2_good_fixtures_load_with_their_settings():
    assert check_tasks(TB2_GOOD) == []
    specs = {s.name: s for s in discover_tasks(TB2_GOOD)}
    assert sorted(specs) == ["cert-bundle-audit", "log-window-report", "queue-drain"]

    log = specs["log-window-report"]
    assert log.format == "tb2"
    assert log.docker_image == "alexgshaw/log-window-report:20251031"
    assert log.dockerfile == TB2_GOOD / "log-window-report/environment/Dockerfile"
    assert log.build_context == TB2_GOOD / "log-window-report/environment"
    assert (log.agent_timeout_s, log.verifier_timeout_s, log.build_timeout_s) == (900.0, 900.0, 600.0)
    assert (log.cpus, log.memory_mb, log.storage_mb) == (1.0, 2048, 10240)
    assert log.allow_internet is True  # TB2 default
    assert log.test_script == "test.sh" and log.test_script_path == log.tests_dir / "test.sh"
    assert log.solution == TB2_GOOD / "log-window-report/solution/solve.sh"
    assert log.instruction.startswith("Summarise the log files")
    assert log.difficulty == "medium" and log.category == "data-processing"
    assert log.metadata["tags"] == ["logs", "bash"]

    cert = specs["cert-bundle-audit"]
    assert (cert.cpus, cert.memory_mb, cert.storage_mb) == (2.0, 4096, 10240)
    assert (cert.agent_timeout_s, cert.verifier_timeout_s, cert.build_timeout_s) == (1800.0, 600.0, 1200.0)
    assert "gpus" not in cert.metadata


def test_new_schema_task_table_name_is_sanitized_and_defaults_apply():
    spec = load_task(TB2_GOOD / "Schema12_Task")
    assert spec.name == "queue-drain"  # "fixture-org/Queue Drain": org prefix dropped, sanitized
    assert spec.metadata["task_name"] == "fixture-org/Queue Drain"
    assert spec.docker_image is None and spec.dockerfile is not None
    assert (spec.agent_timeout_s, spec.verifier_timeout_s) == (600.0, 600.0)
    assert spec.memory_mb == 512 and spec.cpus is None and spec.storage_mb is None
    assert spec.allow_internet is False
    assert spec.solution is None and spec.solution_script() is None


@pytest.mark.parametrize(("task", "fragment"), [
    ("missing-instruction", "missing-instruction/instruction.md: missing instruction"),
    ("broken-toml", "broken-toml/task.toml: invalid TOML"),
    ("no-test-script", "no-test-script/tests/test.sh: missing verifier entry point"),
    ("no-environment", "no environment/Dockerfile and no [environment] docker_image"),
    ("bad-values", "unsupported task.toml version '9.9'"),
    ("bad-values", "[agent] timeout_sec must be a positive number, got -5"),
    ("bad-values", "[environment] memory: not a size: 'lots'"),
    ("bad-values", "[environment] cpus must be a positive number, got 'two'"),
    ("bad-values", "[environment] allow_internet must be true or false, got 'yes'"),
])
def test_bad_tb2_fixtures_report_each_problem_with_its_path(task, fragment):
    found = messages(check_tasks(TB2_BAD))
    assert any(fragment in m for m in found), found
    with pytest.raises(AblbenchError) as err:
        load_task(TB2_BAD / task)
    assert "\n" not in str(err.value) and str(TB2_BAD / task) in str(err.value)


def test_check_reports_every_bad_tb2_task_and_discover_refuses():
    problems = check_tasks(TB2_BAD)
    assert {p.path.relative_to(TB2_BAD).parts[0] for p in problems} == {
        "missing-instruction", "broken-toml", "no-test-script", "no-environment", "bad-values"}
    assert len([p for p in problems if "bad-values" in str(p.path)]) == 5
    with pytest.raises(AblbenchError):
        discover_tasks(TB2_BAD)


def _tb2_copy(src: Path, dst: Path, name: str) -> None:
    shutil.copytree(src, dst)
    toml = dst / "task.toml"
    toml.write_text(toml.read_text().replace("log-window-report", name))


def test_a_tb2_shaped_copy_of_all_89_tasks_checks_clean(tmp_path):
    root = tmp_path / "terminal-bench-2"
    root.mkdir()
    (root / "README.md").write_text("# copy\n")
    (root / ".git").mkdir()
    for name in TB2_NAMES:
        _tb2_copy(TB2_GOOD / "log-window-report", root / name, name)
    assert len(TB2_NAMES) == 89
    assert check_tasks(root) == []
    specs = discover_tasks(root)
    assert [s.name for s in specs] == sorted(TB2_NAMES)
    assert specs[0].docker_image == "alexgshaw/adaptive-rejection-sampler:20251031"
    assert {s.memory_mb for s in specs} == {2048}
    picked = discover_tasks(root, include=["git-*", "fix-*"], exclude=["*-recovery"])
    assert [s.name for s in picked] == ["fix-code-vulnerability", "fix-git", "fix-ocaml-gc", "git-multibranch"]


# ------------------------------------------------------------------ legacy tb format


def test_legacy_fixtures_load():
    assert check_tasks(LEG_GOOD) == []
    hello = load_task(LEG_GOOD / "hello-legacy")
    assert hello.format == "legacy" and hello.name == "hello-legacy"
    assert hello.instruction.startswith("Create a file called hello.txt")
    assert (hello.agent_timeout_s, hello.verifier_timeout_s) == (180.0, 30.0)
    assert hello.dockerfile == LEG_GOOD / "hello-legacy/Dockerfile"
    assert hello.build_context == LEG_GOOD / "hello-legacy"
    assert hello.docker_image is None and hello.allow_internet is True
    assert hello.test_script == "run-tests.sh"
    assert hello.test_script_path == LEG_GOOD / "hello-legacy/run-tests.sh"
    assert hello.solution == LEG_GOOD / "hello-legacy/solution.sh"
    assert hello.difficulty == "easy" and hello.metadata["parser_name"] == "pytest"


def test_legacy_defaults_compose_build_and_solution_yaml():
    spec = load_task(LEG_GOOD / "old-descriptions")
    assert spec.instruction == "Print the kernel name into /app/uname.txt."
    assert (spec.agent_timeout_s, spec.verifier_timeout_s) == (360.0, 60.0)
    assert spec.build_context == LEG_GOOD / "old-descriptions/docker"
    assert spec.dockerfile == LEG_GOOD / "old-descriptions/docker/Dockerfile.client"
    script = spec.solution_script()
    assert script.splitlines() == ["#!/bin/bash", "uname -s > /app/uname.txt", "cat /app/uname.txt"]
    # the script it gives is real bash that runs
    out = subprocess.run(["bash", "-c", script.replace("/app/uname.txt", os.devnull)], capture_output=True)
    assert out.returncode == 0


def test_legacy_bad_fixtures():
    found = messages(check_tasks(LEG_BAD))
    assert any("no-instruction/task.yaml: no instruction" in m for m in found), found
    assert any("broken-yaml/task.yaml: invalid YAML" in m for m in found), found
    assert any("compose-escape" in m and "points outside the task folder" in m for m in found), found


# ------------------------------------------------------------------ paths, names, sizes


def test_symlink_escaping_the_task_folder_is_rejected(tmp_path):
    task = tmp_path / "escape"
    shutil.copytree(TB2_GOOD / "cert-bundle-audit", task)
    (task / "tests" / "test.sh").unlink()
    (task / "tests" / "test.sh").symlink_to("/etc/passwd")
    (task / "environment" / "secrets").symlink_to(tmp_path)
    found = messages(check_tasks(task))
    assert any("tests/test.sh: points outside the task folder" in m for m in found), found
    assert any("environment/secrets: points outside the task folder" in m for m in found), found
    assert len(found) == len(set(found)) == 2
    with pytest.raises(AblbenchError, match="points outside the task folder"):
        load_task(task)


def test_symlink_loop_is_reported(tmp_path):
    task = tmp_path / "loop"
    shutil.copytree(TB2_GOOD / "cert-bundle-audit", task)
    (task / "tests" / "a").symlink_to("b")
    (task / "tests" / "b").symlink_to("a")
    found = messages(check_tasks(task))
    assert any("tests/a: symlink cannot be resolved" in m for m in found), found


def test_symlink_inside_the_task_folder_is_fine(tmp_path):
    task = tmp_path / "inside"
    shutil.copytree(TB2_GOOD / "cert-bundle-audit", task)
    (task / "tests" / "run.sh").symlink_to("test.sh")
    assert check_tasks(task) == []


def test_duplicate_names_are_reported(tmp_path):
    for folder in ("one", "two"):
        shutil.copytree(TB2_GOOD / "Schema12_Task", tmp_path / folder)
    found = messages(check_tasks(tmp_path))
    assert len(found) == 1 and "'queue-drain' is also used by" in found[0]
    with pytest.raises(AblbenchError, match="also used by"):
        discover_tasks(tmp_path)


def test_folder_that_looks_like_a_task_without_config_is_reported(tmp_path):
    shutil.copytree(TB2_GOOD / "cert-bundle-audit", tmp_path / "ok")
    (tmp_path / "orphan").mkdir()
    (tmp_path / "orphan" / "instruction.md").write_text("do it")
    found = messages(check_tasks(tmp_path))
    assert found == [f"{tmp_path / 'orphan'}: looks like a task but has no task.toml or task.yaml"]
    assert [s.name for s in discover_tasks(tmp_path)] == ["ok"]


def test_empty_or_missing_roots(tmp_path):
    assert "no tasks found" in messages(check_tasks(tmp_path))[0]
    with pytest.raises(AblbenchError, match="no tasks found"):
        discover_tasks(tmp_path)
    with pytest.raises(AblbenchError, match="no such folder"):
        discover_tasks(tmp_path / "missing")
    with pytest.raises(AblbenchError, match="not a task folder"):
        load_task(tmp_path)


def test_a_task_folder_root_yields_that_task():
    specs = discover_tasks(TB2_GOOD / "log-window-report")
    assert [s.name for s in specs] == ["log-window-report"]
    assert discover_tasks(TB2_GOOD / "log-window-report", exclude=["log-*"]) == []


@pytest.mark.parametrize(("raw", "want"), [
    ("Fix Git", "fix-git"), ("install-windows-3.11", "install-windows-3.11"), ("a__b", "a__b"),
    ("../../etc", "etc"), ("Déjà vu!", "d-j-vu"), ("  --x--  ", "x"), ("...", ""),
])
def test_sanitize_name(raw, want):
    assert sanitize_name(raw) == want


@pytest.mark.parametrize(("raw", "mb"), [
    ("2G", 2048), ("512M", 512), ("1.5Gi", 1536), ("2GB", 2048), ("10g", 10240), ("1T", 1048576),
    ("2048", 2048), (4096, 4096), ("512k", 1),
])
def test_parse_size_mb(raw, mb):
    assert parse_size_mb(raw) == mb


@pytest.mark.parametrize("raw", ["lots", "-1G", "0", "2X", True, ""])
def test_parse_size_mb_rejects(raw):
    with pytest.raises(ValueError):
        parse_size_mb(raw)


# ------------------------------------------------------------------ bundled tasks (static)


def test_bundled_tasks_are_valid_offline_and_spread():
    assert check_tasks(BUNDLED_TASKS) == []
    specs = discover_tasks(BUNDLED_TASKS)
    assert len(specs) >= 8
    assert {s.difficulty for s in specs} == {"easy", "medium", "hard"}
    assert len({s.category for s in specs}) >= 6
    for s in specs:
        assert s.format == "tb2" and not s.allow_internet, s.name
        assert s.docker_image is None and s.dockerfile is not None, s.name
        assert s.dockerfile.read_text().splitlines()[0] == f"FROM {BASE_IMAGE}", s.name
        assert s.solution is not None and s.instruction.strip(), s.name
        assert 300 <= s.agent_timeout_s <= 900 and 60 <= s.verifier_timeout_s <= 120, s.name
        assert (s.tests_dir / "check.py").is_file(), s.name
    assert {"hello-world", "make-output-dir"} <= {s.name for s in specs}


def test_bundled_checker_writes_reward_and_ctrf_when_the_work_is_missing(tmp_path):
    # hello-world's checker, run on this machine, finds no /app/hello.txt
    env = {**os.environ, "VERIFIER_LOG_DIR": str(tmp_path)}
    tests = BUNDLED_TASKS / "hello-world" / "tests"
    out = subprocess.run([sys.executable, str(tests / "check.py")], cwd=tests, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert (tmp_path / "reward.txt").read_text().strip() == "0"
    ctrf = json.loads((tmp_path / "ctrf.json").read_text())
    assert ctrf["results"]["summary"]["tests"] == 2 and ctrf["results"]["summary"]["failed"] == 2
    assert {t["status"] for t in ctrf["results"]["tests"]} == {"failed"}


# ------------------------------------------------------------------ CLI


def test_cli_list_and_check():
    runner = CliRunner()
    res = runner.invoke(app, ["tasks", "list", str(TB2_GOOD)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "log-window-report" in res.output and "alexgshaw/cert-bundle-audit:20251031" in res.output

    res = runner.invoke(app, ["tasks", "check"])
    assert res.exit_code == 0 and "ok:" in res.output, res.output

    res = runner.invoke(app, ["tasks", "check", str(TB2_BAD)])
    assert res.exit_code == 1
    assert str(TB2_BAD / "broken-toml" / "task.toml") in res.output
    assert "9 problem(s)" in res.output

    res = runner.invoke(app, ["tasks", "list", str(TB2_BAD)])
    assert res.exit_code == 1 and "error:" in res.output


def test_filters_skip_broken_tasks_they_leave_out(tmp_path):
    shutil.copytree(TB2_GOOD / "cert-bundle-audit", tmp_path / "cert-bundle-audit")
    shutil.copytree(TB2_BAD / "broken-toml", tmp_path / "broken-toml")
    with pytest.raises(AblbenchError, match="broken-toml/task.toml: invalid TOML"):
        discover_tasks(tmp_path)
    assert [s.name for s in discover_tasks(tmp_path, exclude=["broken-*"])] == ["cert-bundle-audit"]
    assert [s.name for s in discover_tasks(tmp_path, include="cert-*")] == ["cert-bundle-audit"]
    assert discover_tasks(tmp_path, include=["nothing-*"]) == []


def test_future_minor_schema_and_empty_image_are_accepted(tmp_path):
    task = tmp_path / "later"
    shutil.copytree(TB2_GOOD / "Schema12_Task", task)
    toml = task / "task.toml"
    toml.write_text(toml.read_text().replace('schema_version = "1.2"', 'schema_version = "1.3"')
                    .replace("[environment]", '[environment]\ndocker_image = ""'))
    spec = load_task(task)
    assert spec.docker_image is None and spec.dockerfile == task / "environment/Dockerfile"
    toml.write_text(toml.read_text().replace('"1.3"', '"2.0"'))
    assert "unsupported task.toml version '2.0'" in messages(check_tasks(task))[0]
