"""The bake's options and refusals on small hand-written checkpoints (no transformers needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import CliRunner
from safetensors.torch import load_file, save_file

from abliterate.bake.direction import load_direction
from abliterate.bake.errors import BakeError
from abliterate.bake.profile import StrengthProfile, parse_profile_specs
from abliterate.bake.run import bake
from harness.cli import app

D, INNER, LAYERS = 8, 12, 4


def _r(seed: int = 0) -> torch.Tensor:
    v = torch.randn(D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return v / v.norm()


def _checkpoint(folder: Path, *, dtype=torch.float32, extra: dict | None = None, config: dict | None = None,
                seed: int = 0) -> Path:
    """A llama-shaped checkpoint written straight with safetensors."""
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True)
    sd = {"model.embed_tokens.weight": torch.randn(20, D, generator=g), "model.norm.weight": torch.ones(D),
          "lm_head.weight": torch.randn(20, D, generator=g)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        sd[p + "self_attn.q_proj.weight"] = torch.randn(D, D, generator=g)
        sd[p + "self_attn.o_proj.weight"] = torch.randn(D, D, generator=g)
        sd[p + "mlp.up_proj.weight"] = torch.randn(INNER, D, generator=g)
        sd[p + "mlp.down_proj.weight"] = torch.randn(D, INNER, generator=g)
        sd[p + "input_layernorm.weight"] = torch.ones(D)
    sd = {k: v.to(dtype) for k, v in sd.items()} | (extra or {})
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg = {"model_type": "llama", "hidden_size": D, "num_hidden_layers": LAYERS, "tie_word_embeddings": False,
           "architectures": ["LlamaForCausalLM"]} | (config or {})
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


def _coef(key: str, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    t = t.to(torch.float64)
    return t @ r if "embed" in key or t.ndim == 1 else r @ t


def test_partial_weight_and_profile_scale_the_component(tmp_path):
    src = _checkpoint(tmp_path / "src")
    r = _r()
    prof = {"peak": 1.0, "pos": 1, "edge": 0.5, "width": 2}
    rep = bake(src, r, tmp_path / "out", weight=0.8, progress=False, mlp=prof, attn=0.25, embed=0.0)
    a, b = load_file(str(src / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    alphas = {e["key"]: e["alpha"] for e in rep["edited"]}
    expect_mlp = {0: 0.75, 1: 1.0, 2: 0.75, 3: 0.5}
    for i in range(LAYERS):
        k = f"model.layers.{i}.mlp.down_proj.weight"
        assert alphas[k] == pytest.approx(0.8 * expect_mlp[i])
        torch.testing.assert_close(_coef(k, b[k], r), (1 - alphas[k]) * _coef(k, a[k], r), atol=1e-5, rtol=1e-5)
        assert alphas[f"model.layers.{i}.self_attn.o_proj.weight"] == pytest.approx(0.2)
    # strength 0 (embed=0.0) leaves the tensor untouched and says so
    assert "model.embed_tokens.weight" in rep["zero_strength"]
    assert torch.equal(a["model.embed_tokens.weight"], b["model.embed_tokens.weight"])
    assert torch.equal(a["lm_head.weight"], b["lm_head.weight"])  # untied unembedding is a reader


def test_profile_width_limits_layers():
    p = StrengthProfile(peak=1.0, pos=2.5, edge=0.2, width=1.0)
    assert p.at(2) == pytest.approx(0.6) and p.at(3) == pytest.approx(0.6)
    assert p.at(0) == 0.0 and p.at(4) == 0.0 and p.at(None) == 1.0
    parsed = parse_profile_specs(["attn:peak=1,pos=2.5,edge=0.2,width=1", "embed=0.5"])
    assert parsed["attn"] == p and parsed["embed"].at(7) == 0.5
    with pytest.raises(BakeError, match="profile"):
        parse_profile_specs(["attn:peak=x"])


def test_norm_preserve_keeps_columns_and_orthogonality(tmp_path):
    src = _checkpoint(tmp_path / "src")
    r = _r(1)
    rep = bake(src, r, tmp_path / "out", norm_preserve=True, progress=False)
    a, b = load_file(str(src / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    for e in rep["edited"]:
        k = e["key"]
        dim = 1 if "embed" in k else 0  # write vectors: embedding rows, linear-weight columns
        torch.testing.assert_close(b[k].norm(dim=dim), a[k].norm(dim=dim), rtol=1e-6, atol=1e-6)
        assert _coef(k, b[k], r).abs().max() <= 1e-5 * a[k].abs().max()
        assert _coef(k, a[k], r).abs().max() > 1e-2


@pytest.mark.parametrize(("dtype", "rel"), [(torch.bfloat16, 0.02), (torch.float16, 0.002), (torch.float64, 1e-12)])
def test_half_and_double_keep_dtype_and_are_orthogonal_to_precision(tmp_path, dtype, rel):
    src = _checkpoint(tmp_path / "src", dtype=dtype)
    r = _r(2)
    rep = bake(src, r, tmp_path / "out", progress=False)
    a, b = load_file(str(src / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    for k in ("model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight"):
        assert b[k].dtype == dtype
        before, after = _coef(k, a[k], r).abs().max(), _coef(k, b[k], r).abs().max()
        assert after < rel * before  # what rounding to the stored dtype leaves, at most
    entry = next(e for e in rep["edited"] if e["key"] == "model.layers.0.mlp.down_proj.weight")
    assert entry["r_norm_after"] < rel * entry["r_norm_before"]


def test_direction_files_and_layer_blend(tmp_path):
    stack = torch.randn(5, D, generator=torch.Generator().manual_seed(3))
    save_file({"directions": stack}, str(tmp_path / "refusal_dirs.safetensors"))
    d = load_direction(tmp_path / "refusal_dirs.safetensors", 2.25)
    mix = 0.75 * stack[2].double() + 0.25 * stack[3].double()
    torch.testing.assert_close(d.vector, mix / mix.norm())
    assert [b["row"] for b in d.blend] == [2, 3]
    with pytest.raises(BakeError, match="--layer"):
        load_direction(tmp_path / "refusal_dirs.safetensors", None)
    with pytest.raises(BakeError, match="outside"):
        load_direction(tmp_path / "refusal_dirs.safetensors", 4.5)
    v = stack[1]
    np.save(tmp_path / "v.npy", v.numpy())
    torch.save(v, tmp_path / "v.pt")
    for name in ("v.npy", "v.pt"):
        got = load_direction(tmp_path / name, None).vector
        torch.testing.assert_close(got, v.double() / v.double().norm())
    with pytest.raises(BakeError, match="zero vector"):
        load_direction(torch.zeros(D), None)


def test_refusals_name_the_problem(tmp_path):
    src = _checkpoint(tmp_path / "src")
    with pytest.raises(BakeError, match="hidden_size is 8"):
        bake(src, torch.ones(D + 1), tmp_path / "o1", progress=False)
    with pytest.raises(BakeError, match="component"):
        bake(src, _r(), tmp_path / "o2", components=("attn", "lm"), progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(BakeError, match="not empty"):
        bake(src, _r(), tmp_path / "busy", progress=False)
    fp8 = _checkpoint(tmp_path / "fp8", extra={"model.layers.0.mlp.down_proj.weight_scale_inv": torch.ones(1, 1)})
    with pytest.raises(BakeError, match="quantized"):
        bake(fp8, _r(), tmp_path / "o3", progress=False)
    mx = _checkpoint(tmp_path / "mx", config={"quantization_config": {"quant_method": "mxfp4"}})
    with pytest.raises(BakeError, match="mxfp4"):
        bake(mx, _r(), tmp_path / "o4", progress=False)
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3", "o4"))


def test_unknown_writer_stops_unless_skipped_loudly(tmp_path):
    odd = torch.randn(D, D)
    src = _checkpoint(tmp_path / "src", extra={"model.layers.1.self_attn.dense.weight": odd})
    with pytest.raises(BakeError, match="self_attn.dense"):
        bake(src, _r(), tmp_path / "o1", progress=False)
    rep = bake(src, _r(), tmp_path / "o2", progress=False, skip_unknown_writers=True)
    assert [s["key"] for s in rep["skipped"]] == ["model.layers.1.self_attn.dense.weight"]
    out = load_file(str(tmp_path / "o2" / "model.safetensors"))
    assert torch.equal(out["model.layers.1.self_attn.dense.weight"], odd)
    saved = json.loads((tmp_path / "o2" / "abliteration.json").read_text())
    assert saved["skipped"] == rep["skipped"]


def test_dry_run_lists_and_writes_nothing(tmp_path):
    src = _checkpoint(tmp_path / "src")
    dry = bake(src, _r(), tmp_path / "out", dry_run=True, components=("attn", "mlp"), progress=False)
    assert not (tmp_path / "out").exists()
    real = bake(src, _r(), tmp_path / "out", components=("attn", "mlp"), progress=False)
    assert [e["key"] for e in dry["edited"]] == [e["key"] for e in real["edited"]]
    assert len(real["edited"]) == 2 * LAYERS and real["not_selected"] == {"embed": 1}


def test_tied_lm_head_is_edited_with_the_embedding(tmp_path):
    src = _checkpoint(tmp_path / "src", config={"tie_word_embeddings": True})
    r = _r(4)
    bake(src, r, tmp_path / "out", progress=False)
    b = load_file(str(tmp_path / "out" / "model.safetensors"))
    a = load_file(str(src / "model.safetensors"))
    assert (a["lm_head.weight"].double() @ r).abs().max() > 1e-2
    assert (b["lm_head.weight"].double() @ r).abs().max() < 1e-5
    assert set(b) == set(a)  # no key added or dropped


def test_cli_dry_run_and_error(tmp_path):
    src = _checkpoint(tmp_path / "src")
    torch.save(_r().float(), tmp_path / "r.pt")
    runner = CliRunner()
    ok = runner.invoke(app, ["abliterate", "bake", "--model", str(src), "--direction", str(tmp_path / "r.pt"),
                             "--out", str(tmp_path / "out"), "--dry-run", "--components", "attn",
                             "--profile", "attn:peak=1,pos=0,edge=0.5,width=2"])
    assert ok.exit_code == 0, ok.output
    assert "model.layers.0.self_attn.o_proj.weight" in ok.output and "3 tensor(s) would be edited" in ok.output
    assert not (tmp_path / "out").exists()
    bad = runner.invoke(app, ["abliterate", "bake", "--model", str(src), "--direction", str(tmp_path / "missing.pt"),
                              "--out", str(tmp_path / "out")])
    assert bad.exit_code == 1 and "error:" in bad.output and "not found" in bad.output


@pytest.mark.parametrize(("model_type", "shape", "axis"), [("qwen3_moe", (3, D, D), -2), ("gpt_oss", (3, D, D), -1)])
def test_fused_expert_layout_comes_from_the_model_type(tmp_path, model_type, shape, axis):
    """Square experts (gpt-oss has hidden == inter): only the model type tells the residual axis."""
    g = torch.Generator().manual_seed(9)
    fused = {"model.layers.0.mlp.experts.down_proj": torch.randn(shape, generator=g),
             "model.layers.0.mlp.experts.down_proj_bias": torch.randn(3, D, generator=g)}
    src = _checkpoint(tmp_path / "src", extra=fused, config={"model_type": model_type})
    r = _r(5)
    rep = bake(src, r, tmp_path / "out", components=("experts",), progress=False)
    assert sorted(e["key"] for e in rep["edited"]) == sorted(fused)
    b = load_file(str(tmp_path / "out" / "model.safetensors"))
    w, bias = b["model.layers.0.mlp.experts.down_proj"].double(), b["model.layers.0.mlp.experts.down_proj_bias"]
    along = w @ r if axis == -1 else torch.einsum("d,edi->ei", r, w)
    across = torch.einsum("d,edi->ei", r, w) if axis == -1 else w @ r
    assert along.abs().max() < 1e-5 and across.abs().max() > 1e-2
    assert (bias.double() @ r).abs().max() < 1e-5


def test_failed_bake_leaves_no_output(tmp_path, monkeypatch):
    """The whole output folder is staged and renamed at the end: a failure leaves nothing behind."""
    import abliterate.bake.run as bake_mod

    src = _checkpoint(tmp_path / "src")
    (src / "extra.txt").write_text("side file")

    def boom(*_a, **_k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(bake_mod, "copy_file_atomic", boom)
    with pytest.raises(OSError, match="disk full"):
        bake(src, _r(), tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_truncated_shard_is_refused_before_writing(tmp_path):
    src = _checkpoint(tmp_path / "src")
    data = (src / "model.safetensors").read_bytes()
    (src / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(BakeError, match="re-download"):
        bake(src, _r(), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_hf_cache_snapshot_records_origin_and_blob_hashes(tmp_path):
    """In an HF cache snapshot the shard's sha256 is its blob's name: recorded without re-hashing."""
    import hashlib

    plain = _checkpoint(tmp_path / "plain")
    repo = tmp_path / "hub" / "models--acme--tiny-llama"
    snap, blobs = repo / "snapshots" / "0123abc", repo / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    for f in plain.iterdir():
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        (blobs / sha).write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("../../blobs") / sha)
    rep = bake(snap, _r(), tmp_path / "out", progress=False)
    assert rep["source"]["hf"] == {"repo_id": "acme/tiny-llama", "revision": "0123abc"}
    assert rep["source"]["sha256_from_hf_blob_names"] == ["model.safetensors"]
    for name, sha in rep["source"]["files"].items():
        assert sha == hashlib.sha256((plain / name).read_bytes()).hexdigest()
    out = tmp_path / "out" / "model.safetensors"
    assert not out.is_symlink() and rep["output"]["files"]["model.safetensors"] == hashlib.sha256(
        out.read_bytes()).hexdigest()


def test_interrupt_mid_shard_cleans_up_threads_and_files(tmp_path, monkeypatch):
    """Ctrl-C inside an edit: no staging folder, no temp shard, no worker thread left running."""
    import threading

    import abliterate.bake.run as bake_mod

    src = _checkpoint(tmp_path / "src")
    real = bake_mod.make_editor
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        inner = real(*args, **kwargs)

        def edit(info, view):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            yield from inner(info, view)

        return edit

    monkeypatch.setattr(bake_mod, "make_editor", flaky)
    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        bake(src, _r(), tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    assert sorted(p.name for p in src.iterdir()) == ["config.json", "model.safetensors", "tokenizer_config.json"]
    assert threading.active_count() <= before
