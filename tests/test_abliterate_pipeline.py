"""The whole pipeline on the bundled SmolLM2, on CPU, kept small: 16 prompts per bucket,
two candidate layers, short generations (the session fixture ``abliterated_run``). Then a resume
(nothing reruns) and a --layer override (only choose, bake and evaluate rerun)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from cli_helpers import CliRunner
from conftest import SMALL_PIPELINE as SMALL
from safetensors import safe_open

from abliterate.directions import read_ranking
from harness.cli import app

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def run_dir(abliterated_run, smollm2_dir):
    """The session's small pipeline run (tests/conftest.py: SMALL_PIPELINE settings)."""
    return abliterated_run, smollm2_dir


@pytest.fixture
def one_thread():
    """A busy 2-core box runs these forwards many times faster on one OpenMP thread."""
    before = torch.get_num_threads()
    mp = pytest.MonkeyPatch()
    mp.setenv("ABLBENCH_TORCH_THREADS", "1")
    yield
    mp.undo()
    torch.set_num_threads(before)


def test_run_folder_contents(run_dir):
    out, _ = run_dir
    refuse = [json.loads(x) for x in (out / "contrast_refuse.jsonl").read_text().splitlines()]
    comply = [json.loads(x) for x in (out / "contrast_comply.jsonl").read_text().splitlines()]
    assert len(refuse) == len(comply) == 16
    assert {r["category"] for r in refuse} >= {"files", "git", "networking", "permissions"}
    assert all("<|im_start|>assistant\n" in r["text"][-30:] for r in refuse + comply)
    acts = np.load(out / "activations" / "comply.npy", mmap_mode="r")
    assert acts.shape == (16, 30, 576) and np.isfinite(acts).all()
    with safe_open(str(out / "vectors" / "refusal_dirs.safetensors"), "pt") as fh:
        stack = fh.get_tensor("directions")
    assert stack.shape == (30, 576)
    torch.testing.assert_close(stack.norm(dim=1), torch.ones(30))
    choice = json.loads((out / "reports" / "choice.json").read_text())
    assert choice["chosen_layer"] in (8, 16) and [r["layer"] for r in choice["results"]] == [8, 16]
    assert all(r["kl"] >= 0 and np.isfinite(r["refusal_drop"]) for r in choice["results"])
    chosen = torch.load(out / "vectors" / "refusal_dir.pt", weights_only=True)
    assert chosen.dtype == torch.float32 and chosen.shape == (576,)
    torch.testing.assert_close(chosen, stack[choice["chosen_layer"]])
    ranking = read_ranking(out / "vectors" / "refusal_ranking.csv")
    assert len(ranking) == 30 and all(0.0 <= r["auc"] <= 1.0 for r in ranking)
    assert [r["layer"] for r in ranking if r["candidate"]] == [8, 16]
    assert [r["layer"] for r in ranking if r["chosen"]] == [choice["chosen_layer"]]
    assert (out / "vectors" / "refusal_layers.png").read_bytes()[:4] == b"\x89PNG"
    baked = json.loads((out / "abliterated_model" / "abliteration.json").read_text())
    assert baked["edited"]
    ev = json.loads((out / "reports" / "evaluation.json").read_text())
    assert ev["kl_first_token"]["comply"]["mean"] > 0  # the edit changed the model
    smoke = ev["samples"]["smoke"]
    assert [s["id"] for s in smoke] == ["smoke-refuse", "smoke-comply"]
    assert all(s["prompt"] == "List files in /tmp" and s["base"] and s["edited"] for s in smoke)
    assert "## smoke prompts" in (out / "reports" / "evaluation.md").read_text()
    rob = ev["robustness"]  # RRR / CE / RD and over-refusal, base vs edited
    assert {"base", "edited", "over_refusal", "RD"} <= set(rob) and 0.0 <= rob["RD"]["refuse"] <= 2.0
    report = json.loads((out / "reports" / "direction_report.json").read_text())
    assert report["base_refusal"]["n"] == 2 and -1.0 <= report["cos_with_presence"] <= 1.0
    for step in ("contrast", "capture", "directions", "choose", "report", "bake", "evaluate"):
        assert (out / "notes" / f"{step}.log").read_text().strip()


def test_resume_skips_finished_steps_and_reruns_changed_ones(run_dir, tmp_path, one_thread):
    shared, model = run_dir
    out = tmp_path / "run"
    shutil.copytree(shared, out)  # the session's run is shared: resume a copy (copy2 keeps mtimes)
    runner = CliRunner()
    state = (out / "notes" / "state.json").read_text()
    res = runner.invoke(app, ["abliterate", "pipeline", "--model", str(model), "--out", str(out), *SMALL])
    assert res.exit_code == 0, res.output
    assert res.output.count("up to date") == 7
    assert (out / "notes" / "state.json").read_text() == state

    res = runner.invoke(app, ["abliterate", "pipeline", "--model", str(model), "--out", str(out), *SMALL,
                              "--layer", "12"])
    assert res.exit_code == 0, res.output
    skipped = {s for s in ("contrast", "capture", "directions") if f"✓ {s}" in res.output}
    assert skipped == {"contrast", "capture", "directions"}
    assert "✓ choose" not in res.output and "✓ bake" not in res.output
    with safe_open(str(out / "vectors" / "refusal_dirs.safetensors"), "pt") as fh:
        row12 = fh.get_tensor("directions")[12]
    torch.testing.assert_close(torch.load(out / "vectors" / "refusal_dir.pt", weights_only=True), row12)
    assert json.loads((out / "reports" / "choice.json").read_text())["chosen_layer"] == 12
