"""The streaming bake on tiny random models of every supported family (fp32, exact checks).

For each family: every residual writer is found (checked against an independent name rule),
each edited tensor has no component along the direction (Gemma: along normalize((1 + w) * r)),
untouched tensors and side files are byte-identical, the result loads with transformers, and
for pre-norm families the baked logits equal the base model's with r projected out of the
residual stream by hooks.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tiny_models import build_tiny  # tests/ is on sys.path (rootdir conftest)

from abliterate.bake.run import bake

PRE_NORM = ["llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "qwen3_next", "qwen3_5", "gpt_oss"]
FAMILIES = [*PRE_NORM, "gemma2", "gemma3"]
#: independent of the bake's own key rules: what a residual writer is called on disk
WRITER_RE = re.compile(r"(?:o_proj|out_proj|down_proj)(?:\.weight|\.bias|_bias)?$|embed_tokens\.weight$")
TOWER_RE = re.compile(r"(?:^|\.)visual\.")


def _unit(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=g, dtype=torch.float64)
    return v / v.norm()


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def _randomize_gpt_oss_biases(folder: Path) -> None:
    """build_tiny leaves the fused [E, hidden] expert biases at zero; make them count."""
    path = folder / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    sd = load_file(str(path))
    g = torch.Generator().manual_seed(5)
    for k in sd:
        if k.endswith("down_proj_bias"):
            sd[k] = 0.05 * torch.randn(sd[k].shape, generator=g, dtype=sd[k].dtype)
    save_file(sd, str(path), metadata=meta)


@pytest.fixture(scope="session")
def baked(tmp_path_factory):
    """family -> (source folder, baked folder, report, direction); built lazily, once per family."""
    cache: dict[str, tuple[Path, Path, dict, torch.Tensor]] = {}

    def get(family: str, shards: int = 1):
        name = f"{family}-{shards}"
        if name not in cache:
            root = tmp_path_factory.mktemp(f"bake-{name}")
            src = build_tiny(family, root / "src", shards=shards, seed=1)
            if family == "gpt_oss":
                _randomize_gpt_oss_biases(src)
            hidden = json.loads((src / "config.json").read_text())
            hidden = (hidden.get("text_config") or hidden)["hidden_size"]
            r = _unit(hidden, seed=7)
            report = bake(src, r, root / "out", progress=False)
            cache[name] = (src, root / "out", report, r)
        return cache[name]

    return get


def _component_along(key: str, t: torch.Tensor, u: torch.Tensor, model_type: str) -> torch.Tensor:
    """u^T applied along the tensor's residual (output) axis, as the test understands the layouts."""
    t = t.to(torch.float64)
    if key.endswith("embed_tokens.weight") or t.ndim == 1 or "bias" in key:
        return t @ u
    if t.ndim == 3 and model_type == "gpt_oss":  # [E, inter, hidden]
        return t @ u
    return torch.einsum("d,...di->...i", u, t)  # W[..., hidden, in]


def _gemma_dir(src_tensors: dict, key: str, r: torch.Tensor) -> torch.Tensor:
    layer = re.search(r"layers\.(\d+)\.", key)
    if layer is None:
        return r
    norm = "post_attention_layernorm" if "self_attn" in key else "post_feedforward_layernorm"
    g = 1.0 + src_tensors[f"model.layers.{layer[1]}.{norm}.weight"].to(torch.float64)
    v = g * r
    return v / v.norm()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_writer_orthogonalized_and_rest_identical(baked, family):
    src, out, report, r = baked(family)
    model_type = report["source"]["model_type"]
    a, b = _tensors(src), _tensors(out)
    assert set(a) == set(b)
    edited = {e["key"] for e in report["edited"]}
    expected = {k for k in a if WRITER_RE.search(k) and not TOWER_RE.search(k)}
    assert edited == expected, f"edited != writers: missing {expected - edited}, extra {edited - expected}"
    if family in {"qwen3_moe", "qwen3_next"}:
        assert any(re.search(r"experts\.\d+\.down_proj", k) for k in edited)
    if family == "qwen3_next":
        assert any("shared_expert.down_proj" in k for k in edited)
    if family in {"qwen3_next", "qwen3_5"}:
        assert any("linear_attn.out_proj" in k for k in edited)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        if k not in edited:
            assert torch.equal(a[k].view(-1).view(torch.uint8), b[k].view(-1).view(torch.uint8)), k
            continue
        u = _gemma_dir(a, k, r) if family.startswith("gemma") else r
        before = _component_along(k, a[k], u, model_type).abs().max()
        after = _component_along(k, b[k], u, model_type).abs().max()
        scale = a[k].abs().max().item()
        assert before > 1e-3 * scale, f"{k}: test is vacuous (no r-component to remove)"
        assert after <= 1e-5 * scale, f"{k}: |u^T W'| = {after:.3g} > 1e-5 * max|W| = {1e-5 * scale:.3g}"
    for e in report["edited"]:
        assert e["r_norm_after"] <= 1e-5 * max(e["r_norm_before"], 1e-12) + 1e-9, e["key"]


@pytest.mark.parametrize("family", ["llama", "qwen3_5"])
def test_side_files_and_provenance(baked, family):
    src, out, report, r = baked(family)
    side = [p for p in src.rglob("*") if p.is_file() and p.suffix != ".safetensors"]
    assert any(p.name == "config.json" for p in side) and any("tokenizer" in p.name for p in side)
    for p in side:
        assert (out / p.relative_to(src)).read_bytes() == p.read_bytes(), p.name
    saved = json.loads((out / "abliteration.json").read_text())
    assert saved["edited"] == report["edited"]
    for name, sha in saved["output"]["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha, name
    for name, sha in saved["source"]["files"].items():
        assert hashlib.sha256((src / name).read_bytes()).hexdigest() == sha, name
    assert saved["direction"]["sha256"] == hashlib.sha256(r.numpy().tobytes()).hexdigest()
    if family == "qwen3_5":  # the vision merger writes into the residual: listed, never silently kept
        assert any("visual.merger.linear_fc2" in s["key"] for s in saved["skipped"])
        assert saved["untouched_towers"].get("model.visual", 0) > 0


def test_sharded_checkpoint_with_index(baked):
    src, out, report, r = baked("llama", shards=3)
    shards = sorted(p.name for p in src.glob("*.safetensors"))
    assert len(shards) >= 3
    assert sorted(p.name for p in out.glob("*.safetensors")) == shards
    idx = "model.safetensors.index.json"
    assert (out / idx).read_bytes() == (src / idx).read_bytes()
    files = {e["file"] for e in report["edited"]}
    assert len(files) >= 2, "edits should span several shards"
    for name in shards:  # each shard keeps its header (order, offsets, metadata) byte for byte
        with open(src / name, "rb") as f1, open(out / name, "rb") as f2:
            n = int.from_bytes(f1.read(8), "little")
            assert f2.read(8 + n)[8:] == f1.read(n)
    a, b = _tensors(src), _tensors(out)
    single = _tensors(baked("llama")[1])  # same seed, same direction, one shard: identical result
    for k in a:
        assert torch.equal(b[k], single[k]), k


def _decoder_layers(model) -> torch.nn.ModuleList:
    for name, mod in model.named_modules():
        if name.endswith("layers") and isinstance(mod, torch.nn.ModuleList) and "visual" not in name:
            return mod
    raise AssertionError("no decoder layers")


def _ablate_hooks(model, r: torch.Tensor) -> list:
    """Project r out of every writer's output (attention, linear attention, MLP/MoE) by hooks."""
    r32 = r.to(torch.float32)

    def proj(x: torch.Tensor) -> torch.Tensor:
        return x - (x @ r32).unsqueeze(-1) * r32

    def hook(_m, _i, out):
        if isinstance(out, tuple):
            return (proj(out[0]), *out[1:])
        return proj(out)

    handles = []
    for layer in _decoder_layers(model):
        for attr in ("self_attn", "linear_attn", "mlp"):
            mod = getattr(layer, attr, None)
            if mod is not None:
                handles.append(mod.register_forward_hook(hook))
    return handles


def _load(folder: Path):
    import transformers

    cfg = json.loads((folder / "config.json").read_text())
    cls = getattr(transformers, cfg["architectures"][0])
    return cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()


@pytest.mark.parametrize("family", PRE_NORM)
def test_baked_logits_equal_hooked_ablation(baked, family):
    src, out, _report, r = baked(family)
    base, edited = _load(src), _load(out)
    emb = base.get_input_embeddings()
    with torch.no_grad():  # the reference edits the embedding rows itself (also the tied unembedding)
        w = emb.weight.to(torch.float64)
        emb.weight.copy_(w - torch.outer(w @ r, r))
    hooks = _ablate_hooks(base, r)
    ids = torch.randint(3, 300, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = base(input_ids=ids).logits
        got = edited(input_ids=ids).logits
        for h in hooks:
            h.remove()
        plain = base(input_ids=ids).logits
    scale = ref.abs().max().item()
    assert (got - ref).abs().max().item() <= 1e-5 * scale + 1e-6
    assert (plain - ref).abs().max().item() > 1e-3 * scale, "ablation should change the logits"


def test_gemma_postnorm_correction_zeroes_what_reaches_the_residual(baked, tmp_path):
    src, out, report, r = baked("gemma3")
    assert report["postnorm_correction"]["active"] is True
    off = tmp_path / "off"
    bake(src, r, off, progress=False, postnorm_correction="off")

    def written_r(folder: Path) -> float:
        model = _load(folder)
        seen: list[float] = []
        r32 = r.to(torch.float32)

        def hook(_m, _i, o):
            seen.append(((o @ r32).abs().max() / o.abs().max()).item())

        for layer in _decoder_layers(model):
            layer.post_attention_layernorm.register_forward_hook(hook)
            layer.post_feedforward_layernorm.register_forward_hook(hook)
        with torch.no_grad():
            model(input_ids=torch.randint(3, 300, (1, 10), generator=torch.Generator().manual_seed(4)))
        return max(seen)

    assert written_r(out) < 1e-5
    assert written_r(off) > 1e-3
