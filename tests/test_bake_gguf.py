"""The GGUF bake (IN.gguf -> OUT.gguf) on tiny GGUFs written by the test (tests/tiny_gguf.py).

llama and qwen2 layouts, one quantized source writer (Q8_0 ``blk.1.ffn_down``). Checked: every
writer edited and nothing else (an independent name rule), |r^T W'| <= 1e-5 * max|W| for F32
output, untouched tensors byte-identical (type, shape, bytes), metadata copied key by key plus
abliteration.* keys, abliteration.json hashes, the Q8_0/F16/BF16 outputs' stated bounds, the
post-norm correction, clear errors, and llama.cpp's logits of the baked file against the
hook-ablated logits (abliterate.infer.ablated) of the same dequantized model.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from conftest import missing
from tiny_gguf import hf_to_gguf
from tiny_models import build_tiny

from abliterate.bake.errors import BakeError
from abliterate.bake.run import bake

Q = gguf.GGMLQuantizationType
WRITER_RE = re.compile(r"^(?:token_embd|blk\.\d+\.(?:attn_output|ffn_down))\.weight$")
#: llama.cpp (F32 weights, F32 KV cache, its own kernels) vs torch fp32 on the same weights: measured
#: 2.5e-7 to 3.5e-7 of the logit scale here; 1e-5 leaves room for other CPUs' summation orders
LOGIT_TOL = 1e-5
#: the sources hold one Q8_0 tensor, for which llama.cpp quantizes the activations to 8 bits too:
#: measured 6.3e-4 of the logit scale on qwen2 (3.5e-7 on llama, whose Q8_0 tensor reads ~0 activations)
SOURCE_TOL = 2e-3


def _unit(d: int, seed: int) -> torch.Tensor:
    v = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return v / v.norm()


def _arrays(path: Path) -> dict[str, tuple[Q, np.ndarray, bytes]]:
    """name -> (type, fp32 values in numpy order, raw bytes)."""
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        raw = np.asarray(t.data).tobytes()
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64)
        out[t.name] = (t.tensor_type, values.reshape(tuple(reversed(t.shape.tolist()))), raw)
    return out


def _along(name: str, w: np.ndarray, r: np.ndarray) -> np.ndarray:
    """r^T applied along the residual axis: rows for the embedding, columns for [hidden, in] writers."""
    return w @ r if name == "token_embd.weight" else np.einsum("d,di->i", r, w)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> (source gguf, baked gguf (F32 edits), report, r, tiny HF folder), built once."""
    root = tmp_path_factory.mktemp("gguf")
    cache: dict[str, tuple] = {}

    def get(family: str):
        if family not in cache:
            hf = build_tiny(family, root / f"{family}-hf", seed=1)
            src = hf_to_gguf(hf, root / f"{family}.gguf", {"blk.1.ffn_down.weight": Q.Q8_0})
            r = _unit(64, seed=7)
            out = root / f"{family}-out" / "baked.gguf"
            report = bake(src, r, out, progress=False, gguf_type="f32")
            cache[family] = (src, out, report, r, hf)
        return cache[family]

    return get


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_writers_orthogonal_and_the_rest_byte_identical(tiny, family):
    src, out, report, r, _ = tiny(family)
    a, b = _arrays(src), _arrays(out)
    assert list(a) == list(b)  # same tensors, same order
    edited = {e["key"] for e in report["edited"]}
    assert edited == {k for k in a if WRITER_RE.match(k)}
    assert a["blk.1.ffn_down.weight"][0] == Q.Q8_0 and b["blk.1.ffn_down.weight"][0] == Q.F32
    rn = r.numpy()
    for name, (qa, wa, raw_a) in a.items():
        qb, wb, raw_b = b[name]
        assert wa.shape == wb.shape, name
        if name not in edited:
            assert qa == qb and raw_a == raw_b, f"{name} was not copied byte for byte"
            continue
        scale = np.abs(wa).max()
        before, after = np.abs(_along(name, wa, rn)).max(), np.abs(_along(name, wb, rn)).max()
        assert before > 1e-3 * scale, f"{name}: vacuous (no r-component to remove)"
        assert after <= 1e-5 * scale, f"{name}: |r^T W'| = {after:.3g} > 1e-5 * max|W| = {1e-5 * scale:.3g}"
    for e in report["edited"]:
        assert e["output_type"] == "F32" and e["residual_ratio"] <= 1e-5, e["key"]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_metadata_copied_and_provenance(tiny, family):
    src, out, report, r, _ = tiny(family)
    ra, rb = gguf.GGUFReader(src), gguf.GGUFReader(out)
    copied = [k for k in ra.fields if not k.startswith("GGUF.")]
    assert [k for k in rb.fields if not k.startswith(("GGUF.", "abliteration."))] == copied
    for k in copied:
        assert rb.fields[k].types == ra.fields[k].types and rb.fields[k].contents() == ra.fields[k].contents(), k
    kv = {k: f.contents() for k, f in rb.fields.items() if k.startswith("abliteration.")}
    assert kv["abliteration.tool"] == "ablbench abliterate bake" and kv["abliteration.edited_tensors"] == 9
    assert kv["abliteration.components"] == ["embed", "attn", "mlp", "experts"]
    assert kv["abliteration.direction_sha256"] == hashlib.sha256(r.numpy().tobytes()).hexdigest()
    saved = json.loads((out.parent / "abliteration.json").read_text())
    assert saved["format"] == "gguf" and saved["edited"] == report["edited"]
    assert saved["output"]["files"] == {out.name: hashlib.sha256(out.read_bytes()).hexdigest()}
    assert saved["source"]["files"] == {src.name: hashlib.sha256(src.read_bytes()).hexdigest()}
    assert saved["source"]["tie_word_embeddings"] is (family == "qwen2")


def test_output_types_and_the_q8_bound(tiny, tmp_path):
    """auto: F32 stays F32, Q4_1 becomes Q8_0 (within the bound), Q8_0 becomes F16; forced types keep bounds."""
    _, _, _, r, hf = tiny("llama")
    mixed = hf_to_gguf(hf, tmp_path / "mixed.gguf", {"blk.1.ffn_down.weight": Q.Q8_0, "blk.2.ffn_down.weight": Q.Q4_1})
    auto = bake(mixed, r, tmp_path / "auto" / "x.gguf", progress=False)
    types = {e["key"]: e["output_type"] for e in auto["edited"]}
    assert types.pop("blk.1.ffn_down.weight") == "F16" and types.pop("blk.2.ffn_down.weight") == "Q8_0"
    assert set(types.values()) == {"F32"}
    q4 = next(e for e in auto["edited"] if e["key"] == "blk.2.ffn_down.weight")
    assert 0 < q4["residual_ratio"] <= 1e-2
    src = tiny("llama")[0]
    bounds = {"f16": 1e-3, "bf16": 1e-2, "q8_0": 1e-2}  # measured ~2e-4, ~2e-3, ~4e-3 here (F32 sources)
    for ty, bound in bounds.items():
        rep = bake(src, r, tmp_path / ty / "x.gguf", progress=False, gguf_type=ty)
        got = _arrays(tmp_path / ty / "x.gguf")
        for e in rep["edited"]:
            assert e["output_type"] == ty.upper()
            qt, w, _ = got[e["key"]]
            assert qt.name == ty.upper()
            measured = np.abs(_along(e["key"], w, r.numpy())).max()
            assert measured == pytest.approx(e["residual_max"], rel=1e-3, abs=1e-9)
            assert e["residual_ratio"] <= bound, (ty, e["key"], e["residual_ratio"])
    with pytest.raises(BakeError, match=r"Q8_0 leaves .*--gguf-type f16"):
        bake(src, r, tmp_path / "tight" / "x.gguf", progress=False, gguf_type="q8_0", q8_bound=1e-6)
    assert list((tmp_path / "tight").iterdir()) == []  # nothing left behind


def _sandwich(src: Path, out: Path, arch: str) -> dict[str, np.ndarray]:
    """``src`` rewritten as architecture ``arch`` with gemma-style post-norms in every block."""
    reader = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(out, arch)
    for f in reader.fields.values():
        if not f.name.startswith("GGUF.") and f.name != "general.architecture":
            w.add_key_value(f.name.replace("llama.", f"{arch}.", 1), f.contents(), f.types[0],
                            f.types[-1] if len(f.types) > 1 else None)
    g = {}
    for t in reader.tensors:
        w.add_tensor(t.name, np.asarray(t.data))
        if t.name.endswith("attn_norm.weight"):
            layer = t.name.split(".")[1]
            for norm in ("post_attention_norm", "post_ffw_norm"):
                rng = np.random.default_rng(len(g))
                g[f"blk.{layer}.{norm}"] = (1.0 + 0.5 * rng.standard_normal(64)).astype(np.float32)
                w.add_tensor(f"blk.{layer}.{norm}.weight", g[f"blk.{layer}.{norm}"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return g


def test_postnorm_correction_uses_the_stored_norm(tmp_path):
    """Sandwich-norm blocks (gemma2): writers lose normalize(g * r), g = the stored post-norm weight."""
    src = hf_to_gguf(build_tiny("llama", tmp_path / "hf", seed=2), tmp_path / "plain.gguf")
    g = _sandwich(src, tmp_path / "gemma2.gguf", "gemma2")
    r = _unit(64, seed=3)
    rep = bake(tmp_path / "gemma2.gguf", r, tmp_path / "out" / "x.gguf", progress=False, gguf_type="f32")
    assert rep["postnorm_correction"]["active"] is True
    out = _arrays(tmp_path / "out" / "x.gguf")
    for e in rep["edited"]:
        if e["layer"] is None:
            assert e["direction"] == "r"
            continue
        norm = "post_attention_norm" if "attn" in e["key"] else "post_ffw_norm"
        gv = g[f"blk.{e['layer']}.{norm}"].astype(np.float64)
        assert e["direction"] == f"normalize(g*r), g = blk.{e['layer']}.{norm}.weight"
        w2 = out[e["key"]][1]
        written = gv[:, None] * w2  # what the post-norm scales into the residual (before its rms)
        assert np.abs(r.numpy() @ written).max() <= 1e-5 * np.abs(written).max()
        assert np.abs(r.numpy() @ w2).max() > 1e-3 * np.abs(w2).max()  # plain r is not what was removed
    # the same post-norm names in an architecture the bake does not know as sandwich-normed: stop, say how
    _sandwich(src, tmp_path / "llama-pn.gguf", "llama")
    with pytest.raises(BakeError, match="post_ffw_norm tensors.*--postnorm-correction on"):
        bake(tmp_path / "llama-pn.gguf", r, tmp_path / "o2" / "x.gguf", progress=False)
    off = bake(tmp_path / "llama-pn.gguf", r, tmp_path / "o3" / "x.gguf", progress=False, postnorm_correction="off")
    assert off["postnorm_correction"]["active"] is False and {e["direction"] for e in off["edited"]} == {"r"}


def test_bad_input_is_one_clear_error(tiny, tmp_path):
    src, out, _, r, _ = tiny("qwen2")
    with pytest.raises(BakeError, match="exists"):
        bake(src, r, out, progress=False)
    with pytest.raises(BakeError, match=r"must be a \.gguf file"):
        bake(src, r, tmp_path / "folder", progress=False)
    with pytest.raises(BakeError, match="embedding_length 64"):
        bake(src, _unit(32, 1), tmp_path / "a" / "x.gguf", progress=False)
    with pytest.raises(BakeError, match="describes another baked file"):
        bake(src, r, out.parent / "second.gguf", progress=False)
    with pytest.raises(BakeError, match="--gguf-type"):
        bake(src, r, tmp_path / "b" / "x.gguf", progress=False, gguf_type="q4_k")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(src.read_bytes()[:-1000])
    with pytest.raises(BakeError, match="re-download"):
        bake(cut, r, tmp_path / "c" / "x.gguf", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def _llamacpp_logits(path: Path, ids: list[int]) -> np.ndarray:
    try:
        import llama_cpp
    except ImportError:
        missing("llama-cpp-python is not installed (scripts/setup.sh builds it)")
    f32 = 0  # GGML_TYPE_F32: the default F16 KV cache alone moves the logits by ~1e-4
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_batch=64, n_threads=1, logits_all=True,
                          verbose=False, seed=0, type_k=f32, type_v=f32)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float64)
    finally:
        llm.close()


def _hooked_reference(src: Path, r: torch.Tensor, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(plain, ablated) logits of the dequantized source: transformers + infer.ablated hooks.

    The embedding rows are edited too (the bake edits token_embd), which for a tied model is also
    the unembedding, exactly as in the baked file.
    """
    from abliterate.infer import ablated
    from abliterate.model import load_model

    lm = load_model(src, device="cpu", dtype="float32")
    x = torch.tensor([ids])
    with torch.no_grad():
        plain = lm.model(input_ids=x).logits[0].double().numpy()
        emb = lm.model.get_input_embeddings().weight
        e64 = emb.double()
        emb.copy_(e64 - torch.outer(e64 @ r, r))
        with ablated(lm, r):
            ref = lm.model(input_ids=x).logits[0].double().numpy()
    return plain, ref


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_baked_file_read_by_transformers_equals_hooked_ablation(tiny, family):
    """infer.ablated (projection after every writer) is exactly what the bake does."""
    from abliterate.model import load_model

    src, out, _, r, _ = tiny(family)
    ids = [int(i) for i in torch.randint(5, 380, (16,), generator=torch.Generator().manual_seed(11))]
    plain, ref = _hooked_reference(src, r, ids)
    with torch.no_grad():
        got = load_model(out, device="cpu", dtype="float32").model(input_ids=torch.tensor([ids])).logits[0]
    scale = np.abs(ref).max()
    assert np.abs(got.double().numpy() - ref).max() <= 1e-5 * scale
    assert np.abs(plain - ref).max() > 1e-2 * scale


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_llamacpp_logits_of_the_baked_file_equal_hooked_ablation(tiny, family):
    src, out, _, r, _ = tiny(family)
    ids = [int(i) for i in torch.randint(5, 380, (16,), generator=torch.Generator().manual_seed(11))]
    plain, ref = _hooked_reference(src, r, ids)
    base_cpp, got = _llamacpp_logits(src, ids), _llamacpp_logits(out, ids)
    scale = np.abs(ref).max()
    # the two engines agree on the unedited file (layout, rotary and Q/K order are right) ...
    assert np.abs(base_cpp - plain).max() <= SOURCE_TOL * np.abs(plain).max()
    # ... and llama.cpp on the baked file equals the hooked ablation of the source
    assert np.abs(got - ref).max() <= LOGIT_TOL * scale
    assert np.abs(plain - ref).max() > 1e-2 * scale, "the ablation should change the logits"


def test_header_rewrite_is_byte_exact_without_changes(tiny, tmp_path):
    """With no new keys and no type changes, the rebuilt header equals the source's byte for byte."""
    from abliterate.bake.gguf.writer import gguf_header, read_source

    src = read_source(tiny("llama")[0])
    header = gguf_header(src, tmp_path / "x.gguf", [(t, t.qtype, t.nbytes) for t in src.tensors], [])
    assert header == tiny("llama")[0].read_bytes()[: src.reader.data_offset]


def test_source_hash_is_remembered_for_the_next_bake(tiny, tmp_path, monkeypatch):
    """A second bake of an unchanged source takes its sha256 from the cache (one hash stream, not two)."""
    monkeypatch.setenv("ABLBENCH_HOME", str(tmp_path / "home"))
    src, _, _, r, hf = tiny("qwen2")
    first = bake(src, r, tmp_path / "1" / "x.gguf", progress=False)
    second = bake(src, r, tmp_path / "2" / "x.gguf", progress=False)
    assert first["source"]["sha256_from_cache"] == [] and second["source"]["sha256_from_cache"] == [src.name]
    assert second["source"]["files"] == first["source"]["files"]
    assert second["timing"]["hashed_bytes"] < first["timing"]["hashed_bytes"]
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(src.read_bytes())  # same bytes, another file: hashed again, same digest
    third = bake(copy, r, tmp_path / "3" / "x.gguf", progress=False)
    assert third["source"]["sha256_from_cache"] == [] and third["source"]["files"]["copy.gguf"] == \
        first["source"]["files"][src.name]
    folder = tmp_path / "hf"  # the safetensors bake uses the same cache
    folder.mkdir()
    for f in hf.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    a = bake(folder, r, tmp_path / "h1", progress=False)
    b = bake(folder, r, tmp_path / "h2", progress=False)
    assert a["source"]["sha256_from_cache"] == [] and b["source"]["sha256_from_cache"] == ["model.safetensors"]
    assert a["source"]["files"] == b["source"]["files"]
