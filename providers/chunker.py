"""The chunker seam: cut a byte stream into content-defined chunks.

Contract: `split_reader(reader)` pulls the stream from `reader.readinto(buffer)` (which
returns how many bytes it placed, 0 at the end, and may raise: the error propagates)
and yields chunks whose concatenation is the stream. `split(blocks)` does the same for
an iterable of byte blocks of any sizes. Each chunk is a read-only `memoryview` into
the chunker's own buffer, valid only until the generator is resumed: it is released
then (any later use raises `ValueError`), so a caller that keeps a chunk copies it
(`bytes(chunk)`, or into its own buffer). Copying once, where the caller wants the
bytes, is cheaper than the chunker handing out copies the caller copies again.
Cut points depend only on the bytes, never on how they arrived, so identical content
always yields identical chunks. Every chunk but the last is between `min_size` and
`max_size` bytes; an empty stream yields nothing. Splitting is pull-based: it reads
only as fast as the caller takes chunks, with no thread or queue. `params()` describes
the algorithm so the catalog can record it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Protocol

from pyfastcdc import FastCDC


class Reader(Protocol):
    """A byte stream read into the caller's buffer (`io.RawIOBase.readinto`)."""

    def readinto(self, buffer: memoryview, /) -> int: ...


class Chunker(ABC):
    """A chunking algorithm with fixed parameters."""

    min_size: int
    max_size: int

    @abstractmethod
    def split_reader(self, reader: Reader) -> Iterator[memoryview]:
        """Yield the chunks of the stream `reader` gives (see the module contract)."""

    def split(self, blocks: Iterable[bytes]) -> Iterator[memoryview]:
        """Yield the chunks of the stream made of `blocks` (see the module contract)."""
        return self.split_reader(BlockReader(blocks))

    @abstractmethod
    def params(self) -> str:
        """A stable description of the algorithm and its parameters."""


class BlockReader:
    """A `Reader` over an iterable of byte blocks."""

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


def _lend(view: memoryview) -> Iterator[memoryview]:
    """Yield `view` read-only, then release it (the module contract's chunk lifetime)."""
    chunk = view.toreadonly()
    yield chunk
    chunk.release()


def _fill(reader: Reader, buffer: memoryview) -> int:
    """Read from `reader` until `buffer` is full or the stream ends; return the count."""
    filled = 0
    while filled < len(buffer) and (received := reader.readinto(buffer[filled:])):
        filled += received
    return filled


class FastCDCChunker(Chunker):
    """FastCDC 2020 (pyfastcdc, native code) with the given size bounds.

    The stream is read into a window of `WINDOW_CHUNKS` max-size chunks and cut there
    with pyfastcdc's buffer chunker; a cut is taken only while at least `max_size`
    bytes follow it in the window (or the stream has ended), since FastCDC looks that
    far ahead, so the cuts are those of the whole stream. The tail left when the
    window runs short moves to its front once per window; pyfastcdc's own stream
    chunker moved about as many bytes as it cut.
    """

    WINDOW_CHUNKS = 4

    def __init__(self, min_size: int, avg_size: int, max_size: int) -> None:
        if not 64 <= min_size <= avg_size <= max_size:
            raise ValueError("chunk sizes must satisfy 64 <= min <= avg <= max")
        self.min_size, self.avg_size, self.max_size = min_size, avg_size, max_size
        # pyfastcdc's mean chunk is its avg_size + min_size (cut-point skipping), so pass
        # the difference to get the mean we were asked for.
        self._cdc_args = (max(256, avg_size - min_size), min_size, max_size)

    def split_reader(self, reader: Reader) -> Iterator[memoryview]:
        head = memoryview(bytearray(self.min_size))
        filled = _fill(reader, head)
        if filled < self.min_size:
            # FastCDC never cuts below min_size, so a shorter stream is one chunk; this
            # skips setting up the window for every small file.
            if filled:
                yield from _lend(head[:filled])
            return
        window = memoryview(bytearray(self.WINDOW_CHUNKS * self.max_size))
        window[:filled] = head
        avg, low, high = self._cdc_args
        # One FastCDC per stream: the object is not safe to share between threads.
        cdc = FastCDC(avg, min_size=low, max_size=high)
        while True:
            filled += _fill(reader, window[filled:])
            ended = filled < len(window)
            start = 0
            cuts = cdc.cut_buf(window[:filled])
            # a cut with fewer than max_size bytes after its start could depend on bytes
            # not read yet, so it is not even computed until the window is refilled
            while ended or filled - start >= self.max_size:
                chunk = next(cuts, None)
                if chunk is None:
                    break
                yield from _lend(chunk.data)
                start += chunk.length
            if ended:
                return
            window[: filled - start] = window[start:filled]
            filled -= start

    def params(self) -> str:
        return f"fastcdc2020:min={self.min_size},avg={self.avg_size},max={self.max_size}"


class FixedChunker(Chunker):
    """Fixed-size cutting: cheap, but an insert shifts every later chunk (tests, baselines)."""

    def __init__(self, size: int) -> None:
        self.min_size = self.max_size = size

    def split_reader(self, reader: Reader) -> Iterator[memoryview]:
        buffer = memoryview(bytearray(self.max_size))
        while True:
            filled = _fill(reader, buffer)
            if filled:
                yield from _lend(buffer[:filled])
            if filled < self.max_size:
                return

    def params(self) -> str:
        return f"fixed:size={self.max_size}"
