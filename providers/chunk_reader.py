"""`ChunkReader`: a seekable raw stream over a content's extents, read through the
file store's codec layer.

Seeking bisects the offsets; reading fetches whole chunks with a small read-ahead in
parallel (the file store's pool). Each chunk's `Locator` says how its object is
stored (invariant 25): the reader looks them up a page at a time as it reads on, the
page always covering the read-ahead window. Every chunk is verified by the vault
before a byte of it is returned (invariant 24); a `CorruptChunk` is reported once,
by the thread that needed the chunk (`FileStore.report_corrupt`), and goes on to the
caller.
"""

from __future__ import annotations

import bisect
import io
from concurrent.futures import Future
from typing import TYPE_CHECKING

from providers.catalog import ExtentRecord, Locator
from providers.catalog.records import RAW_LOCATOR
from providers.errors import CorruptChunk

if TYPE_CHECKING:  # the file store creates readers; a reader calls back into it
    from providers.filestore import FileStore

LOCATOR_PAGE = 256  # a reader looks up this many chunks' locators at once


class ChunkReader(io.RawIOBase):
    """A seekable, read-only stream over a content's extents (see the module docstring)."""

    def __init__(
        self,
        store: FileStore,
        extents: list[ExtentRecord],
        size: int,
        label: str = "",
        locators: dict[str, Locator] | None = None,
    ) -> None:
        super().__init__()
        self._store = store
        self._label = label
        self._extents = extents
        self._offsets = [e.offset for e in extents]
        self._size = size
        self._pos = 0
        self._fetches: dict[int, Future[bytes]] = {}
        # looked up a page of extents at a time, unless the caller knew them all
        self._locators: dict[str, Locator] = dict(locators or {})

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes from the current position (at most to the chunk's end)."""
        if self._pos >= self._size or size == 0:
            return b""
        index = bisect.bisect_right(self._offsets, self._pos) - 1
        extent = self._extents[index]
        data = self._chunk(index)
        start = self._pos - extent.offset
        end = extent.size if size < 0 else min(extent.size, start + size)
        self._pos += end - start
        return data[start:end]

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        parts = []
        while data := self.read():
            parts.append(data)
        return b"".join(parts)

    def close(self) -> None:
        for future in self._fetches.values():
            future.cancel()
        self._fetches.clear()
        super().close()

    def _chunk(self, index: int) -> bytes:
        """Chunk `index`'s bytes; start fetching the next `read_ahead` ones meanwhile."""
        window = range(index, min(index + 1 + self._store.read_ahead, len(self._extents)))
        # The page covers the read-ahead too: a chunk fetched ahead, past the end of
        # the last page, was read as raw (its object not found, the GET cut).
        if any(self._extents[i].chunk_hash not in self._locators for i in window):
            page = self._extents[index : index + max(LOCATOR_PAGE, len(window))]
            found = self._store.catalog.locators.get(e.chunk_hash for e in page)
            self._locators.update({e.chunk_hash: RAW_LOCATOR for e in page} | found)
        for ahead in window:
            if ahead not in self._fetches:
                extent = self._extents[ahead]
                locator = self._locators[extent.chunk_hash]
                self._fetches[ahead] = self._store.submit(
                    self._store.load_chunk, extent.chunk_hash, extent.size, locator
                )
        for stale in [i for i in self._fetches if i < index]:
            self._fetches.pop(stale).cancel()
        try:
            data = self._fetches[index].result()
        except CorruptChunk as e:  # a wrong size too: the vault checks it
            self._store.report_corrupt(e, self._label)
            raise
        return data
