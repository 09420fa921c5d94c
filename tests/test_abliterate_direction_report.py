"""The direction report: base refusal with a Wilson bound, the system-prompt-presence contrast,
and the warning when the baked direction is mostly that."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import CliRunner
from safetensors.numpy import load_file
from tiny_runs import build_tiny_run

from abliterate.control import random_orthogonal
from abliterate.direction_report import direction_report, spread, verdict_sentences
from abliterate.directions import blend, load_directions, save_chosen
from abliterate.fsio import write_json
from abliterate.model import load_model
from harness.cli import app


@pytest.fixture(scope="module")
def chosen_run(tmp_path_factory):
    model, run = build_tiny_run(tmp_path_factory.mktemp("tiny-report"))
    stack, _ = load_directions(run / "vectors")
    save_chosen(run / "vectors", blend(stack, 2.0))
    write_json(run / "reports" / "choice.json", {"chosen_layer": 2.0})
    return model, run


def test_cli_writes_report_and_presence_directions(chosen_run):
    model, run = chosen_run
    res = CliRunner().invoke(app, ["abliterate", "direction-report", "--model", str(model), "--run", str(run),
                                   "--prompts", "4", "--gen-tokens", "6"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    rep = json.loads((run / "reports" / "direction_report.json").read_text())
    assert rep["base_refusal"]["n"] == 4 and len(rep["cos_per_layer"]) == 4
    lo, hi = rep["base_refusal"]["ci"]
    assert 0 <= lo <= rep["base_refusal"]["rate"] <= hi <= 1
    presence = load_file(str(run / "vectors" / "sysprompt_dirs.safetensors"))["directions"]
    assert presence.shape == (4, 64) and np.allclose(np.linalg.norm(presence, axis=1), 1, atol=1e-5)
    chosen = np.asarray(blend(load_directions(run / "vectors")[0], 2.0))
    assert rep["cos_with_presence"] == pytest.approx(float(chosen @ blend(presence, 2.0)), abs=1e-5)
    assert rep["verdict"][0] in res.output and (run / "reports" / "direction_report.md").is_file()


def test_presence_direction_itself_gets_the_warning_and_an_orthogonal_one_does_not(chosen_run):
    model, run = chosen_run
    lm = load_model(model, device="cpu", dtype="float32")
    direction_report(lm, run, n_prompts=2, gen_tokens=2)  # writes the presence stack
    p = blend(load_file(str(run / "vectors" / "sysprompt_dirs.safetensors"))["directions"], 1.0)
    rep = direction_report(lm, run, direction=p, layer=1.0, n_prompts=2, gen_tokens=2)
    assert rep["mostly_presence"] and rep["cos_with_presence"] == pytest.approx(1.0, abs=1e-5)
    assert rep["verdict"][1].startswith("WARNING: the baked direction is mostly")
    rep = direction_report(lm, run, direction=random_orthogonal(p, 3), layer=1.0, n_prompts=2, gen_tokens=2)
    assert not rep["mostly_presence"] and "not mainly" in rep["verdict"][1]


def test_verdict_thresholds():
    no = {"rate": 0.0, "k": 0, "n": 32, "ci": [0.0, 0.107]}
    yes = {"rate": 0.5, "k": 16, "n": 32, "ci": [0.34, 0.66]}
    assert "does NOT measurably refuse" in verdict_sentences(no, 0.1, 0.0, 7, refuses=False)[0]
    assert "measurably refuses" in verdict_sentences(yes, 0.1, 0.0, 7, refuses=True)[0]
    assert "partly" in verdict_sentences(yes, 0.1, -0.5, 7, True)[1]
    assert "WARNING" in verdict_sentences(yes, 0.1, -0.75, 7, True)[1]
    assert [r["id"] for r in spread([{"id": i} for i in range(10)], 3)] == [0, 4, 9]
