"""The bake's concurrent parts on real files: the pipelined shard writer, its hash and writer threads, torch dequant."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize, quantize
from safetensors.torch import load_file, save_file

import abliterate.bake.stream as bs
from abliterate.bake.gguf.codec import TORCH_DEQUANT, decode
from abliterate.bake.io import read_header, rewrite_shard, rewrite_shards
from abliterate.bake.math import EditStats, Workspace, make_editor

D = 64


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def shards(tmp_path, monkeypatch):
    """Three bf16 shards; chunks and the hash lookahead shrunk so every shard spans many of both."""
    monkeypatch.setattr(bs, "COPY_CHUNK", 4096)
    monkeypatch.setattr(bs, "HASH_LOOKAHEAD", 3 * 4096)
    monkeypatch.setattr(bs, "BUFFER_LOOKAHEAD", 2 * 4096)
    g = torch.Generator().manual_seed(0)
    paths = []
    for i in range(3):
        sd = {f"model.layers.{i}.self_attn.q_proj.weight": torch.randn(D, D, generator=g),
              f"model.layers.{i}.self_attn.o_proj.weight": torch.randn(D, 3 * D, generator=g),
              f"model.layers.{i}.mlp.up_proj.weight": torch.randn(2 * D, D, generator=g)}
        p = tmp_path / "src" / f"model-{i}.safetensors"
        p.parent.mkdir(exist_ok=True)
        save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, str(p))
        paths.append(p)
    return paths


def _editors(header, r):
    return {t.key: make_editor("cols", r, 1.0, False, EditStats(), Workspace())
            for t in header.tensors if "o_proj" in t.key}


def _r() -> torch.Tensor:
    v = torch.randn(D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return v / v.norm()


def test_pipelined_shards_equal_one_by_one_and_hashlib(shards, tmp_path):
    """rewrite_shards: the same bytes as shard-by-shard rewrites; every digest is hashlib's over the files."""
    headers = [read_header(p) for p in shards]
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir()
    many.mkdir()
    singles = [rewrite_shard(h, one / h.path.name, _editors(h, _r())) for h in headers]
    timing = bs.StreamTiming()
    known = _sha(shards[1])  # the middle shard's source hash is known: only its output is hashed
    got = rewrite_shards([(h, many / h.path.name, _editors(h, _r()), known if i == 1 else None)
                          for i, h in enumerate(headers)], timing=timing)
    assert got == singles
    for h, (src_sha, out_sha) in zip(headers, got, strict=True):
        out = many / h.path.name
        assert out.read_bytes() == (one / h.path.name).read_bytes()
        assert (src_sha, out_sha) == (_sha(h.path), _sha(out))
    assert timing.hashed_bytes == 2 * sum(p.stat().st_size for p in shards) - shards[1].stat().st_size
    edited = load_file(str(many / shards[0].name))["model.layers.0.self_attn.o_proj.weight"].double()
    assert (_r() @ edited).abs().max() < 0.05  # edited (bf16 rounding is what remains)
    assert load_file(str(many / shards[0].name))["model.layers.0.mlp.up_proj.weight"].equal(
        load_file(str(shards[0]))["model.layers.0.mlp.up_proj.weight"])
    assert sorted(p.name for p in many.iterdir()) == sorted(p.name for p in shards)  # no temp file left


def _run_bounded(fn, seconds: float = 120.0):
    """Run ``fn`` on a thread; fail (instead of hanging) if it deadlocks; return what it raised."""
    box: dict = {}

    def target():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the bake deadlocked"
    return box.get("exc")


@pytest.mark.parametrize("fail_at", [2, 40])
def test_hash_thread_error_surfaces_without_deadlock(shards, tmp_path, monkeypatch, fail_at):
    """A sha256 worker that fails (early, or in a later shard's tail) stops the bake with its error."""
    real = bs.StreamHash._update
    calls = {"n": 0}

    def flaky(self, data, n):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError("sha256 worker failed (simulated)")
        real(self, data, n)

    monkeypatch.setattr(bs.StreamHash, "_update", flaky)
    headers = [read_header(p) for p in shards]
    out = tmp_path / "out"
    out.mkdir()
    before = threading.active_count()
    exc = _run_bounded(lambda: rewrite_shards([(h, out / h.path.name, _editors(h, _r()), None) for h in headers]))
    assert isinstance(exc, OSError) and "simulated" in str(exc)
    assert calls["n"] >= fail_at
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file
    assert threading.active_count() <= before


def test_writer_error_surfaces_and_leaves_nothing(shards, tmp_path, monkeypatch):
    """A failing write in the writer thread is raised in the caller; the temp file is removed."""
    calls = {"n": 0}
    real = bs._Writer._write

    def flaky(self, data):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full (simulated)")
        real(self, data)

    monkeypatch.setattr(bs._Writer, "_write", flaky)
    h = read_header(shards[0])
    out = tmp_path / "out"
    out.mkdir()
    exc = _run_bounded(lambda: rewrite_shard(h, out / "x.safetensors", _editors(h, _r())))
    assert isinstance(exc, OSError) and "disk full" in str(exc)
    assert list(out.iterdir()) == []


def test_stream_hash_lookahead_and_digest(monkeypatch):
    """Chunks queued past the lookahead still hash in order: the digest is hashlib's."""
    data = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    h = bs.StreamHash(lookahead=10_000)
    for i in range(0, len(data), 3000):
        h.update(memoryview(data)[i:i + 3000], wait=i % 2 == 0)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    h.close()


def test_output_stream_finish_in_failure_cleans_up(tmp_path, monkeypatch):
    """The tail run by finish_in owns the stream: an fsync failure there removes the temp file."""
    from concurrent.futures import ThreadPoolExecutor

    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 100)
    real = bs.os.fsync
    monkeypatch.setattr(bs.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("fsync failed (simulated)")))
    with ThreadPoolExecutor(1) as ex, bs.OutputStream(src, tmp_path / "dst.bin") as stream:
        stream.copy(0, 1000)
        stream.write(b"x" * 100)
        fut = stream.finish_in(ex)
    with pytest.raises(OSError, match="fsync failed"):
        fut.result()
    monkeypatch.setattr(bs.os, "fsync", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.bin"]


@pytest.mark.parametrize("qtype", sorted(TORCH_DEQUANT), ids=lambda q: q.name)
def test_torch_dequant_is_bit_identical_to_gguf_quants(qtype):
    """Every torch-decoded block equals gguf.quants' numpy values bit for bit (random codes, real scales)."""
    rng = np.random.default_rng(int(qtype))
    x = (rng.standard_normal((64, 256)) * 0.05).astype(np.float32)
    x[3] = 0.0  # an all-zero block (scale 0)
    real = quantize(x, qtype)
    size = GGML_QUANT_SIZES[qtype][1]
    noise = rng.integers(0, 256, real.shape, dtype=np.uint8).reshape(-1, size)
    scales = 4 if qtype in (GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q5_1) else 2  # d (and m) fp16
    noise[:, :scales] = real.reshape(-1, size)[:, :scales]  # every code pattern, with finite real scales
    ws = Workspace()
    for raw in (real, noise.reshape(real.shape)):
        want = dequantize(raw, qtype).astype(np.float32)
        for w in (None, ws):
            got = decode(memoryview(np.ascontiguousarray(raw)).cast("B"), qtype, 64, 256, w)
            assert got.shape == (64, 256) and got.dtype == torch.float32
            assert np.array_equal(got.numpy().view(np.int32), want.view(np.int32))


def test_output_buffers_are_reused_only_once_released():
    """A pooled output buffer still referenced (queued for the writer or the hash) is never handed out again."""
    ws = Workspace()
    t1, mv1 = ws.output((16, 32), torch.bfloat16)
    t1.fill_(1.0)
    t2, mv2 = ws.output((16, 32), torch.bfloat16)  # mv1 is alive: a second buffer
    assert mv2.obj is not mv1.obj
    held = id(mv1.obj)
    del t1, mv1
    _, mv3 = ws.output((16, 32), torch.bfloat16)
    assert id(mv3.obj) == held  # released: reused, no fresh pages
    assert bytes(mv2) == bytes(t2.contiguous().view(torch.uint8).numpy())  # the bytes view is the tensor's
    other = id(mv2.obj)
    del t2, mv2
    t4, mv4 = ws.output((8, 32), torch.float16)  # a smaller block of another dtype fits a released buffer
    assert id(mv4.obj) == other and mv4.nbytes == 8 * 32 * 2 and t4.shape == (8, 32)
