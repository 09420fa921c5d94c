"""One pass from a source file to an output file: copied ranges, computed bytes, both sha256s.

Rules, in order:
1. The source is read once, front to back, through one memory map. Every source byte (copied,
   edited or skipped, such as an old header) is fed to the source hash exactly once, in order,
   unless the source sha256 is already known (an HF cache blob name, the hash cache).
2. The output is produced in order by a writer thread: untouched ranges are copied in the kernel
   (``copy_file_range``) from the source file, computed bytes are written from their buffers.
   Every output byte is fed to the output hash exactly once, from the same mapped pages or buffers
   (no file is read back).
3. Each hash runs on its own worker thread (hashlib releases the GIL), so the two hashes, the
   kernel copy and the caller's math overlap on different cores. Queues are bounded in bytes: a
   hash may lag the caller by :data:`HASH_LOOKAHEAD` bytes of mapped source (no copy is made) and
   :data:`BUFFER_LOOKAHEAD` bytes of computed buffers (memory held until hashed), so
   the caller reaches the next edit while the hashes of the bytes before it are still running. A
   hash thread's error is raised in the caller at its next wait (at the latest by ``finish``).
4. Mapped source pages are dropped (``MADV_DONTNEED``) once their hashes are done: RSS stays at a
   few chunks, not the file. Each range is announced (``MADV_WILLNEED``) when it is queued, so the
   kernel reads it ahead of the hash, copy or math that needs it. The map is not marked
   sequential: that would leave the source's pages unreferenced, first to be evicted, and the
   next bake of the same source (a search, a control) would read them from disk again.
5. The output goes to a temp file beside the destination, is fsynced and renamed at the end; an
   error or Ctrl-C leaves no temp file and no worker thread behind. ``finish_in(executor)`` runs
   that tail (the writer and hashes catching up, fsync, rename) on another thread, so the caller
   can start its next file meanwhile.
6. Time per stage (hash CPU, writer busy time, the caller's compute, fsync, and the caller's
   waits on the hashes and the writer) is added to a :class:`StreamTiming` under one lock, so a
   slow bake shows where its time went.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

from abliterate.bake.errors import BakeError

COPY_CHUNK = 32 << 20
#: how far (bytes) a hash may lag the caller in mapped source (not resident until hashed) ...
HASH_LOOKAHEAD = 512 << 20
#: ... and in computed buffers (held in memory until hashed: keep within bake_math's output pool)
BUFFER_LOOKAHEAD = 256 << 20
_TIMING_LOCK = threading.Lock()


@dataclass
class StreamTiming:
    """Seconds spent per stage over one or more streamed files (CPU seconds for hashing)."""

    hash_cpu_s: float = 0.0  # sha256, summed over both hash threads
    write_s: float = 0.0  # writer thread busy: kernel copies and writes of computed bytes
    compute_s: float = 0.0  # the caller's edits (dequantize, math, encode): wall time ...
    compute_cpu_s: float = 0.0  # ... and the CPU time of the thread running them
    math_threads: int = 0  # torch threads the edits ran with
    fsync_s: float = 0.0
    wait_hash_s: float = 0.0  # the caller blocked on a hash more than HASH_LOOKAHEAD behind
    wait_write_s: float = 0.0  # the caller blocked on a full writer queue
    hashed_bytes: int = 0
    copied_bytes: int = 0
    computed_bytes: int = 0

    def add(self, **amounts: float) -> None:
        """Add to several fields at once (threads of several streams share one StreamTiming)."""
        with _TIMING_LOCK:
            for k, v in amounts.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict:
        """Rounded, JSON-friendly."""
        return {f.name: (round(v, 3) if isinstance(v := getattr(self, f.name), float) else v) for f in fields(self)}


class StreamHash:
    """sha256 fed from a worker thread (hashlib releases the GIL), so hashing overlaps I/O and math."""

    def __init__(self, timing: StreamTiming | None = None, lookahead: int | None = None) -> None:
        self._h = hashlib.sha256()
        self._ex = ThreadPoolExecutor(1, thread_name_prefix="bake-sha256")
        self._pending: deque[tuple[Future, int, bool]] = deque()
        self._pending_bytes = [0, 0]  # mapped, held
        self._max = [HASH_LOOKAHEAD if lookahead is None else lookahead,
                     BUFFER_LOOKAHEAD if lookahead is None else lookahead]
        self._timing = timing or StreamTiming()

    def _update(self, data, n: int) -> None:
        t = time.thread_time()
        self._h.update(data)
        self._timing.add(hash_cpu_s=time.thread_time() - t, hashed_bytes=n)

    def update(self, data, wait: bool = True, held: bool = False) -> Future:
        """Queue ``data`` (kept alive until hashed); blocks while more than the lookahead is pending.

        ``held``: ``data`` is a computed buffer (memory), not a range of the source's map.
        ``wait=False`` queues without blocking (an edited tensor's source: the hash catches up
        while the math runs instead of holding the math back). A failed update raises here.
        """
        n = memoryview(data).nbytes
        fut = self._ex.submit(self._update, data, n)
        self._pending.append((fut, n, held))
        self._pending_bytes[held] += n
        t = time.perf_counter()
        waited = False
        while self._pending and (self._pending[0][0].done() or (wait and self._over())):
            waited = waited or not self._pending[0][0].done()
            done, k, was_held = self._pending.popleft()
            self._pending_bytes[was_held] -= k
            done.result()
        if waited:
            self._timing.add(wait_hash_s=time.perf_counter() - t)
        return fut

    def _over(self) -> bool:
        return self._pending_bytes[0] > self._max[0] or self._pending_bytes[1] > self._max[1]

    def hexdigest(self) -> str:
        while self._pending:
            self._pending.popleft()[0].result()
        self._pending_bytes = [0, 0]
        return self._h.hexdigest()

    def close(self) -> None:
        """Stop the worker (pending updates are dropped if the caller is failing)."""
        self._ex.shutdown(wait=True, cancel_futures=True)


class _KnownHash:
    """Stands in for a StreamHash when the digest is already known."""

    def __init__(self, digest: str) -> None:
        self._digest = digest
        self._done: Future = Future()
        self._done.set_result(None)

    def update(self, data, wait: bool = True, held: bool = False) -> Future:
        return self._done

    def hexdigest(self) -> str:
        return self._digest

    def close(self) -> None:
        pass


class _Writer:
    """Writes the output file in order from a bounded queue on its own thread.

    Jobs are ("copy", src_offset, n, view): an in-kernel copy from the source file
    (``copy_file_range``, falling back to writing ``view``), or ("data", buffer): computed bytes.
    Copy jobs hold no memory (a range of the map) and computed bytes are bounded by ``max_bytes``,
    so the queue is deep: the caller queues a whole untouched run and goes on to the next edit
    while the kernel copies.
    """

    def __init__(self, fin, fout, timing: StreamTiming, depth: int = 64, max_bytes: int = 256 << 20) -> None:
        self._in, self._out = fin.fileno(), fout.fileno()
        self._q: queue.Queue = queue.Queue(depth)
        self._budget = threading.Condition()
        self._queued, self._max_bytes = 0, max_bytes
        self._pos = 0
        self._err: BaseException | None = None
        self._timing = timing
        self._kernel_copy = hasattr(os, "copy_file_range")
        self._t = threading.Thread(target=self._run, name="bake-writer", daemon=True)
        self._t.start()

    def put(self, job: tuple) -> None:
        if self._err is not None:
            raise self._err
        t = time.perf_counter()
        if job[0] == "data":  # computed buffers are the only memory the queue holds: bound it in bytes
            n = memoryview(job[1]).nbytes
            with self._budget:
                self._budget.wait_for(lambda: self._queued == 0 or self._queued + n <= self._max_bytes)
                self._queued += n
            job = (*job, n)
        self._q.put(job)
        self._timing.add(wait_write_s=time.perf_counter() - t)

    def _run(self) -> None:
        while (job := self._q.get()) is not None:
            try:
                if self._err is None:
                    t = time.perf_counter()
                    if job[0] == "copy":
                        self._copy(job[1], job[2], job[3])
                        self._timing.add(copied_bytes=job[2], write_s=time.perf_counter() - t)
                    else:
                        self._write(job[1])
                        self._timing.add(computed_bytes=job[2], write_s=time.perf_counter() - t)
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
                raise BakeError("source file ended early; re-download it")
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


class OutputStream:
    """Write ``dst`` from pieces of ``src`` and computed bytes in one pass; see the module rules.

    Use as a context manager; call :meth:`finish` for the (source, output) sha256 digests. Source
    ranges must be taken in increasing order; bytes between them count for the source hash only.
    ``hash_output=False`` (an untouched copy) reports the source digest for the output too.
    """

    def __init__(self, src: Path, dst: Path, *, src_sha: str | None = None, hash_output: bool = True,
                 on_bytes: Callable[[int], None] | None = None, timing: StreamTiming | None = None) -> None:
        self.src, self.dst = Path(src), Path(dst)
        self.timing = timing if timing is not None else StreamTiming()
        self._src_sha, self._hash_output = src_sha, hash_output
        self._tick = on_bytes or (lambda n: None)
        self._tmp = self.dst.with_name(f".{self.dst.name}.tmp-{os.getpid()}")
        self._stack = contextlib.ExitStack()
        self._pos = 0  # next source byte not yet fed to the source hash
        self._held: tuple[int, int, list[Future]] | None = None  # the range an edit is reading
        self._finished = False
        self._detached = False  # finish_in handed the tail (and the cleanup) to another thread

    def __enter__(self) -> OutputStream:
        st = self._stack
        try:
            fin = st.enter_context(open(self.src, "rb"))
            self._size = os.fstat(fin.fileno()).st_size
            self._fout = st.enter_context(open(self._tmp, "wb", buffering=0))
            self._mm = mmap.mmap(fin.fileno(), 0, access=mmap.ACCESS_READ) if self._size else None
            self._src_hash = _KnownHash(self._src_sha) if self._src_sha else StreamHash(self.timing)
            self._out_hash = StreamHash(self.timing) if self._hash_output else None
            self._writer = _Writer(fin, self._fout, self.timing)
            self._release = _Releaser(self._mm) if self._mm is not None else None
        except BaseException:
            self._cleanup(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._detached:
            self._cleanup(failed=exc_type is not None or not self._finished)

    # -- pieces -----------------------------------------------------------------------------
    def _view(self, start: int, n: int) -> memoryview:
        if start < self._pos or start + n > self._size:
            raise BakeError(f"internal: source range {start}+{n} is out of order or past the end of {self.src}")
        return memoryview(self._mm)[start:start + n] if n else memoryview(b"")

    def _skip_to(self, start: int) -> None:
        """Feed the source bytes before ``start`` that nobody copies (an old header, padding)."""
        if start > self._pos:
            self._hash_source(self._pos, start - self._pos)

    def _hash_source(self, start: int, n: int, edit: bool = False) -> list[Future]:
        """Feed source bytes to the source hash; an edited range is neither waited on nor released here."""
        futs = []
        end = start + n
        while start < end:
            k = min(COPY_CHUNK, end - start)
            view = self._view(start, k)
            if not edit:
                self._prefetch(start, k)
            fut = self._src_hash.update(view, wait=not edit)
            if not edit:
                self._release.add(start, k, [fut])
            futs.append(fut)
            del view
            start += k
            self._tick(k)
        self._pos = end
        return futs

    def _release_held(self) -> None:
        """The caller moved on, so the last edited range is no longer read: its pages may go."""
        if self._held is not None:
            self._release.add(*self._held)
            self._held = None

    def copy(self, start: int, n: int) -> None:
        """Copy source bytes [start, start + n) verbatim to the output."""
        self._release_held()
        self._skip_to(start)
        end = start + n
        while start < end:
            k = min(COPY_CHUNK, end - start)
            view = self._view(start, k)
            self._prefetch(start, k)
            futs = [self._src_hash.update(view)]
            if self._out_hash is not None:
                futs.append(self._out_hash.update(view))
            self._writer.put(("copy", start, k, view))
            self._release.add(start, k, futs)
            del view
            start += k
            self._tick(k)
        self._pos = end

    def source(self, start: int, n: int) -> memoryview:
        """Source bytes [start, start + n) for an edit (read-only; counted for the source hash).

        Its pages stay mapped until the next call, while the edit reads them.
        """
        self._release_held()
        self._skip_to(start)
        view = self._view(start, n)
        if n:
            self._prefetch(start, n)
            self._held = (start, n, self._hash_source(start, n, edit=True))
        return view

    def _prefetch(self, start: int, n: int) -> None:
        """Have the kernel start reading a range ahead of its readers (an edit's: with a known source hash
        nothing else reads it before the math)."""
        a = start - start % mmap.PAGESIZE
        with contextlib.suppress(OSError, ValueError):
            self._mm.madvise(mmap.MADV_WILLNEED, a, start + n - a)

    def write(self, data) -> None:
        """Append computed bytes to the output (the buffer must not change until written)."""
        if self._out_hash is None:
            raise BakeError("internal: computed bytes in a stream opened with hash_output=False")
        self._out_hash.update(data, held=True)
        self._writer.put(("data", data))

    def write_all(self, chunks: Iterable) -> int:
        """Write every chunk an editor yields, timing the editor's own work; returns the bytes written."""
        written = 0
        it = iter(chunks)
        while True:
            t, c = time.perf_counter(), time.thread_time()
            chunk = next(it, None)
            self.timing.add(compute_s=time.perf_counter() - t, compute_cpu_s=time.thread_time() - c)
            if chunk is None:
                return written
            self.write(chunk)
            written += memoryview(chunk).nbytes

    def finish(self) -> tuple[str, str]:
        """Hash the rest of the source, flush, fsync and rename; returns (source, output) sha256."""
        self._release_held()
        self._skip_to(self._size)
        return self._complete()

    def finish_in(self, executor: Executor) -> Future:
        """:meth:`finish`, its tail (writer, hashes, fsync, rename) run by ``executor``: a Future of the digests.

        The stream then belongs to that tail, which cleans up after itself on failure too.
        """
        self._release_held()
        self._skip_to(self._size)
        fut = executor.submit(self._complete)
        self._detached = True
        return fut

    def _complete(self) -> tuple[str, str]:
        try:
            self._writer.close()
            src = self._src_hash.hexdigest()
            out = self._out_hash.hexdigest() if self._out_hash is not None else src
            t = time.perf_counter()
            os.fsync(self._fout.fileno())
            self.timing.add(fsync_s=time.perf_counter() - t)
            self._cleanup(failed=False)
            os.replace(self._tmp, self.dst)
        except BaseException:
            self._cleanup(failed=True)
            raise
        self._finished = True
        return src, out

    def _cleanup(self, failed: bool) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.abandon()
            self._writer = None
        release = getattr(self, "_release", None)
        if release is not None:
            if self._held is not None:
                release.add(*self._held)
                self._held = None
            release.drain()
            self._release = None
        for name in ("_src_hash", "_out_hash"):
            h = getattr(self, name, None)
            if h is not None:
                h.close()
                setattr(self, name, None)
        mm = getattr(self, "_mm", None)
        if mm is not None:
            with contextlib.suppress(BufferError):  # a failed edit may still hold a view
                mm.close()
            self._mm = None
        self._stack.close()
        if failed:
            self._tmp.unlink(missing_ok=True)
