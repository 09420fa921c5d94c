"""Directions and diagnostics from captured activations (synthetic captures with known answers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from abliterate.choose import default_candidates, pick
from abliterate.directions import (
    DIRS_FILE,
    RANKING_FILE,
    auc,
    blend,
    load_directions,
    read_ranking,
    save_chosen,
    separation,
    write_directions,
)
from abliterate.errors import AbliterationError
from abliterate.evaluate.markers import is_refusal, refusal_rate


def fake_capture(folder, n=40, layers=5, d=16, signal_layers=(2, 3), seed=0):
    """Write a capture folder where only ``signal_layers`` separate the buckets along axis 0."""
    rng = np.random.default_rng(seed)
    refuse = rng.normal(size=(n, layers, d)).astype(np.float32) + 3.0  # shared offset: the comply mean is not 0
    comply = rng.normal(size=(n, layers, d)).astype(np.float32) + 3.0
    for k in signal_layers:
        refuse[:, k, 0] += 6.0
    splits = ["eval" if i % 4 == 0 else "train" for i in range(n)]
    folder.mkdir(parents=True)
    np.save(folder / "refuse.npy", refuse)
    np.save(folder / "comply.npy", comply)
    train = [i for i, s in enumerate(splits) if s == "train"]
    save_file({"refuse_train": refuse[train].astype(np.float64).mean(0),
               "comply_train": comply[train].astype(np.float64).mean(0)}, str(folder / "means.safetensors"))
    meta = {"model": "synthetic", "buckets": {b: {"splits": splits} for b in ("refuse", "comply")}}
    (folder / "meta.json").write_text(json.dumps(meta))
    return refuse, comply, train


def test_directions_diagnostics_and_files(tmp_path):
    refuse, comply, train = fake_capture(tmp_path / "acts")
    res = write_directions(tmp_path / "acts", tmp_path / "vectors")
    stack, meta = load_directions(tmp_path / "vectors")
    assert stack.shape == (5, 16) and stack.dtype == np.float32 and meta["variant"] == "diff"
    np.testing.assert_allclose(np.linalg.norm(stack, axis=1), 1.0, atol=1e-6)
    diff = refuse[train, 2].astype(np.float64).mean(0) - comply[train, 2].astype(np.float64).mean(0)
    np.testing.assert_allclose(stack[2], diff / np.linalg.norm(diff), atol=1e-6)
    rows = {r["layer"]: r for r in res["layers"]}
    assert rows[2]["auc"] == 1.0 and rows[3]["auc"] == 1.0
    assert rows[0]["auc"] < 0.95 and rows[2]["separation"] > 5 > abs(rows[0]["separation"])
    assert np.isnan(rows[0]["cos_prev"]) and rows[3]["cos_prev"] > 0.9  # layers 2 and 3 share the axis
    # projected variant: orthogonal to the comply mean
    with safe_open(str(tmp_path / "vectors" / DIRS_FILE), "np") as fh:
        proj, mc = fh.get_tensor("directions_projected"), fh.get_tensor("mean_comply")
    assert abs(float(proj[2] @ mc[2])) < 1e-4 * float(np.linalg.norm(mc[2]))
    ranking = read_ranking(tmp_path / "vectors" / RANKING_FILE)
    assert [r["layer"] for r in ranking] == list(range(5)) and ranking[2]["auc"] == 1.0
    png = (tmp_path / "vectors" / "refusal_layers.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_chosen_vector_file_is_a_unit_fp32_tensor(tmp_path):
    stack = np.eye(4, dtype=np.float32)
    v = blend(stack, 1.5)
    np.testing.assert_allclose(v, [0, 2 ** -0.5, 2 ** -0.5, 0], atol=1e-7)
    path = save_chosen(tmp_path, v)
    t = torch.load(path, weights_only=True)
    assert t.dtype == torch.float32 and t.shape == (4,)
    with pytest.raises(AbliterationError, match="outside"):
        blend(stack, 3.5)


def test_rank_statistics():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    assert separation(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 0.0


def test_candidates_skip_the_last_fifth():
    cands = default_candidates(30, 6)
    assert len(cands) == 6 and max(cands) < 24 and min(cands) >= 1
    assert default_candidates(4, 2) == [1, 3]
    assert default_candidates(10, 3) == [1, 4, 7]


def test_refusal_markers():
    assert is_refusal("I\u2019m sorry, but as an AI I cannot access your filesystem.")
    assert is_refusal("Unfortunately I don't have access to a shell.")
    assert not is_refusal('{"analysis": "list /tmp", "commands": [{"keystrokes": "ls /tmp\\n"}]}')
    assert refusal_rate(["I can't do that", "ls -la /tmp"]) == 0.5


def _res(layer, drop, kl, marker_drop=None):
    return {"layer": layer, "refusal_drop": drop, "kl": kl, "marker_drop": marker_drop}


def test_pick_rule():
    results = [_res(3, 2.0, 0.5), _res(7, 0.6, 0.08), _res(11, 0.9, 0.09), _res(15, 0.1, 0.01)]
    best, bound, relaxed, _ = pick(results, 0.1, use_markers=False)
    assert best["layer"] == 11 and bound == 0.1 and not relaxed  # best drop under the KL bound
    results = [_res(3, 2.0, 5.0), _res(7, 0.6, 0.19), _res(11, 0.9, 0.25), _res(15, 0.1, 0.11)]
    best, bound, relaxed, reason = pick(results, 0.1, use_markers=False)
    assert relaxed and bound == 0.22 and best["layer"] == 7 and "relaxed" in reason
    results = [_res(7, 0.6, 0.05, marker_drop=0.1), _res(11, 0.2, 0.05, marker_drop=0.5)]
    assert pick(results, 0.1, use_markers=True)[0]["layer"] == 11
    assert pick(results, 0.1, use_markers=False)[0]["layer"] == 7
