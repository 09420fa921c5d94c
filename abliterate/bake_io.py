"""Streaming safetensors I/O: read headers, rewrite a shard range by range, hash while streaming.

An edit never changes a tensor's dtype or shape, so the output shard keeps the source header
byte for byte (key order, offsets, ``__metadata__``) and every untouched tensor's bytes are copied
verbatim; only the edited ranges are recomputed. Peak memory is one tensor (or one chunk of it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import queue
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from abliterate.bake_errors import BakeError
from abliterate.fsio import atomic_path

COPY_CHUNK = 32 << 20
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


class StreamHash:
    """sha256 fed from a worker thread (hashlib releases the GIL), so hashing overlaps I/O."""

    def __init__(self, max_pending: int = 4) -> None:
        self._h = hashlib.sha256()
        self._ex = ThreadPoolExecutor(1)
        self._pending: deque[Future] = deque()
        self._max = max_pending

    def update(self, data) -> Future:
        fut = self._ex.submit(self._h.update, data)
        self._pending.append(fut)
        while len(self._pending) > self._max:
            self._pending.popleft().result()
        return fut

    def hexdigest(self) -> str:
        while self._pending:
            self._pending.popleft().result()
        return self._h.hexdigest()

    def close(self) -> None:
        """Stop the worker (pending updates are dropped if the caller is failing)."""
        self._ex.shutdown(wait=True, cancel_futures=True)


class _NoHash:
    """Stands in for a StreamHash when the digest is already known (an HF cache blob name)."""

    def __init__(self, digest: str) -> None:
        self._digest = digest
        self._done: Future = Future()
        self._done.set_result(None)

    def update(self, data) -> Future:
        return self._done

    def hexdigest(self) -> str:
        return self._digest

    def close(self) -> None:
        pass


class _Writer:
    """Writes the output file in order from a bounded queue on its own thread.

    Jobs are ("copy", src_offset, n): an in-kernel copy from the source file (copy_file_range),
    or ("data", buffer): computed bytes.
    """

    def __init__(self, fin, fout, depth: int = 6, max_bytes: int = 256 << 20) -> None:
        self._in, self._out = fin.fileno(), fout.fileno()
        self._q: queue.Queue = queue.Queue(depth)
        self._budget = threading.Condition()
        self._queued, self._max_bytes = 0, max_bytes
        self._pos = 0
        self._err: BaseException | None = None
        self._kernel_copy = hasattr(os, "copy_file_range")
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def put(self, job: tuple) -> None:
        if self._err is not None:
            raise self._err
        if job[0] == "data":  # computed buffers are the only memory the queue holds: bound it in bytes
            n = memoryview(job[1]).nbytes
            with self._budget:
                self._budget.wait_for(lambda: self._queued == 0 or self._queued + n <= self._max_bytes)
                self._queued += n
            job = (*job, n)
        self._q.put(job)

    def _run(self) -> None:
        while (job := self._q.get()) is not None:
            try:
                if self._err is None:
                    if job[0] == "copy":
                        self._copy(job[1], job[2], job[3])
                    else:
                        self._write(job[1])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer
                self._err = exc
            finally:
                if job[0] == "data":
                    with self._budget:
                        self._queued -= job[2]
                        self._budget.notify_all()

    def _write(self, data) -> None:
        view = memoryview(data).cast("B")
        while view.nbytes:
            n = os.pwrite(self._out, view, self._pos)
            self._pos += n
            view = view[n:]

    def _copy(self, off: int, n: int, view) -> None:
        while n > 0 and self._kernel_copy:
            try:
                k = os.copy_file_range(self._in, self._out, n, off, self._pos)
            except OSError:
                self._kernel_copy = False
                break
            if k == 0:
                raise BakeError("source shard ended early; re-download it")
            off, n, self._pos = off + k, n - k, self._pos + k
            view = view[k:]
        if n > 0:
            self._write(view)

    def close(self) -> None:
        """Finish every queued job; re-raise the first write error."""
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()
        if self._err is not None:
            raise self._err

    def abandon(self) -> None:
        """Stop after the queued jobs without raising (the caller is already failing)."""
        if self._t.is_alive():
            self._err = self._err or BakeError("bake interrupted")
            self._q.put(None)
            self._t.join()


#: an editor turns the source bytes of one tensor into output byte chunks
Editor = Callable[[TensorInfo, memoryview], Iterable[bytes | memoryview]]


def rewrite_shard(src: ShardHeader, dst: Path, editors: dict[str, Editor],
                  on_bytes: Callable[[int], None] | None = None, src_sha: str | None = None) -> tuple[str, str]:
    """Write ``dst`` (atomically) as ``src`` with the tensors in ``editors`` recomputed.

    Returns (source sha256, output sha256); a known ``src_sha`` skips hashing the source.
    Untouched ranges are copied in the kernel; the hashes read the source through a memory map,
    so no byte is copied through Python.
    """
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    tick = on_bytes or (lambda n: None)
    src_hash = _NoHash(src_sha) if src_sha else StreamHash()
    out_hash = StreamHash() if editors else None
    try:
        with open(src.path, "rb") as fin, open(tmp, "wb", buffering=0) as fout:
            mm = mmap.mmap(fin.fileno(), 0, access=mmap.ACCESS_READ)
            writer = _Writer(fin, fout)
            release = _Releaser(mm)
            try:
                def copy(off: int, n: int) -> None:
                    end = off + n
                    while off < end:
                        k = min(COPY_CHUNK, end - off)
                        view = memoryview(mm)[off:off + k]
                        futs = [src_hash.update(view)]
                        if out_hash is not None:
                            futs.append(out_hash.update(view))
                        writer.put(("copy", off, k, view))
                        release.add(off, k, futs)
                        del view
                        off += k
                        tick(k)

                copy(0, src.header_len)
                pending_from = pending = None
                for info in src.tensors:
                    edit = editors.get(info.key)
                    if edit is None:
                        if pending_from is None:
                            pending_from, pending = info.start, 0
                        pending += info.nbytes
                        continue
                    if pending_from is not None:
                        copy(pending_from, pending)
                        pending_from = None
                    view = memoryview(mm)[info.start:info.end]
                    futs = []
                    for a in range(0, info.nbytes, COPY_CHUNK):
                        piece = view[a:a + COPY_CHUNK]
                        release.add(info.start + a, piece.nbytes, [src_hash.update(piece)])
                    del piece
                    written = 0
                    for chunk in edit(info, view):
                        futs.append(out_hash.update(chunk))
                        writer.put(("data", chunk))
                        written += memoryview(chunk).nbytes
                    release.add(info.start, info.nbytes, futs)
                    del view
                    if written != info.nbytes:
                        raise BakeError(f"internal: editor for {info.key} wrote {written} of {info.nbytes} bytes")
                    tick(info.nbytes)
                if pending_from is not None:
                    copy(pending_from, pending)
                writer.close()
                digests = (src_hash.hexdigest(), out_hash.hexdigest() if out_hash is not None else None)
            finally:
                writer.abandon()
                release.drain()
                src_hash.close()
                if out_hash is not None:
                    out_hash.close()
                with contextlib.suppress(BufferError):  # a failed edit may still hold a view
                    mm.close()
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digests[0], digests[1] or digests[0]


class _Releaser:
    """Drops mapped source pages from this process once their hashes are done (keeps RSS ~ a chunk)."""

    def __init__(self, mm) -> None:
        self._mm = mm
        self._q: deque[tuple[int, int, list[Future]]] = deque()
        self._page = mmap.PAGESIZE
        self._ok = hasattr(mmap, "MADV_DONTNEED")

    def add(self, off: int, n: int, futs: list[Future]) -> None:
        self._q.append((off, n, futs))
        while self._q and all(f.done() for f in self._q[0][2]):
            self._drop(*self._q.popleft()[:2])

    def _drop(self, off: int, n: int) -> None:
        a = off - off % self._page
        if self._ok and n:
            self._mm.madvise(mmap.MADV_DONTNEED, a, off + n - a)

    def drain(self) -> None:
        while self._q:
            off, n, futs = self._q.popleft()
            for f in futs:
                f.exception()
            self._drop(off, n)


def copy_file_atomic(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` via a temp file + os.replace; returns the sha256 of the content."""
    h = hashlib.sha256()
    with atomic_path(dst) as tmp, open(src, "rb") as fin, open(tmp, "wb") as fout:
        while chunk := fin.read(COPY_CHUNK):
            h.update(chunk)
            fout.write(chunk)
    return h.hexdigest()


