"""The BlobStore seam: where chunk bytes live.

Contract (every implementation, checked by `tests/contract/test_blobstore.py`):

- Keys are strings of `[A-Za-z0-9/_.-]`, no leading '/', no '..' segment, at most 512
  characters; `validate_key` is the one check and every method applies it.
- `put(key, data)` stores `data` atomically: a concurrent or later `get` sees either
  nothing or all of it, never a prefix. Putting the same bytes again is harmless
  (chunks are content-addressed, so a repeat put is idempotent). When it returns the
  object is readable; it is durable (as far as the backend can promise) once a later
  `sync()` has returned. Stores whose puts are durable at once (S3) need no `sync`.
- `sync()` makes every object put before the call durable. Writers call it once per
  upload, before committing the manifest that names the objects (DESIGN invariant 2),
  so one flush covers all of an upload's chunks instead of two fsyncs per chunk.
- `get(key)` returns the whole object, or raises `BlobNotFound`.
- `stat(key)` returns `BlobInfo` or None; `exists(key)` is `stat(key) is not None`.
- `delete(key)` removes the object; deleting a missing key is a no-op. Only garbage
  collection calls it.
- `iter_keys(prefix)` yields `BlobInfo` for every key starting with `prefix`, in no
  particular order; it tolerates concurrent puts and deletes.
- Any failure to reach the backend raises `Unavailable` (chained from the library's
  error); a missing object raises `BlobNotFound`. No other exception escapes.
- `probe(prefix)` proves the store is reachable and writable now: it puts, reads back
  and deletes one small object under `<prefix>probe/` (never a chunk key, so GC and
  fsck ignore it), or raises `Unavailable`.
- Implementations are safe to call from many threads at once.
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from providers.errors import InvalidName, Unavailable

PROBE_DIR = "probe/"  # under the store's prefix: start-up write checks, deleted at once

_KEY_RE = re.compile(r"[A-Za-z0-9/_.\-]{1,512}")


@dataclass(frozen=True)
class BlobInfo:
    """What a blob store knows about one object: its key, size and last write time."""

    key: str
    size: int
    mtime: float  # seconds since the epoch


def validate_key(key: str) -> str:
    """Return `key` if it is a legal blob key, else raise `InvalidName`."""
    if (
        not _KEY_RE.fullmatch(key)
        or key.startswith("/")
        or key.endswith("/")
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise InvalidName(f"invalid blob key: {key!r}")
    return key


def chunk_key(chunk_hash: str, prefix: str = "") -> str:
    """Object key of a chunk: `<prefix>chunks/<2 hex>/<2 hex>/<64 hex>`."""
    if not re.fullmatch(r"[0-9a-f]{64}", chunk_hash):
        raise InvalidName(f"not a SHA-256 hex digest: {chunk_hash!r}")
    return f"{prefix}chunks/{chunk_hash[:2]}/{chunk_hash[2:4]}/{chunk_hash}"


class BlobStore(ABC):
    """Byte storage for immutable, content-addressed objects (see the module contract)."""

    @abstractmethod
    def put(self, key: str, data: bytes | memoryview) -> None:
        """Store `data` under `key` atomically; durable after the next `sync()`. The
        caller may reuse `data`'s buffer once this returns, so nothing may keep it."""

    def sync(self) -> None:  # noqa: B027 (optional hook: S3 and memory puts need none)
        """Make every object put before this call durable."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the object's bytes; raise `BlobNotFound` if there is none."""

    @abstractmethod
    def stat(self, key: str) -> BlobInfo | None:
        """Return the object's size and mtime, or None if it does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Yield every object whose key starts with `prefix`."""

    def exists(self, key: str) -> bool:
        """True if an object is stored under `key`."""
        return self.stat(key) is not None

    def check(self) -> None:  # noqa: B027 (optional hook: most stores need no check)
        """Raise `Unavailable` if the backend cannot be reached now (used by /readyz)."""

    def probe(self, prefix: str = "") -> None:
        """Put, read back and delete `<prefix>probe/<random>`; `Unavailable` if any
        step fails or the bytes differ (the store cannot be written now)."""
        key = validate_key(f"{prefix}{PROBE_DIR}{secrets.token_hex(8)}")
        data = secrets.token_bytes(32)
        self.put(key, data)
        try:
            if self.get(key) != data:
                raise Unavailable("the blob store returned other bytes than were written")
        finally:
            self.delete(key)

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections and threads; the store is unusable afterwards."""

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
