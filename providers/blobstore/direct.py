"""The direct-transfers seam: clients move chunk bytes to and from the object store
themselves, with short-lived signed URLs, instead of through davserver.

Contract (checked by `tests/contract/test_direct_transfers.py` against a real S3):

- `presign_put(key, size, sha256, token, ttl)` returns `(url, headers)`: a PUT of
  exactly `size` bytes whose SHA-256 is `sha256` (hex) to object `key`, valid for
  `ttl` seconds. The client sends the body with exactly `headers` (among them
  `Content-Length`) and no other credential. The store itself refuses the request
  if the body is other bytes (their checksum is signed), another length, a header
  differs, or the URL expired; nothing is stored then. A stored object carries
  `token`, which `object_token` reads back.
- `presign_get(key, ttl)` returns a URL that GETs object `key` for `ttl` seconds
  without credentials; its answer carries `Cache-Control: public, max-age=31536000,
  immutable` (`IMMUTABLE`: the object is a chunk, it never changes).
- `object_token(key)` returns `(size, token)` of the stored object (token None if it
  carries none), or None if there is no object. `Unavailable` when the store cannot
  be reached.

A URL is only as private as the channel that carries it: it is handed out over the
authenticated API, to a caller entitled to the block.
"""

from __future__ import annotations

from typing import Protocol

IMMUTABLE = "public, max-age=31536000, immutable"
STAGE_META = "davserver-stage"  # user metadata naming the stage token of a direct PUT


class DirectTransfers(Protocol):
    """See the module contract."""

    def presign_put(
        self, key: str, size: int, sha256: str, token: str, ttl: int
    ) -> tuple[str, dict[str, str]]: ...

    def presign_get(self, key: str, ttl: int) -> str: ...

    def object_token(self, key: str) -> tuple[int, str | None] | None: ...
