"""An in-process `BlobStore` kept in a dict: for tests and throwaway servers.

Nothing survives the process. `mtime` is the wall-clock time of the last `put`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from providers.blobstore.base import BlobInfo, BlobStore, validate_key
from providers.errors import BlobNotFound


class MemoryBlobStore(BlobStore):
    """Objects held in memory under one lock; `put` replaces the whole value at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, float]] = {}

    def put(self, key: str, data: bytes | memoryview) -> None:
        """Store a copy of `data`; a reader sees the old value or the new one, never a mix."""
        validate_key(key)
        value = (bytes(data), time.time())
        with self._lock:
            self._objects[key] = value

    def get(self, key: str) -> bytes:
        """Return the stored bytes or raise `BlobNotFound`."""
        validate_key(key)
        with self._lock:
            entry = self._objects.get(key)
        if entry is None:
            raise BlobNotFound(key)
        return entry[0]

    def stat(self, key: str) -> BlobInfo | None:
        """Return size and put time, or None."""
        validate_key(key)
        with self._lock:
            entry = self._objects.get(key)
        return None if entry is None else BlobInfo(key, len(entry[0]), entry[1])

    def delete(self, key: str) -> None:
        """Forget the object; a missing key is ignored."""
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def iter_keys(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Yield a snapshot taken when iteration starts, so concurrent changes are harmless."""
        with self._lock:
            snapshot = [
                BlobInfo(key, len(data), mtime)
                for key, (data, mtime) in self._objects.items()
                if key.startswith(prefix)
            ]
        yield from snapshot
