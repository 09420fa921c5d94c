"""The same harness in every arm, the same task versions (issue 25, items 3 and 4), with real runs.

A real ``ablbench run`` with the Terminus agent (a scripted OpenAI-compatible server on
127.0.0.1 stands in for the model) records the harness identity in run.json. A copy of that
run whose run.json names another parser rules version stands for a run made by another
ablbench; a copy without the identity stands for a run folder made before it existed. Task
drift uses two real oracle runs of two versions of the audit fixture tasks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CliRunner
from test_agent_scripted_server import ScriptedServer
from test_audit import AUDIT_TASKS, oracle_run

from ablbench.paths import REPO_ROOT
from harness.analysis import AnalyzeOptions, analyze, load_run
from harness.analysis.report import to_markdown
from harness.cli import app
from harness.identity import FIELDS, identity_differences, prompt_sha256
from harness.parser import RULES_VERSION
from harness.task_versions import diff_tasks
from harness.tasks import discover_tasks

COMPLETE = '{"analysis": "done", "plan": "stop", "commands": [], "task_complete": true}'


def _analyze(*args: str):
    return CliRunner().invoke(app, ["analyze", *args])


def _edit_run_json(folder: Path, change) -> None:
    path = folder / "run.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _terminus(out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``ablbench run`` of honest-answer with the Terminus agent against a scripted model server."""
    with ScriptedServer([COMPLETE], model="scripted") as srv:
        return subprocess.run(
            [sys.executable, "-c", "from harness.cli import main; main()", "run", "--tasks", str(AUDIT_TASKS),
             "--include", "honest-answer", "--model-url", srv.base_url, "--model", "scripted", "--max-turns", "3",
             "--temperature", "0.2", "--out", str(out), "--quiet", *extra],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


@pytest.fixture(scope="module")
def terminus_run(docker_client, base_image, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("drift") / "terminus"
    proc = _terminus(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.docker
def test_resume_refuses_another_parser_rules_version(terminus_run, tmp_path):
    started = tmp_path / "started"
    shutil.copytree(terminus_run, started)
    _edit_run_json(started, lambda d: d["harness"].update(parser_rules=RULES_VERSION + 1))
    proc = _terminus(started, "--resume")
    assert proc.returncode == 1
    assert f"harness.parser_rules ({RULES_VERSION + 1} -> {RULES_VERSION})" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.docker
def test_run_json_records_the_harness_identity(terminus_run):
    ident = json.loads((terminus_run / "run.json").read_text())["harness"]
    assert set(FIELDS) <= set(ident)
    assert ident["parser_rules"] == RULES_VERSION and ident["prompt_sha256"] == prompt_sha256()
    assert (ident["max_turns"], ident["max_tokens"], ident["structured"]) == (3, 4096, False)
    assert ident["sampling"]["temperature"] == 0.2 and ident["timeout_multiplier"] == 1.0
    sha = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert ident["git_commit"].startswith(sha.strip()) and ident["ablbench_version"]


@pytest.mark.docker
def test_analyze_refuses_runs_with_another_parser_rules_version(terminus_run, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(terminus_run, newer)
    _edit_run_json(newer, lambda d: d["harness"].update(parser_rules=RULES_VERSION + 1))
    out = _analyze(str(terminus_run), str(newer), "--names", "a,b")
    assert out.exit_code == 1
    error = out.output.strip().splitlines()
    assert len(error) == 1, out.output  # one line: every differing field and the fix
    assert f"parser_rules (a {RULES_VERSION}, b {RULES_VERSION + 1})" in error[0]
    assert "--allow-harness-drift" in error[0]
    allowed = _analyze(str(terminus_run), str(newer), "--names", "a,b", "--allow-harness-drift", "--markdown", "-")
    assert allowed.exit_code == 0, allowed.output
    assert f"**differs** in parser_rules (a {RULES_VERSION}, b {RULES_VERSION + 1})" in allowed.output


@pytest.mark.docker
def test_an_old_run_folder_without_the_identity_still_loads(terminus_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(terminus_run, old)
    _edit_run_json(old, lambda d: d.pop("harness"))
    out = _analyze(str(terminus_run), str(old), "--names", "new,old", "--json", str(tmp_path / "a.json"))
    assert out.exit_code == 0, out.output
    assert "harness identity unknown" in out.output and "old: all fields (no harness identity recorded)" in out.output
    res = json.loads((tmp_path / "a.json").read_text())
    assert res["harness_drift"] == {"differ": [], "unknown": ["old: all fields (no harness identity recorded)"],
                                    "allowed": False}


def test_identity_fields_missing_on_one_side_are_unknown_not_different():
    a = {f: 1 for f in FIELDS}
    b = {f: 1 for f in FIELDS if f != "prompt_sha256"} | {"max_turns": 5}
    differ, unknown = identity_differences({"a": a, "b": b})
    assert differ == ["max_turns (a 1, b 5)"] and unknown == ["b: prompt_sha256"]


@pytest.fixture(scope="module")
def two_task_versions(docker_client, base_image, tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """(old tasks, new tasks, oracle run of old, oracle run of new): honest-answer's tests changed."""
    root = tmp_path_factory.mktemp("versions")
    old, new = root / "tasks-2.0", root / "tasks-2.1"
    shutil.copytree(AUDIT_TASKS, old)
    shutil.copytree(AUDIT_TASKS, new)
    check = new / "honest-answer" / "tests" / "check.py"
    check.write_text(check.read_text().replace('== "42"', 'in ("42", "42.0")'))
    return old, new, oracle_run(old, root / "run-old"), oracle_run(new, root / "run-new")


@pytest.mark.docker
def test_drifted_tasks_leave_the_analysis_with_the_reason(two_task_versions, tmp_path):
    _, _, run_old, run_new = two_task_versions
    out = _analyze(str(run_old), str(run_new), "--names", "v20,v21", "--markdown", str(tmp_path / "r.md"))
    assert out.exit_code == 0, out.output
    warning = [line for line in out.output.splitlines() if "differ in content" in line]
    assert warning == ["warning: 1 task(s) differ in content between runs (honest-answer): left out of the "
                       "analysis; --allow-task-drift keeps them"]
    md = (tmp_path / "r.md").read_text()
    assert "left out of the whole analysis, because a same-named task with other content is another task" in md
    assert "- honest-answer: v20 " in md
    runs = [load_run(run_old, "v20"), load_run(run_new, "v21")]
    res = analyze(runs)
    assert res["n_tasks"] == 2 and "honest-answer" not in res["runs"][0]["per_task_rate"]
    assert [d["task"] for d in res["task_drift"]["tasks"]] == ["honest-answer"]
    kept = analyze(runs, AnalyzeOptions(allow_task_drift=True))
    assert kept["n_tasks"] == 3 and kept["task_drift"]["kept"] is True
    assert "kept in the analysis (--allow-task-drift)" in to_markdown(kept)


@pytest.mark.docker
def test_tasks_diff_lists_changed_added_and_removed(two_task_versions):
    old, new, _, _ = two_task_versions
    shutil.copytree(new / "honest-answer", new / "extra-task")
    (new / "extra-task" / "instruction.md").write_text("Another task.\n")
    shutil.rmtree(new / "hook-the-tests")
    try:
        out = CliRunner().invoke(app, ["tasks", "diff", str(old), str(new)])
        assert out.exit_code == 0, out.output
        lines = out.output.splitlines()
        assert "changed  honest-answer: tests/check.py" in lines
        assert "added    extra-task" in lines and "removed  hook-the-tests" in lines
        assert lines[-1] == "1 changed, 1 added, 1 removed, 1 the same"
        d = diff_tasks(discover_tasks(old), discover_tasks(old))
        assert not d.changed and d.same == sorted(s.name for s in discover_tasks(old))
    finally:
        shutil.rmtree(new / "extra-task")
        shutil.copytree(AUDIT_TASKS / "hook-the-tests", new / "hook-the-tests")
