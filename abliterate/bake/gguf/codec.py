"""Decode a GGUF tensor's bytes to fp32, edit them with bake.math, encode them to the output type.

Rules, in order:
1. Source bytes are decoded block by block: ``cols`` tensors one ``[hidden, in]`` matrix at a time
   (a fused expert tensor is never whole in fp32), ``rows`` tensors (embeddings, biases) in row
   chunks. F32/F16/BF16 decode through torch; so do Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1, with the same
   fp32 operations in the same order as ``gguf.quants`` (bit-identical values, in a reused
   buffer); F64 and the other quantized types through ``gguf.quants.dequantize``.
2. The edit is :mod:`abliterate.bake.math`'s (``orthogonalize_cols`` / ``orthogonalize_rows``),
   in fp32, in place: the same math as the safetensors bake.
3. The result is encoded once into the output type: F32, F16 or BF16 (torch casts, round to
   nearest even like ggml) or Q8_0 (``gguf.quants.quantize``, bit-exact with ggml's reference).
4. The stored values are decoded back and measured, per write vector: r_norm_after (sqrt of the
   summed squared components, as the safetensors bake reports it), residual_max = max |u^T w'|
   and max_abs = max |w| of the source. Q8_0 output must satisfy residual_max <= q8_bound * max_abs
   (checked when the tensor is done; a failure stops the bake, which leaves nothing behind).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize, quantize

from abliterate.bake.errors import BakeError
from abliterate.bake.math import (
    ROW_CHUNK_BYTES,
    EditStats,
    Workspace,
    frombuffer_readonly,
    orthogonalize_cols,
    orthogonalize_rows,
)

Q = GGMLQuantizationType
#: output types the bake writes, by the name used on the command line
OUTPUT_TYPES = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}
_TORCH = {Q.F32: torch.float32, Q.F16: torch.float16, Q.BF16: torch.bfloat16}
#: default bound for Q8_0 output: residual_max <= Q8_BOUND * max|W| per tensor. Q8_0 rounds each value by
#: up to half a step, max|block| / 254 <= 0.39 % of max|W|; along a unit r these errors add like a random
#: walk of about 0.39 % / sqrt(3) = 0.23 % of max|W|, and even the max over a 50k-row embedding stays near
#: 4.5 such units (~1 %). Measured: <= 0.27 % on SmolLM2-135M's Q4_1 writers re-quantized to Q8_0. A Q8_0
#: source re-quantized to Q8_0 is different: edits smaller than half a step snap back onto the source grid
#: (0.82 % on SmolLM2's token_embd, 3.5 % on a synthetic Q8_0 embedding), so auto writes those as F16.
Q8_BOUND = 1e-2


def row_bytes(qtype: Q, n: int) -> int:
    """Bytes of one row of ``n`` values stored as ``qtype``."""
    block, size = GGML_QUANT_SIZES[qtype]
    if n % block:
        raise BakeError(f"a row of {n} values cannot be stored as {qtype.name} (blocks of {block})")
    return n // block * size


def can_decode(qtype: Q) -> bool:
    """True when this type can be dequantized here (torch or gguf.quants)."""
    if qtype in _TORCH or qtype == Q.F64:
        return True
    block, size = GGML_QUANT_SIZES[qtype]
    try:
        dequantize(np.zeros((1, size), dtype=np.uint8), qtype)
    except (NotImplementedError, ValueError):
        return False
    return True


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    """[blocks, 16] packed bytes -> [blocks, 32] values 0..15: low nibbles first, then high (ggml's order)."""
    return torch.cat((qs & 0x0F, qs >> 4), dim=1)


def _high_bits(qh: torch.Tensor) -> torch.Tensor:
    """[blocks, 4] bytes (a little-endian uint32 per block) -> [blocks, 32] bit i of it, shifted to 16."""
    bits = (qh.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1  # [blocks, 4, 8]: byte j, bit k
    return bits.reshape(qh.shape[0], 32) << 4


def _dequant_torch(raw: memoryview, qtype: Q, n_rows: int, n: int, ws: Workspace | None) -> torch.Tensor:
    """Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 blocks to fp32, in gguf.quants' operations and order (bit-identical)."""
    block, size = GGML_QUANT_SIZES[qtype]
    b = frombuffer_readonly(raw, torch.uint8).view(-1, size)
    out = ws.get((b.shape[0], block), torch.float32) if ws is not None else torch.empty(b.shape[0], block)
    d = b[:, 0:2].contiguous().view(torch.float16).to(torch.float32)  # [blocks, 1]
    if qtype == Q.Q8_0:
        out.copy_(b[:, 2:].view(torch.int8))
        out.mul_(d)  # x * d
    elif qtype == Q.Q4_0:
        out.copy_(_nibbles(b[:, 2:]).view(torch.int8) - 8)
        out.mul_(d)  # d * (q - 8)
    elif qtype == Q.Q4_1:
        m = b[:, 2:4].contiguous().view(torch.float16).to(torch.float32)
        out.copy_(_nibbles(b[:, 4:]))
        out.mul_(d).add_(m)  # d * q + m, two roundings like numpy
    elif qtype == Q.Q5_0:
        out.copy_((_nibbles(b[:, 6:]) | _high_bits(b[:, 2:6])).view(torch.int8) - 16)
        out.mul_(d)
    else:  # Q5_1
        m = b[:, 2:4].contiguous().view(torch.float16).to(torch.float32)
        out.copy_(_nibbles(b[:, 8:]) | _high_bits(b[:, 4:8]))
        out.mul_(d).add_(m)
    return out.view(n_rows, n)


#: quantized types decoded through torch (the rest go through gguf.quants' numpy)
TORCH_DEQUANT = {Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1}


def decode(raw: memoryview, qtype: Q, n_rows: int, n: int, ws: Workspace | None = None) -> torch.Tensor:
    """fp32 [n_rows, n] from the stored bytes: a writable tensor (in ``ws``'s buffer when given)."""
    if qtype in _TORCH:
        src = frombuffer_readonly(raw, _TORCH[qtype]).view(n_rows, n)
        if ws is not None:
            return ws.get((n_rows, n), torch.float32).copy_(src)
        return src.clone() if qtype == Q.F32 else src.to(torch.float32)
    if qtype in TORCH_DEQUANT:
        return _dequant_torch(raw, qtype, n_rows, n, ws)
    if qtype == Q.F64:
        return torch.from_numpy(np.frombuffer(raw, dtype=np.float64).reshape(n_rows, n).astype(np.float32))
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n_rows, row_bytes(qtype, n))
    return torch.from_numpy(np.ascontiguousarray(dequantize(blocks, qtype), dtype=np.float32).reshape(n_rows, n))


def encode(w: torch.Tensor, qtype: Q, ws: Workspace | None = None) -> tuple[memoryview, torch.Tensor]:
    """(stored bytes in a fresh buffer, the stored values as fp32) for fp32 ``w`` [n_rows, n].

    The bytes go to the writer thread, so they never share memory with ``w`` or ``ws``'s compute
    buffer (they are ``ws``'s pooled output buffers, reused only once the writer is done with them).
    """
    if qtype in _TORCH and ws is not None:
        low, data = ws.output(tuple(w.shape), _TORCH[qtype])
        low.copy_(w)
        return data, (w if qtype == Q.F32 else ws.get(tuple(w.shape), torch.float32).copy_(low))
    if qtype == Q.F32:
        return memoryview(w.clone().numpy()).cast("B"), w
    if qtype in _TORCH:
        low = w.to(_TORCH[qtype])
        return memoryview(low.view(torch.uint8).numpy()).cast("B"), low.to(torch.float32)
    if qtype == Q.Q8_0:
        q = quantize(w.numpy(), qtype)
        return memoryview(q).cast("B"), torch.from_numpy(np.ascontiguousarray(dequantize(q, qtype), dtype=np.float32))
    raise BakeError(f"internal: the bake does not write {qtype.name}")


def edit_tensor(view: memoryview, shape: tuple[int, ...], src_type: Q, out_type: Q, layout: str,
                u64: torch.Tensor, alpha: float, norm_preserve: bool, stats: EditStats,
                q8_bound: float = Q8_BOUND, name: str = "", work: Workspace | None = None,
                back: Workspace | None = None) -> Iterator[memoryview]:
    """Yield the output bytes of one edited tensor (numpy-order ``shape``), block by block.

    ``work`` and ``back`` are reusable fp32 buffers (the edit and the stored values read back):
    fresh ones would be page-faulted and zeroed by the kernel for every block.
    """
    u = u64.to(torch.float32)
    hidden = shape[-2] if layout == "cols" else shape[-1]
    stats.extra.setdefault("residual_max", 0.0)
    stats.extra.setdefault("max_abs", 0.0)
    if layout == "cols":
        inner = shape[-1]
        size = hidden * row_bytes(src_type, inner)
        blocks = ((view[m * size:(m + 1) * size], hidden) for m in range(math.prod(shape[:-2])))
        n = inner
    else:
        n_rows, n = math.prod(shape[:-1]), hidden
        per = max(1, ROW_CHUNK_BYTES // (hidden * 4))
        row = row_bytes(src_type, hidden)
        blocks = ((view[a * row:min(a + per, n_rows) * row], min(per, n_rows - a)) for a in range(0, n_rows, per))
    for raw, rows in blocks:
        w = decode(raw, src_type, rows, n, work)
        if w.numel():  # aminmax: one pass, no |w| temporary
            lo, hi = torch.aminmax(w)
            stats.extra["max_abs"] = max(stats.extra["max_abs"], -float(lo), float(hi))
        if layout == "cols":
            orthogonalize_cols(w, u, alpha, norm_preserve, stats)
        else:
            orthogonalize_rows(w, u, alpha, norm_preserve, stats)
        data, stored = encode(w, out_type, back)
        coef = u @ stored if layout == "cols" else stored @ u
        stats.after_sq += float(coef.double().square().sum())
        stats.extra["residual_max"] = max(stats.extra["residual_max"], float(coef.abs().max()) if coef.numel() else 0.0)
        yield data
    if out_type == Q.Q8_0 and stats.extra["residual_max"] > q8_bound * stats.extra["max_abs"]:
        raise BakeError(
            f"{name}: Q8_0 leaves |r^T W'| = {stats.extra['residual_max']:.3g} > {q8_bound:g} * max|W| "
            f"= {q8_bound * stats.extra['max_abs']:.3g}; write it as F16 (--gguf-type f16) or raise --q8-bound"
        )
