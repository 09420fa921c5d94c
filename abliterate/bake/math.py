"""The rank-1 orthogonalization, applied chunk by chunk to one tensor's bytes.

Two layouts cover every writer:
- ``cols``: W[..., hidden, in] (nn.Linear weights, fused [E, hidden, inter] experts). Each column
  is one input neuron's write vector: W' = W - a u (u^T W), matrix by matrix.
- ``rows``: X[..., hidden] (embeddings, biases, gpt-oss's transposed [E, inter, hidden] experts).
  Each row is a write vector: X' = X - a (X u) u^T, in row chunks.
Math runs in fp32 (fp64 for fp64 tensors) and is cast back to the stored dtype once, into an
output buffer that is reused once the writer and the hash thread are done with it (a fresh one is
page-faulted and zeroed by the kernel: that cost as much as the math itself).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from abliterate.bake.io import TensorInfo

TORCH_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
ROW_CHUNK_BYTES = 32 << 20


@dataclass
class EditStats:
    """Squared norms of the direction component before and after (on the stored values)."""

    before_sq: float = 0.0
    after_sq: float = 0.0
    zero_norm_columns: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def before(self) -> float:
        return math.sqrt(self.before_sq)

    @property
    def after(self) -> float:
        return math.sqrt(self.after_sq)


def frombuffer_readonly(view: memoryview, dtype: torch.dtype) -> torch.Tensor:
    """A zero-copy tensor over read-only mapped bytes (never written: every edit works on a copy)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given buffer is not writable")
        return torch.frombuffer(view, dtype=dtype)


def _rescale(new: torch.Tensor, old_norms: torch.Tensor, dim: int, stats: EditStats) -> None:
    """Scale each write vector of ``new`` (along ``dim``) back to its original norm, in place."""
    new_norms = new.norm(dim=dim, keepdim=True)
    ok = new_norms > 0
    stats.zero_norm_columns += int((~ok).sum())
    new.mul_(torch.where(ok, old_norms / torch.where(ok, new_norms, 1.0), 1.0))


def orthogonalize_cols(w: torch.Tensor, u: torch.Tensor, alpha: float, norm_preserve: bool,
                       stats: EditStats) -> torch.Tensor:
    """W[hidden, in] in place: W - alpha u (u^T W); optionally keep each column's norm."""
    coef = u @ w  # (in,)
    stats.before_sq += float(coef.double().square().sum())
    old = w.norm(dim=0, keepdim=True) if norm_preserve else None
    w.addr_(u, coef, alpha=-alpha)
    if norm_preserve:
        _rescale(w, old, 0, stats)
    return w


def orthogonalize_rows(x: torch.Tensor, u: torch.Tensor, alpha: float, norm_preserve: bool,
                       stats: EditStats) -> torch.Tensor:
    """X[n, hidden] in place: X - alpha (X u) u^T; optionally keep each row's norm."""
    coef = x @ u  # (n,)
    stats.before_sq += float(coef.double().square().sum())
    old = x.norm(dim=1, keepdim=True) if norm_preserve else None
    x.addr_(coef, u, alpha=-alpha)
    if norm_preserve:
        _rescale(x, old, 1, stats)
    return x


@contextlib.contextmanager
def math_threads(hash_streams: int = 2) -> Iterator[int]:
    """torch's thread count for a bake: ``ABLBENCH_TORCH_THREADS``, else the cores the hash threads leave.

    ``hash_streams`` is 2 when a source is hashed too, 1 when every source hash is known. On 2
    cores that is 1 either way: a second OpenMP thread would only spin against the hashes.
    """
    before = torch.get_num_threads()
    env = os.environ.get("ABLBENCH_TORCH_THREADS", "")
    n = int(env) if env.isdigit() and int(env) > 0 else max(1, _cores() - hash_streams)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def _cores() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: output buffers kept for reuse per Workspace (bytes); more in flight are allocated fresh
OUTPUT_POOL_BYTES = 512 << 20


def _idle_refs() -> int:
    """References to a pooled array that nothing else holds, counted exactly as :meth:`Workspace.output` counts."""
    for a in [np.empty(1, dtype=np.uint8)]:
        return sys.getrefcount(a)
    raise AssertionError


_IDLE_REFS = _idle_refs()


class Workspace:
    """One reusable compute buffer per dtype for a whole bake, and a pool of output buffers.

    Fresh large allocations are page-faulted and zeroed by the kernel on every use; reusing one
    buffer keeps that cost (which rivals the math) to a single tensor's worth.
    """

    def __init__(self) -> None:
        self._bufs: dict[torch.dtype, torch.Tensor] = {}
        self._pool: list[np.ndarray] = []

    def output(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, memoryview]:
        """A tensor to cast a result into, and the bytes view to hand to the writer.

        The bytes are a pooled array's: it is handed out again only once no object refers to it
        any more (the writer thread and the hash thread dropped their views, every tensor over it
        is gone), so a buffer still queued is never overwritten.
        """
        n = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
        arr = None
        for a in self._pool:  # the smallest idle buffer that fits
            if len(a) >= n and sys.getrefcount(a) == _IDLE_REFS and (arr is None or len(a) < len(arr)):
                arr = a
        if arr is None:
            arr = np.empty(max(n, 1), dtype=np.uint8)
            if sum(len(a) for a in self._pool) + len(arr) <= OUTPUT_POOL_BYTES:
                self._pool.append(arr)
        mv = memoryview(arr)[:n]
        return torch.from_numpy(arr[:n]).view(dtype).view(shape), mv

    def get(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        n = math.prod(shape)
        buf = self._bufs.get(dtype)
        if buf is None or buf.numel() < n:
            buf = self._bufs[dtype] = torch.empty(n, dtype=dtype)
        return buf[:n].view(shape)


def _edit_block(src: torch.Tensor, work: torch.Tensor, fn, u: torch.Tensor, alpha: float, norm_preserve: bool,
                stats: EditStats, after_dim: int, ws: Workspace) -> memoryview:
    """Edit one block: convert into ``work``, edit in place, cast back once; record the residual."""
    work.copy_(src)
    fn(work, u, alpha, norm_preserve, stats)
    out, data = ws.output(tuple(src.shape), src.dtype)
    out.copy_(work)
    work.copy_(out)  # the stored values, back in the compute dtype, for the "after" figure
    coef = u @ work if after_dim == 0 else work @ u
    stats.after_sq += float(coef.double().square().sum())
    return data


def make_editor(layout: str, u64: torch.Tensor, alpha: float, norm_preserve: bool, stats: EditStats,
                workspace: Workspace | None = None):
    """An Editor (see bake.io) applying the edit to one tensor stored in ``layout``."""
    ws = workspace or Workspace()

    def edit(info: TensorInfo, view: memoryview) -> Iterator[memoryview]:
        dtype = TORCH_DTYPES[info.dtype]
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        u = u64.to(cdt)
        item = torch.tensor([], dtype=dtype).element_size()
        hidden = info.shape[-2] if layout == "cols" else info.shape[-1]
        if layout == "cols":
            inner = info.shape[-1]
            size = hidden * inner * item
            for m in range(math.prod(info.shape[:-2])):
                src = frombuffer_readonly(view[m * size:(m + 1) * size], dtype).view(hidden, inner)
                work = ws.get((hidden, inner), cdt)
                yield _edit_block(src, work, orthogonalize_cols, u, alpha, norm_preserve, stats, 0, ws)
        else:
            n_rows = math.prod(info.shape[:-1])
            per = max(1, ROW_CHUNK_BYTES // (hidden * item))
            row = hidden * item
            for done in range(0, n_rows, per):
                k = min(per, n_rows - done)
                src = frombuffer_readonly(view[done * row:(done + k) * row], dtype).view(k, hidden)
                work = ws.get((k, hidden), cdt)
                yield _edit_block(src, work, orthogonalize_rows, u, alpha, norm_preserve, stats, 1, ws)

    return edit
