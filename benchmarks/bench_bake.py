"""Benchmark the streaming bakes against a plain copy of the same files (goal: bake <= 1.5x copy).

One synthetic Llama-shaped bf16 checkpoint (>= 4 GB by default) is written twice with the same
tensor bytes: as a sharded safetensors folder and as one BF16 GGUF file. Each bake runs in a
fresh interpreter (its own wall time, CPU time and peak RSS):

- safetensors, plain folder: sha256 of every source and output byte, in the copy pass; then the
  same bake again, whose source sha256 comes from abliterate.bake.hashes (only the output is hashed);
- safetensors, Hugging Face cache layout: source hashes are the blob names, only the output is hashed;
- GGUF (BF16 writers stay BF16): the same two runs;
- GGUF Q8_0 (smaller, ``--q8-gb``): quantized writers are dequantized (written as F16).

For each it prints the ratio to a plain copy (``shutil`` copy + fsync of the copied files, like
the bake's own fsync, best of 2; not a whole-system sync, which on a shared machine also waits for
everyone else's writes), the load average when the case ran, and the split of the bake's own time
(abliteration.json "timing": hash CPU, math, writer busy, fsync, the caller's waits on the hashes
and the writer), next to one-core figures measured on the same bytes: a read pass and a sha256 pass.

``--before DIR`` also runs every case with another copy of the code (a folder holding the
``abliterate`` and ``ablbench`` packages, e.g. ``git archive main abliterate ablbench | tar -x -C
DIR``), right before this tree's run of the same case, and ends with a before/after table.

    .venv/bin/python benchmarks/bench_bake.py [--size-gb 4.2] [--shard-gb 1.5] [--q8-gb 0.5] [--dir /tmp]
        [--before DIR]          # quick look: --size-gb 1 --shard-gb 0.4 --q8-gb 0.2
"""

from __future__ import annotations

import argparse
import contextlib
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

import gguf
import numpy as np
import torch
from safetensors.torch import save_file

HIDDEN, INTER, VOCAB = 4096, 11008, 32000
GB = 1 << 30
_GGUF_NAMES = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
               "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
               "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
               "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
               "mlp.down_proj.weight": "ffn_down.weight"}


def _layer_tensors(i: int) -> dict[str, tuple[int, ...]]:
    p = f"model.layers.{i}."
    return {p + "input_layernorm.weight": (HIDDEN,), p + "post_attention_layernorm.weight": (HIDDEN,),
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN), p + "self_attn.k_proj.weight": (1024, HIDDEN),
            p + "self_attn.v_proj.weight": (1024, HIDDEN), p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (INTER, HIDDEN), p + "mlp.up_proj.weight": (INTER, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTER)}


def _specs(size_gb: float) -> list[tuple[str, tuple[int, ...]]]:
    per_layer = sum(math.prod(s) * 2 for s in _layer_tensors(0).values())
    n_layers = max(1, int((size_gb * GB - 2 * VOCAB * HIDDEN * 2) // per_layer) + 1)
    specs: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(n_layers):
        specs += list(_layer_tensors(i).items())
    return specs + [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]


def _gguf_name(key: str) -> str:
    if key == "model.embed_tokens.weight":
        return "token_embd.weight"
    if key == "model.norm.weight":
        return "output_norm.weight"
    if key == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = key.split(".", 3)
    return f"blk.{layer}.{_GGUF_NAMES[rest]}"


def _fill(shape: tuple[int, ...], block: torch.Tensor, k: int) -> torch.Tensor:
    """A bf16 tensor of ``shape`` made of a shifted random block (cheap to make, not constant)."""
    n = math.prod(shape)
    reps = -(-n // block.numel())
    return torch.roll(block, k).repeat(reps)[:n].view(shape).clone()


def _block() -> torch.Tensor:
    return (0.02 * torch.randn(1 << 22, generator=torch.Generator().manual_seed(0))).to(torch.bfloat16)


def build_safetensors(folder: Path, size_gb: float, shard_gb: float) -> tuple[int, int, int]:
    """Write a Llama-shaped bf16 checkpoint; returns (total bytes, largest tensor, largest shard)."""
    folder.mkdir(parents=True)
    block, specs = _block(), _specs(size_gb)
    groups: list[list[tuple[int, str, tuple[int, ...]]]] = [[]]
    acc = 0
    for k, (key, shape) in enumerate(specs):
        nb = math.prod(shape) * 2
        if groups[-1] and acc + nb > shard_gb * GB:
            groups.append([])
            acc = 0
        groups[-1].append((k, key, shape))
        acc += nb
    weight_map, total, largest_t, largest_s = {}, 0, 0, 0
    for si, group in enumerate(groups):
        name = f"model-{si + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {key: _fill(shape, block, k) for k, key, shape in group}
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        largest_s = max(largest_s, (folder / name).stat().st_size)
        for key, t in tensors.items():
            weight_map[key] = name
            largest_t = max(largest_t, t.numel() * 2)
            total += t.numel() * 2
        del tensors
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN,
        "intermediate_size": INTER, "num_hidden_layers": len(specs) // 9, "vocab_size": VOCAB,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16"}))
    (folder / "tokenizer_config.json").write_text("{}")
    return total, largest_t, largest_s


def build_gguf(path: Path, size_gb: float, qtype: gguf.GGMLQuantizationType) -> int:
    """The same tensors (same bf16 bytes for BF16; quantized by gguf.quants otherwise) as one GGUF."""
    specs, block = _specs(size_gb), _block()
    w = gguf.GGUFWriter(path, "llama")
    w.add_embedding_length(HIDDEN)
    w.add_block_count(len(specs) // 9)
    w.add_feed_forward_length(INTER)
    w.add_head_count(32)
    w.add_head_count_kv(8)

    def stored(t: torch.Tensor) -> np.ndarray:
        if t.ndim == 1:
            return t.float().numpy()
        if qtype == gguf.GGMLQuantizationType.BF16:
            return t.view(torch.int16).numpy()
        return gguf.quants.quantize(t.float().numpy(), qtype)

    for key, shape in specs:
        q = gguf.GGMLQuantizationType.F32 if len(shape) == 1 else qtype
        block_size, type_size = gguf.GGML_QUANT_SIZES[q]
        nbytes = math.prod(shape) // block_size * type_size
        w.add_tensor_info(_gguf_name(key), shape, np.dtype(np.float32), nbytes, raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for k, (_, shape) in enumerate(specs):
        w.write_tensor_data(stored(_fill(shape, block, k)))
    w.close()
    return path.stat().st_size


_CHILD = """
import sys, json, math, time, resource
from pathlib import Path
import abliterate
try:
    from abliterate.bake.run import bake
except ImportError:  # a --before tree from before the bake/ subpackage
    from abliterate.bake import bake
assert abliterate.__file__.startswith(sys.argv[4]), (abliterate.__file__, sys.argv[4])
ru0 = resource.getrusage(resource.RUSAGE_SELF)
t = time.monotonic()
rep = bake(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), progress=False)
ru = resource.getrusage(resource.RUSAGE_SELF)
bake_cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
# VmHWM is this process's own peak RSS (ru_maxrss would include the parent's RSS at fork time)
hwm = int(next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM:")))
print(json.dumps({"wall_s": time.monotonic() - t, "edited": len(rep["edited"]), "timing": rep["timing"],
                  "cpu_s": ru.ru_utime + ru.ru_stime, "bake_cpu_s": bake_cpu, "peak_rss_kb": hwm}))
"""


def _fsync_all(path: Path) -> None:
    for f in [path] if path.is_file() else sorted(path.rglob("*")):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _timed_copy(src: Path, dst: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of a shutil copy (a file or a folder) followed by an fsync of what it wrote."""
    os.sync()  # start clean: earlier writes are not this copy's
    t, ru = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
    _fsync_all(dst)
    wall = time.monotonic() - t
    ru2 = resource.getrusage(resource.RUSAGE_SELF)
    return wall, ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime


def _copy_baseline(src: Path, root: Path, runs: int = 2) -> tuple[float, float]:
    """Best (wall, CPU) of ``runs`` plain copies."""
    best = (math.inf, 0.0)
    for i in range(runs):
        dst = root / f"copy{i}{src.suffix}"
        best = min(best, _timed_copy(src, dst))
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    return best


def _one_core_passes(files: list[Path]) -> tuple[float, float, int]:
    """(read s, sha256 s, bytes): a read pass and a sha256 pass over the files on one core."""
    n, buf = 0, bytearray(32 << 20)
    t = time.monotonic()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while k := fh.readinto(buf):
                n += k
    read_s = time.monotonic() - t
    t = time.monotonic()
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb", buffering=0) as fh:
            while k := fh.readinto(buf):
                h.update(memoryview(buf)[:k])
    return read_s, time.monotonic() - t - read_s, n


_HERE = Path(__file__).resolve().parent.parent


def _bake_child(src: Path, direction: Path, out: Path, home: Path, code: Path = _HERE) -> dict:
    """Run the bake of the code in ``code`` in a fresh interpreter; its wall, CPU, peak RSS, timing split.

    ``home`` is its ABLBENCH_HOME: a fresh one means no sha256 remembered from an earlier bake.
    """
    env = {**os.environ, "ABLBENCH_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(code), *filter(None, [os.environ.get("PYTHONPATH")])])}
    os.sync()  # each bake starts with no dirty pages of an earlier one
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(direction), str(out), str(code)],
                          capture_output=True, text=True, env=env, cwd=code)  # python -c puts the cwd first
    if proc.returncode:
        raise SystemExit(f"bake of {src} with the code in {code} failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(out.parent if out.suffix == ".gguf" else out)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load}


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


def _report(label: str, child: dict, total: int, copy_s: float, largest: int | None = None) -> dict:
    t = child["timing"]
    ratio = child["wall_s"] / copy_s
    print(f"[{label}] bake {child['wall_s']:.2f} s vs copy {copy_s:.2f} s: {ratio:.2f}x "
          f"(goal <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'}); {child['edited']} tensors edited, "
          f"{total / GB / child['wall_s']:.2f} GiB/s, CPU {child['bake_cpu_s']:.2f} s in the bake "
          f"({child['cpu_s']:.2f} s with the imports), load average {child['load']:.1f}")
    waits = (f", caller waited on hashes {t['wait_hash_s']:.2f} s and on the writer {t['wait_write_s']:.2f} s"
             if "wait_hash_s" in t else "")
    print(f"[{label}]   split: sha256 {t['hash_cpu_s']:.2f} CPU-s over {t['hashed_bytes'] / GB:.2f} GiB, "
          f"math {t['compute_s']:.2f} s ({t['compute_cpu_s']:.2f} CPU-s, {t['math_threads']} torch thread(s)), "
          f"writer busy {t['write_s']:.2f} s ({t['copied_bytes'] / GB:.2f} GiB kernel-copied, "
          f"{t['computed_bytes'] / GB:.2f} GiB computed), fsync {t['fsync_s']:.2f} s{waits}")
    peak = child["peak_rss_kb"] * 1024
    extra = (f" = {peak / largest:.2f}x largest shard (goal <= 2x largest shard + 1 GiB: "
             f"{'met' if peak <= 2 * largest + GB else 'MISSED'})") if largest else ""
    print(f"[{label}]   peak RSS {peak / GB:.2f} GiB{extra} (~0.25 GiB of it is torch)")
    return {"label": label, "ratio": ratio, **child}


class _Cases:
    """Runs each case with the code before (if given) and this tree's code, and keeps the rows."""

    def __init__(self, before: Path | None, root: Path) -> None:
        self.before, self.root, self.rows = before, root, []

    def run(self, label: str, src: Path, r: Path, out: Path, home: str, total: int, copy_s: float,
            largest: int | None = None) -> None:
        row = {"label": label, "copy_s": copy_s}
        if self.before is not None:
            row["before"] = _report(f"before: {label}", _bake_child(src, r, out, self.root / f"{home}-before",
                                                                    self.before), total, copy_s, largest)
        row["after"] = _report(label, _bake_child(src, r, out, self.root / f"{home}-after"), total, copy_s, largest)
        self.rows.append(row)

    def table(self) -> None:
        print("\n| case | plain copy | before | after | bake CPU-s before / after | load before / after |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: |")
        for row in self.rows:
            a, b = row["after"], row.get("before")
            before = f"{b['wall_s']:.2f} s ({b['ratio']:.2f}x)" if b else "-"
            cpu = f"{b['bake_cpu_s']:.2f} / {a['bake_cpu_s']:.2f}" if b else f"{a['bake_cpu_s']:.2f}"
            load = f"{b['load']:.1f} / {a['load']:.1f}" if b else f"{a['load']:.1f}"
            print(f"| {row['label']} | {row['copy_s']:.2f} s | {before} | {a['wall_s']:.2f} s ({a['ratio']:.2f}x) "
                  f"| {cpu} | {load} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=4.2, help="checkpoint size (GB of bf16 tensors)")
    ap.add_argument("--shard-gb", type=float, default=1.5, help="safetensors shard size")
    ap.add_argument("--q8-gb", type=float, default=0.5, help="size of the Q8_0 GGUF case (0: skip it)")
    ap.add_argument("--dir", type=Path, default=None, help="parent for the temp folder (default: system temp)")
    ap.add_argument("--before", type=Path, default=None,
                    help="a folder with another copy of the abliterate and ablbench packages, run first for every case")
    args = ap.parse_args()
    if args.before is not None and not any((args.before / "abliterate" / f).is_file()
                                           for f in ("bake/run.py", "bake.py")):
        ap.error(f"--before {args.before} has no abliterate/bake/run.py; "
                 "fill it with: git archive main abliterate ablbench | tar -x -C DIR")
    before = args.before.resolve() if args.before is not None else None
    root = Path(tempfile.mkdtemp(prefix="bench-bake-", dir=args.dir)).resolve()
    try:
        src = root / "src"
        t = time.monotonic()
        total, _, largest_s = build_safetensors(src, args.size_gb, args.shard_gb)
        gg = root / "model-bf16.gguf"
        build_gguf(gg, args.size_gb, gguf.GGMLQuantizationType.BF16)
        print(f"built {total / GB:.2f} GiB of bf16 tensors as {len(list(src.glob('*.safetensors')))} safetensors "
              f"shards and as one {gg.stat().st_size / GB:.2f} GiB GGUF ({time.monotonic() - t:.1f} s)")
        np.save(root / "r.npy", np.random.default_rng(0).standard_normal(HIDDEN).astype(np.float32))
        print(f"machine: {os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f}")
        read_s, sha_s, n = _one_core_passes(sorted(src.glob("*.safetensors")))
        print(f"one core, same bytes: read {read_s:.2f} s ({n / GB / read_s:.2f} GiB/s), "
              f"sha256 {sha_s:.2f} s ({n / GB / sha_s:.2f} GiB/s per stream)")
        copy_s, copy_cpu = _copy_baseline(src, root)
        print(f"plain copy of the safetensors folder (best of 2): {copy_s:.2f} s, CPU {copy_cpu:.2f} s")
        r = root / "r.npy"
        cases = _Cases(before, root)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the table of the cases run so far
            cases.run("safetensors, plain folder (2 sha256 streams)", src, r, root / "out", "h1", total, copy_s,
                      largest_s)
            cases.run("safetensors, same folder again (source sha256 remembered: 1 stream)", src, r, root / "out",
                      "h1", total, copy_s, largest_s)
            snap = _as_hf_snapshot(src, root)
            cases.run("safetensors, HF cache snapshot (source sha256 = blob names: 1 stream)", snap, r,
                      root / "out", "h0", total, copy_s, largest_s)
            shutil.rmtree(root / "hub")
            gcopy_s, gcopy_cpu = _copy_baseline(gg, root)
            print(f"plain copy of the GGUF (best of 2): {gcopy_s:.2f} s, CPU {gcopy_cpu:.2f} s")
            cases.run("GGUF BF16 (2 sha256 streams)", gg, r, root / "gout" / "x.gguf", "h2", gg.stat().st_size,
                      gcopy_s)
            cases.run("GGUF BF16 again (source sha256 remembered: 1 stream)", gg, r, root / "gout" / "x.gguf", "h2",
                      gg.stat().st_size, gcopy_s)
            gg.unlink()
            if args.q8_gb > 0:
                q8 = root / "model-q8_0.gguf"
                t = time.monotonic()
                build_gguf(q8, args.q8_gb, gguf.GGMLQuantizationType.Q8_0)
                print(f"built a {q8.stat().st_size / GB:.2f} GiB Q8_0 GGUF ({time.monotonic() - t:.1f} s)")
                qcopy_s, _ = _copy_baseline(q8, root)
                print(f"plain copy of the Q8_0 GGUF (best of 2): {qcopy_s:.2f} s")
                cases.run("GGUF Q8_0 -> F16 writers", q8, r, root / "qout" / "x.gguf", "h3", q8.stat().st_size,
                          qcopy_s)
        cases.table()
        print(f"1-min load average at the end {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
