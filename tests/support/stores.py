"""Blob stores for unit tests of one module (fakes: never the proof a feature works)."""

from __future__ import annotations

import time

from providers.blobstore.memory import MemoryBlobStore


class SlowBlobStore(MemoryBlobStore):
    """A MemoryBlobStore whose puts take `delay` seconds, so that an upload's batches
    overlap in the file store's pool (and checksum lanes queue up)."""

    def __init__(self, delay: float = 0.002) -> None:
        super().__init__()
        self.delay = delay

    def put(self, key: str, data: bytes | memoryview) -> None:
        time.sleep(self.delay)
        super().put(key, data)
