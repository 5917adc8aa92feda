"""Reusable page-aligned buffers for the write path.

Contract: `BufferPool.acquire()` returns a writable `memoryview` of exactly `size`
bytes that starts on a page boundary; `release(buffer)` hands it back once nothing
reads it any more (the caller's promise: the pool may give it out again at once).
The pool keeps up to `keep` released buffers and drops the rest; it is thread-safe.

Why: a page-aligned buffer can be written to a file with `O_DIRECT` straight from
user memory (see `blobstore.localdir`), and reused pages cost nothing, while fresh ones
are faulted in (and on virtual machines that hand free memory back to the host, fetched
back) every time.
"""

from __future__ import annotations

import mmap
import threading

PAGE = mmap.PAGESIZE  # what a buffer's start is aligned to


class BufferPool:
    """Page-aligned buffers of `size` bytes, recycled (see the module contract)."""

    def __init__(self, size: int, keep: int) -> None:
        if size <= 0 or keep < 0:
            raise ValueError("buffer size must be positive and keep not negative")
        self.size = size
        self._keep = keep
        self._free: list[memoryview] = []
        self._lent = 0
        self._lock = threading.Lock()

    @property
    def idle(self) -> int:
        """How many released buffers the pool holds for reuse."""
        with self._lock:
            return len(self._free)

    @property
    def lent(self) -> int:
        """How many buffers are out: acquired and not released yet."""
        with self._lock:
            return self._lent

    def acquire(self) -> memoryview:
        """A buffer of `size` bytes (its contents are whatever was left in it)."""
        with self._lock:
            self._lent += 1
            if self._free:
                return self._free.pop()
        # an anonymous map starts on a page boundary; the view keeps the map alive
        return memoryview(mmap.mmap(-1, self.size))

    def release(self, buffer: memoryview) -> None:
        """Take `buffer` back (it must come from `acquire` and be unused now)."""
        with self._lock:
            self._lent -= 1
            if len(self._free) < self._keep:
                self._free.append(buffer)
