"""The chunker seam: cut a byte stream into content-defined chunks.

Contract: `split(blocks)` consumes an iterable of byte blocks of any sizes and yields
chunks (`bytes`, owned by the caller) whose concatenation equals the concatenation of
the blocks. Cut points depend only on the bytes, never on how they were split into
blocks, so identical content always yields identical chunks. Every chunk but the last
is between `min_size` and `max_size` bytes; an empty stream yields nothing. The
splitting is pull-based: it reads blocks only as fast as the caller takes chunks, so
it composes with WsgiDAV's `writelines(data_stream)` with no thread or queue.
`params()` describes the algorithm so the catalog can record it.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from pyfastcdc import FastCDC


class Chunker(ABC):
    """A chunking algorithm with fixed parameters."""

    min_size: int
    max_size: int

    @abstractmethod
    def split(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield the chunks of the stream made of `blocks` (see the module contract)."""

    @abstractmethod
    def params(self) -> str:
        """A stable description of the algorithm and its parameters."""


class BlockReader:
    """Adapts an iterable of blocks to the `readinto()` reader pyfastcdc pulls from."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._blocks = iter(blocks)
        self._current = memoryview(b"")

    def readinto(self, buffer: memoryview) -> int:
        filled = 0
        while filled < len(buffer):
            if not self._current:
                block = next(self._blocks, None)
                if block is None:
                    break
                self._current = memoryview(block)
                continue
            take = min(len(buffer) - filled, len(self._current))
            buffer[filled : filled + take] = self._current[:take]
            self._current = self._current[take:]
            filled += take
        return filled


def _take_at_least(blocks: Iterator[bytes], size: int) -> list[bytes]:
    """Blocks from the front of `blocks` until they hold `size` bytes or it ends."""
    taken: list[bytes] = []
    total = 0
    while total < size and (block := next(blocks, None)) is not None:
        taken.append(block)
        total += len(block)
    return taken


class FastCDCChunker(Chunker):
    """FastCDC 2020 (pyfastcdc, native code) with the given size bounds."""

    def __init__(self, min_size: int, avg_size: int, max_size: int) -> None:
        if not 64 <= min_size <= avg_size <= max_size:
            raise ValueError("chunk sizes must satisfy 64 <= min <= avg <= max")
        self.min_size, self.avg_size, self.max_size = min_size, avg_size, max_size
        # pyfastcdc's mean chunk is its avg_size + min_size (cut-point skipping), so pass
        # the difference to get the mean we were asked for.
        self._cdc_args = (max(256, avg_size - min_size), min_size, max_size)

    def split(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        iterator = iter(blocks)
        head = _take_at_least(iterator, self.min_size)
        if sum(len(block) for block in head) < self.min_size:
            # FastCDC never cuts below min_size, so a shorter stream is one chunk; this
            # skips setting up its buffers for every small file.
            if data := b"".join(head):
                yield data
            return
        avg, low, high = self._cdc_args
        # One FastCDC per stream: the object is not safe to share between threads.
        cdc = FastCDC(avg, min_size=low, max_size=high)
        for chunk in cdc.cut_stream(BlockReader(itertools.chain(head, iterator))):
            yield bytes(chunk.data)

    def params(self) -> str:
        return f"fastcdc2020:min={self.min_size},avg={self.avg_size},max={self.max_size}"


class FixedChunker(Chunker):
    """Fixed-size cutting: cheap, but an insert shifts every later chunk (tests, baselines)."""

    def __init__(self, size: int) -> None:
        self.min_size = self.max_size = size

    def split(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        pending = bytearray()
        for block in blocks:
            pending += block
            while len(pending) >= self.max_size:
                yield bytes(pending[: self.max_size])
                del pending[: self.max_size]
        if pending:
            yield bytes(pending)

    def params(self) -> str:
        return f"fixed:size={self.max_size}"
