"""Whole-content checksums: the SHA-1, MD5 and SHA-256 of a file's bytes that clients
verify (`docs/checksums.md`).

They are not the content's `digest` (its ETag), which is derived from the chunk hashes
(`providers.filestore.content_digest`) and so means nothing to a client that hashes the
file itself. `Hasher` takes the bytes in order, as they are written (the upload
pipeline feeds it; nothing reads a file twice to checksum it) and gives the stored
`Checksums`, plus any `extra` algorithm a client asked to be verified (SHA-512 of an
RFC 9530 `Content-Digest`) which is computed for that write only and never stored.
`verify` compares what a client announced with what was computed.

Algorithm names are hashlib's (`sha1`, `md5`, `sha256`, `sha512`); digests are
lowercase hex everywhere in the engine (the doors convert to base64 where a protocol
wants it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from providers.errors import ChecksumMismatch

STORED = ("sha1", "md5", "sha256")  # kept with every content
VERIFIABLE = frozenset({*STORED, "sha512"})  # what an upload can be checked against


@dataclass(frozen=True)
class Checksums:
    """A content's stored checksums, lowercase hex."""

    sha1: str
    md5: str
    sha256: str

    @property
    def oc_value(self) -> str:
        """The ownCloud spelling (`oc:checksum`, read by rclone and the desktop clients,
        which split it at spaces): `SHA1:<hex> MD5:<hex> SHA256:<hex>`."""
        return f"SHA1:{self.sha1} MD5:{self.md5} SHA256:{self.sha256}"

    def get(self, algorithm: str) -> str | None:
        """The hex digest of `algorithm` (a hashlib name), None if not stored."""
        return {"sha1": self.sha1, "md5": self.md5, "sha256": self.sha256}.get(algorithm)


class Hasher:
    """The stored algorithms, plus `extra` ones (of `VERIFIABLE`), over bytes fed in
    order. Not thread-safe: one writer feeds it."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        names = [*STORED, *(a for a in sorted(set(extra)) if a in VERIFIABLE and a not in STORED)]
        # MD5 is a checksum here, not a security measure (FIPS builds refuse it otherwise)
        self._hashes = [hashlib.new(name, usedforsecurity=False) for name in names]
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        """Feed the next bytes (hashlib releases the GIL for blocks over 2 KiB, so the
        pool's threads go on meanwhile)."""
        for h in self._hashes:
            h.update(data)
        self.size += len(data)

    def hexdigests(self) -> dict[str, str]:
        """Every algorithm's digest of the bytes fed so far."""
        return {h.name: h.hexdigest() for h in self._hashes}

    def checksums(self) -> Checksums:
        found = self.hexdigests()
        return Checksums(sha1=found["sha1"], md5=found["md5"], sha256=found["sha256"])


def checksums_of(blocks: Iterable[bytes | memoryview]) -> Checksums:
    """The checksums of the bytes `blocks` make (a content read back from its chunks)."""
    hasher = Hasher()
    for block in blocks:
        hasher.update(block)
    return hasher.checksums()


def verify(expected: Mapping[str, str], computed: Mapping[str, str]) -> None:
    """`ChecksumMismatch` unless every algorithm in `expected` (hashlib name -> hex)
    that was `computed` has the same digest; algorithms not computed are skipped (the
    caller asked only for `VERIFIABLE` ones, so that means unknown)."""
    for algorithm, value in sorted(expected.items()):
        actual = computed.get(algorithm)
        if actual is not None and actual != value.lower():
            raise ChecksumMismatch(
                f"{algorithm.upper()} checksum mismatch: the body's is {actual}, "
                f"the request announced {value.lower()}"
            )
