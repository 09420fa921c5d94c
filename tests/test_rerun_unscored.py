"""``--resume --rerun-unscored`` (issue 25, item 6) with real trials in containers.

One run holds a pass, a failure, a verifier error (the test script writes no reward) and an
infrastructure error (the image does not build). After the two broken tasks are fixed:
``--rerun-unscored`` reruns exactly the two unscored trials and keeps the pass and the failure
untouched; ``--rerun-errors`` reruns the infrastructure error only and keeps the verifier error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import CliRunner
from test_runner import _scheduler, make_task

from harness.agents.simple import OracleAgent
from harness.cli import app
from harness.tasks import discover_tasks
from runners.scheduler import unscored

NO_REWARD = "#!/bin/bash\necho 'the verifier set-up failed before any reward'\n"


def _outcomes(out: Path) -> dict[str, tuple[str, str]]:
    """task -> (outcome, started_at) from the trial folders."""
    found = {}
    for p in out.glob("*/1/result.json"):
        data = json.loads(p.read_text())
        found[p.parent.parent.name] = (data["outcome"], data["started_at"])
    return found


@pytest.mark.docker
def test_rerun_unscored_reruns_only_what_the_verifier_did_not_score(docker_client, base_image, tmp_path,
                                                                     test_labels):
    root = tmp_path / "tasks"
    make_task(root, "passes")
    make_task(root, "fails", solve="echo wrong > /app/out.txt\n")
    verr = make_task(root, "no-reward", test=NO_REWARD)
    broken = make_task(root, "broken-image")
    (broken / "environment" / "Dockerfile").write_text("FROM ablbench/base:bookworm\nRUN exit 7\n")
    out = tmp_path / "out"
    _scheduler(docker_client, discover_tasks(root), OracleAgent, out, test_labels, retries=0).run()
    first = _outcomes(out)
    assert {k: v[0] for k, v in first.items()} == {"passes": "passed", "fails": "failed",
                                                    "no-reward": "verifier_error", "broken-image": "infra_error"}
    # the machinery is fixed; the same tasks otherwise
    (broken / "environment" / "Dockerfile").write_text("FROM ablbench/base:bookworm\nWORKDIR /app\n")
    (verr / "tests" / "test.sh").write_text((root / "passes" / "tests" / "test.sh").read_text())
    other = tmp_path / "out-errors"
    shutil.copytree(out, other)
    specs = discover_tasks(root)

    again = _scheduler(docker_client, specs, OracleAgent, out, test_labels, retries=0)
    again.config.resume = again.config.rerun_unscored = True
    summary = again.run()
    after = _outcomes(out)
    assert summary.kept == 2
    assert after["passes"] == first["passes"] and after["fails"] == first["fails"]  # untouched: same start
    assert after["no-reward"][0] == "passed" and after["broken-image"][0] == "passed"

    errors = _scheduler(docker_client, specs, OracleAgent, other, test_labels, retries=0)
    errors.config.resume = errors.config.rerun_errors = True
    errors.run()
    by_errors = _outcomes(other)
    assert by_errors["no-reward"] == first["no-reward"]  # --rerun-errors keeps a verifier error
    assert by_errors["broken-image"][0] == "passed"


def test_unscored_reads_the_verifier_record():
    scored = {"outcome": "failed", "verifier": {"reward": 0.0, "error": None}}
    assert not unscored(scored)
    assert not unscored({"outcome": "passed"})  # an older result.json without the verifier record
    assert unscored({"outcome": "llm_error", "verifier": {"reward": 0.0}})
    assert unscored({"outcome": "verifier_error", "verifier": {"reward": None}})
    assert unscored({"outcome": "failed", "verifier": None})  # labelled failed, but nothing scored it


def test_rerun_unscored_needs_resume_and_keeps_scored_trials(tmp_path):
    alone = CliRunner().invoke(app, ["run", "--agent", "oracle", "--out", str(tmp_path), "--rerun-unscored"])
    assert alone.exit_code == 1 and "only make sense with --resume" in alone.output
    both = CliRunner().invoke(app, ["run", "--agent", "oracle", "--out", str(tmp_path), "--resume",
                                    "--rerun-unscored", "--rerun", "failed"])
    assert both.exit_code == 1
    assert "--rerun-unscored keeps every scored trial, but --rerun failed reruns scored ones" in both.output
