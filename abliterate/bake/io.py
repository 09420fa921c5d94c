"""Streaming safetensors I/O: read headers, rewrite a shard range by range, hash while streaming.

Rules, in order:
1. Headers are parsed and checked (contiguous tensors, no trailing bytes) before anything is written.
2. An edit never changes a tensor's dtype or shape, so the output shard keeps the source header
   byte for byte (key order, offsets, ``__metadata__``).
3. Untouched tensors' bytes are copied verbatim; only the edited ranges are recomputed, and both
   sha256s are taken in the same pass (:mod:`abliterate.bake.stream`). Peak memory is one tensor
   (or one chunk of it).
4. Several shards are pipelined (:func:`rewrite_shards`): a shard's tail (hashes catching up,
   fsync, rename) runs in the background while the next shard starts; at most two are in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from abliterate.bake.errors import BakeError
from abliterate.bake.stream import COPY_CHUNK, OutputStream, StreamTiming
from abliterate.fsio import atomic_path

_MAX_HEADER = 100 << 20


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file: absolute byte range in the file."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass
class ShardHeader:
    """A parsed safetensors header."""

    path: Path
    header_len: int  # 8 + JSON length: where the data starts
    tensors: list[TensorInfo]  # sorted by start offset
    metadata: dict
    file_size: int


def read_header(path: Path) -> ShardHeader:
    """Parse the header of a safetensors file without touching tensor data."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise BakeError(f"{path} is not a safetensors file (too short); re-download it")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER or 8 + n > size:
            raise BakeError(f"{path} has a corrupt safetensors header; re-download it")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BakeError(f"{path} has a corrupt safetensors header ({exc}); re-download it") from exc
    meta = header.pop("__metadata__", {}) or {}
    tensors = []
    for key, h in header.items():
        a, b = h["data_offsets"]
        tensors.append(TensorInfo(key, h["dtype"], tuple(h["shape"]), 8 + n + a, 8 + n + b))
    tensors.sort(key=lambda t: t.start)
    pos = 8 + n
    for t in tensors:
        if t.start != pos:
            raise BakeError(f"{path}: tensor {t.key} does not follow the previous one; re-save the checkpoint")
        pos = t.end
    if pos != size:
        raise BakeError(f"{path}: data ends at byte {pos} but the file has {size} bytes; re-download it")
    return ShardHeader(path, 8 + n, tensors, meta, size)


#: an editor turns the source bytes of one tensor into output byte chunks
Editor = Callable[[TensorInfo, memoryview], Iterable[bytes | memoryview]]


def rewrite_shard(src: ShardHeader, dst: Path, editors: dict[str, Editor],
                  on_bytes: Callable[[int], None] | None = None, src_sha: str | None = None,
                  timing: StreamTiming | None = None) -> tuple[str, str]:
    """Write ``dst`` (atomically) as ``src`` with the tensors in ``editors`` recomputed.

    Returns (source sha256, output sha256); a known ``src_sha`` skips hashing the source. Runs of
    untouched tensors (and the header) are copied in the kernel in one piece each; both hashes are
    taken in the same pass (:mod:`abliterate.bake.stream`).
    """
    return _rewrite(src, dst, editors, on_bytes, src_sha, timing, None)


def rewrite_shards(jobs: Iterable[tuple[ShardHeader, Path, dict[str, Editor], str | None]],
                   on_bytes: Callable[[int], None] | None = None,
                   timing: StreamTiming | None = None) -> list[tuple[str, str]]:
    """:func:`rewrite_shard` for each (source, destination, editors, known source sha256), pipelined.

    Returns the (source, output) sha256 of each, in order. Each shard's tail (its hashes and writes
    catching up, fsync, rename) runs on a finishing thread while the next shard is edited; at most
    two shards are in flight. On an error, the shard in its tail is still finished (its caller
    removes the whole output) and no thread is left running.
    """
    results: list[tuple[str, str]] = []
    pending: Future | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="bake-finish") as finisher:
        try:
            for src, dst, editors, src_sha in jobs:
                fut = _rewrite(src, dst, editors, on_bytes, src_sha, timing, finisher)
                if pending is not None:
                    results.append(pending.result())
                pending = fut
            if pending is not None:
                fut, pending = pending, None
                results.append(fut.result())
        finally:
            if pending is not None:
                with contextlib.suppress(BaseException):  # the caller is failing already
                    pending.result()
    return results


def _rewrite(src: ShardHeader, dst: Path, editors: dict[str, Editor], on_bytes, src_sha: str | None,
             timing: StreamTiming | None, finisher: Executor | None):
    """One shard; with ``finisher``, returns the Future of its digests (its tail runs there)."""
    with OutputStream(src.path, dst, src_sha=src_sha, hash_output=bool(editors), on_bytes=on_bytes,
                      timing=timing) as stream:
        run_start, run_end = 0, src.header_len
        for info in src.tensors:
            edit = editors.get(info.key)
            if edit is None:
                run_end = info.end
                continue
            stream.copy(run_start, run_end - run_start)
            view = stream.source(info.start, info.nbytes)
            written = stream.write_all(edit(info, view))
            del view
            if written != info.nbytes:
                raise BakeError(f"internal: editor for {info.key} wrote {written} of {info.nbytes} bytes")
            run_start = run_end = info.end
        stream.copy(run_start, run_end - run_start)
        return stream.finish() if finisher is None else stream.finish_in(finisher)


def copy_file_atomic(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` via a temp file + os.replace; returns the sha256 of the content."""
    h = hashlib.sha256()
    with atomic_path(dst) as tmp, open(src, "rb") as fin, open(tmp, "wb") as fout:
        while chunk := fin.read(COPY_CHUNK):
            h.update(chunk)
            fout.write(chunk)
    return h.hexdigest()


