"""Benchmark the streaming bake on a synthetic sharded bf16 checkpoint (>= 4 GB by default).

Prints the bake's wall time against a plain copy of the same files (goal: <= 1.5x) and the
bake's peak RSS against the largest tensor and shard (goal: <= 2x largest shard + 1 GB).
The bake runs in a child process so its peak RSS is its own. It runs twice: from a plain
folder (the bake sha256-hashes every source and output byte for abliteration.json) and from the
same files in the Hugging Face cache layout (source hashes are the blob names, so only the
output is hashed). Hashing is most of the bake's CPU beyond the copy itself.

    .venv/bin/python benchmarks/bench_bake.py [--size-gb 4.2] [--shard-gb 1.5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HIDDEN, INTER, VOCAB = 4096, 11008, 32000
GB = 1 << 30


def _layer_tensors(i: int, block: torch.Tensor) -> dict[str, tuple[int, int]]:
    p = f"model.layers.{i}."
    return {p + "input_layernorm.weight": (HIDDEN,), p + "post_attention_layernorm.weight": (HIDDEN,),
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN), p + "self_attn.k_proj.weight": (1024, HIDDEN),
            p + "self_attn.v_proj.weight": (1024, HIDDEN), p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (INTER, HIDDEN), p + "mlp.up_proj.weight": (INTER, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTER)}


def _fill(shape: tuple[int, ...], block: torch.Tensor, k: int) -> torch.Tensor:
    """A bf16 tensor of ``shape`` made of a shifted random block (cheap to make, not constant)."""
    n = int(np.prod(shape))
    reps = -(-n // block.numel())
    return torch.roll(block, k).repeat(reps)[:n].view(shape).clone()


def build_checkpoint(folder: Path, size_gb: float, shard_gb: float) -> tuple[int, int, int]:
    """Write a Llama-shaped bf16 checkpoint; returns (total bytes, largest tensor, largest shard)."""
    folder.mkdir(parents=True)
    block = (0.02 * torch.randn(1 << 22, generator=torch.Generator().manual_seed(0))).to(torch.bfloat16)
    per_layer = sum(int(np.prod(s)) * 2 for s in _layer_tensors(0, block).values())
    n_layers = max(1, int((size_gb * GB - 2 * VOCAB * HIDDEN * 2) // per_layer) + 1)
    specs: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(n_layers):
        specs += list(_layer_tensors(i, block).items())
    specs += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    acc = 0
    for key, shape in specs:
        nb = int(np.prod(shape)) * 2
        if groups[-1] and acc + nb > shard_gb * GB:
            groups.append([])
            acc = 0
        groups[-1].append((key, shape))
        acc += nb
    weight_map, total, largest_t, largest_s = {}, 0, 0, 0
    for si, group in enumerate(groups):
        name = f"model-{si + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {key: _fill(shape, block, k) for k, (key, shape) in enumerate(group)}
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        size = (folder / name).stat().st_size
        largest_s = max(largest_s, size)
        for key, t in tensors.items():
            weight_map[key] = name
            largest_t = max(largest_t, t.numel() * 2)
            total += t.numel() * 2
        del tensors
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN,
        "intermediate_size": INTER, "num_hidden_layers": n_layers, "vocab_size": VOCAB,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16"}))
    (folder / "tokenizer_config.json").write_text("{}")
    return total, largest_t, largest_s


_CHILD = """
import sys, json, math, time, resource
from pathlib import Path
from abliterate.bake import bake
t = time.monotonic()
rep = bake(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), progress=False)
ru = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM is this process's own peak RSS (ru_maxrss would include the parent's RSS at fork time)
hwm = int(next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM:")))
print(json.dumps({"wall_s": time.monotonic() - t, "edited": len(rep["edited"]),
                  "edited_bytes": sum(math.prod(e["shape"]) * 2 for e in rep["edited"]),
                  "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_kb": hwm}))
"""


def _copy_baseline(src: Path, root: Path, runs: int = 2) -> tuple[float, float]:
    """Best wall time (and its CPU time) of shutil.copytree + sync over ``runs`` runs."""
    best = (math.inf, 0.0)
    for i in range(runs):
        t, ru = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
        shutil.copytree(src, root / f"copy{i}")
        os.sync()
        wall = time.monotonic() - t
        ru2 = resource.getrusage(resource.RUSAGE_SELF)
        best = min(best, (wall, ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime))
        shutil.rmtree(root / f"copy{i}")
    return best


def _bake_child(src: Path, direction: Path, out: Path) -> dict:
    """Run the bake in a fresh interpreter; its own wall, CPU and peak RSS."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(direction), str(out)],
                          capture_output=True, text=True, check=True)
    shutil.rmtree(out)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _as_hf_snapshot(src: Path, root: Path) -> Path:
    """Move ``src`` into the Hugging Face cache layout (snapshot symlinks to sha256-named blobs)."""
    repo = root / "hub" / "models--bench--synthetic"
    snap, blobs = repo / "snapshots" / "main", repo / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    for f in sorted(src.iterdir()):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 24):
                h.update(chunk)
        os.replace(f, blobs / h.hexdigest())
        (snap / f.name).symlink_to(Path("../../blobs") / h.hexdigest())
    return snap


def _report(label: str, child: dict, total: int, copy_s: float, largest_t: int, largest_s: int) -> None:
    peak = child["peak_rss_kb"] * 1024
    goal_rss = 2 * largest_s + GB
    ratio = child["wall_s"] / copy_s
    print(f"[{label}] bake {child['wall_s']:.2f} s, {child['edited']} tensors edited "
          f"({child['edited_bytes'] / GB:.2f} GiB), {total / GB / child['wall_s']:.2f} GiB/s, CPU {child['cpu_s']:.2f} s")
    print(f"[{label}] ratio bake/copy: {ratio:.2f}x (goal <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})")
    print(f"[{label}] peak RSS (VmHWM, ~0.25 GiB of it is torch): {peak / GB:.2f} GiB = "
          f"{peak / largest_t:.1f}x largest tensor, {peak / largest_s:.2f}x largest shard "
          f"(goal <= 2x shard + 1 GiB = {goal_rss / GB:.2f} GiB: {'met' if peak <= goal_rss else 'MISSED'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=4.2)
    ap.add_argument("--shard-gb", type=float, default=1.5)
    ap.add_argument("--dir", type=Path, default=None, help="parent for the temp folder (default: system temp)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-bake-", dir=args.dir))
    try:
        src = root / "src"
        t = time.monotonic()
        total, largest_t, largest_s = build_checkpoint(src, args.size_gb, args.shard_gb)
        print(f"built {total / GB:.2f} GiB in {len(list(src.glob('*.safetensors')))} shards "
              f"({time.monotonic() - t:.1f} s); largest tensor {largest_t / 2**20:.0f} MiB, "
              f"largest shard {largest_s / 2**20:.0f} MiB")
        r = np.random.default_rng(0).standard_normal(HIDDEN).astype(np.float32)
        np.save(root / "r.npy", r)
        copy_s, copy_cpu = _copy_baseline(src, root)
        print(f"machine: {os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f}")
        print(f"plain copy (shutil.copytree + sync, best of 2): {copy_s:.2f} s ({total / GB / copy_s:.2f} GiB/s), "
              f"CPU {copy_cpu:.2f} s")
        _report("plain folder: sha256 of source and output", _bake_child(src, root / "r.npy", root / "out"),
                total, copy_s, largest_t, largest_s)
        snap = _as_hf_snapshot(src, root)
        _report("HF cache snapshot: source sha256 from blob names",
                _bake_child(snap, root / "r.npy", root / "out"), total, copy_s, largest_t, largest_s)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
