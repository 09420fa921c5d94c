"""Control edits: a seeded random unit direction orthogonal to the run's, baked with the run's
strengths; its abliteration.json says it is a control and records the seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_runs import build_tiny_run

from abliterate.bake.run import bake
from abliterate.control import random_orthogonal
from abliterate.directions import blend, load_directions
from harness.cli import app


@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(2, 600), rseed=st.integers(0, 1000))
@settings(max_examples=60, deadline=None)
def test_random_control_is_unit_orthogonal_and_seeded(seed, dim, rseed):
    r = np.random.default_rng(rseed).standard_normal(dim) * 7.0
    v = random_orthogonal(r, seed)
    assert v.shape == (dim,) and abs(np.linalg.norm(v) - 1.0) < 1e-12
    assert abs(v @ r) / np.linalg.norm(r) < 1e-12
    np.testing.assert_array_equal(v, random_orthogonal(r, seed))
    if dim > 8:
        assert not np.allclose(v, random_orthogonal(r, seed + 1))


@pytest.fixture(scope="module")
def baked_run(tmp_path_factory):
    model, run = build_tiny_run(tmp_path_factory.mktemp("tiny-control"))
    stack, _ = load_directions(run / "vectors")
    from abliterate.directions import save_chosen

    save_chosen(run / "vectors", blend(stack, 1.5))
    bake(model, run / "vectors" / "refusal_dir.pt", run / "abliterated_model", layer=1.5, progress=False,
         components=("attn", "mlp", "embed"), attn={"peak": 1.2, "pos": 2, "edge": 0.3, "width": 1.5}, mlp=0.6)
    return model, run


def test_control_cli_bakes_same_strengths_other_direction(baked_run, tmp_path):
    model, run = baked_run
    out = tmp_path / "control"
    res = CliRunner().invoke(app, ["abliterate", "control", "--model", str(model), "--run", str(run),
                                   "--out", str(out), "--seed", "7", "--quiet"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "--model control=" in res.output
    ref = json.loads((run / "abliterated_model" / "abliteration.json").read_text())
    ctl = json.loads((out / "abliteration.json").read_text())
    assert ctl["control"]["kind"] == "random_orthogonal" and ctl["control"]["seed"] == 7
    assert abs(ctl["control"]["cos_to_reference"]) < 1e-6
    assert ctl["direction"]["unit_vector_sha256"] != ref["direction"]["unit_vector_sha256"]
    for key in ("components", "weight", "profiles", "norm_preserve"):
        assert ctl[key] == ref[key]
    assert [(e["key"], e["alpha"]) for e in ctl["edited"]] == [(e["key"], e["alpha"]) for e in ref["edited"]]
    # the same seed bakes the same control
    again = tmp_path / "again"
    res = CliRunner().invoke(app, ["abliterate", "control", "--model", str(model), "--run", str(run),
                                   "--out", str(again), "--seed", "7", "--quiet"])
    assert res.exit_code == 0
    assert json.loads((again / "abliteration.json").read_text())["output"]["files"] == ctl["output"]["files"]


def test_control_from_a_second_contrast_direction(baked_run, tmp_path):
    model, run = baked_run
    res = CliRunner().invoke(app, ["abliterate", "control", "--model", str(model), "--run", str(run),
                                   "--out", str(tmp_path / "c2"), "--direction",
                                   str(run / "vectors" / "refusal_dirs.safetensors"), "--layer", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    ctl = json.loads((tmp_path / "c2" / "abliteration.json").read_text())["control"]
    assert ctl["kind"] == "second_contrast" and ctl["seed"] is None and -1 <= ctl["cos_to_reference"] <= 1


def test_control_without_a_baked_run_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["abliterate", "control", "--model", str(tmp_path), "--run", str(tmp_path),
                                   "--out", str(tmp_path / "c")])
    assert res.exit_code == 1 and "bake the run first" in res.output


def test_bake_run_reproduces_the_runs_edit_in_another_copy(baked_run, tmp_path):
    model, run = baked_run
    res = CliRunner().invoke(app, ["abliterate", "bake-run", "--model", str(model), "--run", str(run),
                                   "--out", str(tmp_path / "copy"), "--quiet"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    ref = json.loads((run / "abliterated_model" / "abliteration.json").read_text())
    rep = json.loads((tmp_path / "copy" / "abliteration.json").read_text())
    assert rep["direction"]["unit_vector_sha256"] == ref["direction"]["unit_vector_sha256"]
    assert [(e["key"], e["alpha"]) for e in rep["edited"]] == [(e["key"], e["alpha"]) for e in ref["edited"]]
    assert rep["output"]["files"]["model.safetensors"] == ref["output"]["files"]["model.safetensors"]


def test_gguf_control_prints_a_three_arm_command_whose_paths_work(baked_run, tmp_path):
    from tiny_gguf import hf_to_gguf

    model, run = baked_run
    gguf_model = hf_to_gguf(model, tmp_path / "tiny.gguf")
    res = CliRunner().invoke(app, ["abliterate", "control", "--model", str(gguf_model), "--run", str(run),
                                   "--out", str(tmp_path / "control"), "--gguf-type", "f32", "--quiet"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    lines = res.output.splitlines()
    bench = next(line for line in lines if line.startswith("three-arm benchmark:"))
    arms = dict(arg.split("=", 1) for arg in bench.split() if "=" in arg)
    assert arms["base"] == str(gguf_model)
    assert arms["control"].endswith(".control.gguf") and (tmp_path / "control" / "tiny.control.gguf").is_file()
    assert lines[-1] == arms["control"]
    # the printed bake-run command makes the abl arm's GGUF
    hint = next(line for line in lines if line.startswith("the run's edit as a GGUF:"))
    argv = hint.split(": ablbench ", 1)[1].split() + ["--gguf-type", "f32", "--quiet"]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert arms["abl"] == str(tmp_path / "abliterated.gguf") and (tmp_path / "abliterated.gguf").is_file()
