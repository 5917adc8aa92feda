"""zstd compression of one chunk, kept only when it pays (the one `zstandard` module).

`ChunkCompressor.compress` returns the compressed bytes only if they save at least
`min_saving` of the chunk; otherwise None and the chunk is stored as it is. A cheap
test comes first: three 4 KiB samples (start, middle, end) are compressed together,
and if they save less than half of `min_saving` the chunk is taken as incompressible
(media, archives, encrypted data) without compressing the rest, so such chunks cost
about 0.1 ms per MiB. Level 1 and a 5 % threshold were chosen by measurement
(`docs/storage-cost.md`): higher levels saved about 1 % more on source code at twice
the CPU, and thresholds from 2 to 10 % stored the same bytes.

zstd compressors and decompressors are not safe to share between threads: a call
borrows one from a small free list (`_Contexts`) and hands it back. Not one per thread:
a worker has over a thousand request threads (long polls get their own) and its
thread pool hands requests to them in turn, so per-thread compressors (1.3 MiB each
once used) took each worker of a soak from 111 to over 400 MiB in two minutes. Frames
carry their content size; `decompress` refuses a frame that does not yield exactly the
expected size (`CorruptObject`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import zstandard

LEVEL = 1
MIN_SAVING = 0.05
SAMPLE = 4096
_SMALL = 3 * SAMPLE  # chunks up to this size are tried whole
KEEP = 8  # idle contexts kept per kind: more than the compressions a worker runs at once

T = TypeVar("T")


class CorruptObject(ValueError):
    """The bytes are not a zstd frame of the expected size."""


class ChunkCompressor:
    """Compresses chunks with zstd when that saves at least `min_saving`; thread-safe."""

    def __init__(self, level: int = LEVEL, min_saving: float = MIN_SAVING) -> None:
        self.level = level
        self.min_saving = min_saving
        self._compressors = _Contexts(lambda: zstandard.ZstdCompressor(level=level))
        self._decompressors = _Contexts(zstandard.ZstdDecompressor)

    def compress(self, data: memoryview | bytes) -> bytes | None:
        """The zstd frame of `data`, or None when compressing does not pay."""
        size = len(data)
        if size == 0:
            return None
        with self._compressors.borrowed() as compressor:
            if size > _SMALL and not self._worth_trying(compressor, data):
                return None
            frame = compressor.compress(data)
        return frame if len(frame) <= size * (1 - self.min_saving) else None

    def decompress(self, frame: bytes, size: int) -> bytes:
        """The `size` bytes `frame` holds; `CorruptObject` if it holds anything else."""
        try:
            with self._decompressors.borrowed() as decompressor:
                data = decompressor.decompress(frame, max_output_size=size)
        except zstandard.ZstdError as e:
            raise CorruptObject(f"not a zstd frame: {e}") from e
        if len(data) != size:
            raise CorruptObject(f"the frame holds {len(data)} bytes, not {size}")
        return data

    def _worth_trying(self, compressor: zstandard.ZstdCompressor, data: memoryview | bytes) -> bool:
        middle = (len(data) - SAMPLE) // 2
        sample = b"".join(
            (data[:SAMPLE], data[middle : middle + SAMPLE], data[len(data) - SAMPLE :])
        )
        return len(compressor.compress(sample)) <= len(sample) * (1 - self.min_saving / 2)


class _Contexts(Generic[T]):
    """zstd contexts lent to one thread at a time: a free list of at most `KEEP`,
    a new context when it is empty; thread-safe."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self.made = 0  # contexts created so far
        self._free: list[T] = []
        self._lock = threading.Lock()

    @contextmanager
    def borrowed(self) -> Iterator[T]:
        with self._lock:
            context = self._free.pop() if self._free else None
        if context is None:
            context = self._make()
            with self._lock:
                self.made += 1
        try:
            yield context
        finally:
            with self._lock:
                if len(self._free) < KEEP:
                    self._free.append(context)
