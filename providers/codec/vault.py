"""The codec layer: what a chunk becomes at rest, between the file store and the blob store.

Contract (`ChunkVault`; checked on every blob store by `tests/contract/test_vault.py`):

- `put(hash, plaintext)` stores the chunk and returns its `Locator`: "raw" (the
  plaintext, under `chunks/ab/cd/<sha256>`, the only form before codecs existed and
  the one direct S3 transfers write), "zstd" (a zstd frame, under `<sha256>.zst`, when
  compression is on and pays) or, with a key ring, "sealed" (a flag byte saying
  whether the rest is compressed, then the chunk or its frame, encrypted under the
  current master key: `providers.codec.seal`; named `chunks/xx/yy/<hmac>.enc`, so the
  bucket shows no plaintext hash). The dedup key stays the plaintext SHA-256.
- `get(hash, size, locator)` returns the chunk's plaintext, verified: raw and zstd
  chunks must hash to their SHA-256, sealed ones pass their AEAD tag (which binds the
  hash, so a swapped object fails too), and every chunk has exactly `size` bytes.
  Anything else raises `CorruptChunk` and no byte of it is returned (invariant 24);
  a missing object raises `BlobNotFound`, a chunk under a master key the ring does
  not hold `Unavailable` (a configuration fault, not lost data).
- Each form of a chunk has its own object key (`object_key`), so two writers storing
  one chunk in two forms never overwrite each other's object: the catalog's locator
  names one form and GC removes the others (`forms`, `parse_key`).
- The same plaintext under the same settings always gives the same object key, so
  equal chunks from any user are stored once, with encryption on too.
- `inline(hash, plaintext)` encodes a small chunk as `put` would but stores nothing:
  its locator carries the at-rest bytes, which the catalog keeps in place of an object
  (design invariant 27); `get` with such a locator decodes and verifies them exactly
  as it would the object's bytes, and reads no object.
"""

from __future__ import annotations

import hashlib
import re

from providers.blobstore.base import BlobStore, chunk_key
from providers.catalog.records import RAW_LOCATOR, Locator
from providers.codec.compress import ChunkCompressor, CorruptObject
from providers.codec.seal import KeyRing, MasterKey, Tampered, UnknownKey
from providers.errors import CorruptChunk, Unavailable

RAW = "raw"
ZSTD = "zstd"
SEALED = "sealed"
CODECS = (RAW, ZSTD, SEALED)
_PLAIN_FLAG, _ZSTD_FLAG = 0, 1
_KEY_NAME = re.compile(r"(?:.*/)?([0-9a-f]{64})(\.zst|\.enc)?")


class ChunkVault:
    """Stores and reads chunks in their at-rest form (see the module contract)."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        prefix: str = "",
        compressor: ChunkCompressor | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.blobs = blobs
        self.prefix = prefix
        self.compressor = compressor
        self.keys = keys

    @property
    def plain(self) -> bool:
        """True when every new chunk is stored raw (no compression, no encryption)."""
        return self.compressor is None and self.keys is None

    def put(self, chunk_hash: str, data: memoryview | bytes) -> Locator:
        """Store the chunk in the current settings' form; return where it went."""
        locator, stored = self.encode(chunk_hash, data)
        self.blobs.put(self.object_key(chunk_hash, locator), stored)
        return locator

    def inline(self, chunk_hash: str, data: memoryview | bytes) -> Locator:
        """The chunk in the current settings' form, its at-rest bytes in the locator
        (nothing stored: the catalog keeps them, invariant 27)."""
        locator, stored = self.encode(chunk_hash, data)
        return locator.carrying(stored)

    def encode(
        self, chunk_hash: str, data: memoryview | bytes
    ) -> tuple[Locator, memoryview | bytes]:
        """The chunk's form under the current settings and its object's bytes, not
        stored (`put` stores them; `davserver reseal` first compares the form)."""
        frame = self.compressor.compress(data) if self.compressor is not None else None
        if self.keys is not None:
            key = self.keys.current
            if frame is not None:
                sealed = key.seal(chunk_hash, bytes((_ZSTD_FLAG,)) + frame)
            else:  # the chunk's hash identifies a raw payload: no second hashing pass
                digest = hashlib.sha256(bytes((_PLAIN_FLAG,)) + bytes.fromhex(chunk_hash))
                payload = bytes((_PLAIN_FLAG,)) + bytes(data)
                sealed = key.seal(chunk_hash, payload, digest.digest())
            return Locator(SEALED, key.key_id, len(sealed)), sealed
        if frame is not None:
            return Locator(ZSTD, None, len(frame)), frame
        return RAW_LOCATOR, data

    def get(self, chunk_hash: str, size: int, locator: Locator = RAW_LOCATOR) -> bytes:
        """The chunk's plaintext, verified (see the module contract)."""
        stored = locator.inline
        if stored is None:
            stored = self.blobs.get(self.object_key(chunk_hash, locator))
        try:
            if locator.codec == SEALED:
                data = self._unseal(chunk_hash, size, locator, stored)
            elif locator.codec == ZSTD:
                data = self._decompress(stored, size)
            else:
                data = stored
        except (CorruptObject, Tampered) as e:
            raise CorruptChunk(chunk_hash, str(e)) from e
        if len(data) != size:
            raise CorruptChunk(chunk_hash, f"{len(data)} bytes instead of {size}")
        if locator.codec != SEALED and hashlib.sha256(data).hexdigest() != chunk_hash:
            raise CorruptChunk(chunk_hash, "its bytes do not match its SHA-256")
        return data

    def object_key(self, chunk_hash: str, locator: Locator = RAW_LOCATOR) -> str:
        """The blob key of the chunk's object in the form `locator` names."""
        if locator.codec == SEALED:
            name = self._master(locator).object_name(chunk_hash)
            return f"{self.prefix}chunks/{name[:2]}/{name[2:4]}/{name}.enc"
        if locator.codec == ZSTD:
            return chunk_key(chunk_hash, self.prefix) + ".zst"
        if locator.codec == RAW:
            return chunk_key(chunk_hash, self.prefix)
        raise CorruptChunk(chunk_hash, f"unknown codec {locator.codec!r}")

    def forms(self, chunk_hash: str) -> list[str]:
        """Every key the chunk may have an object under with this vault's keys (raw,
        zstd, sealed under each master key): what GC deletes with the chunk."""
        keys = [chunk_key(chunk_hash, self.prefix), chunk_key(chunk_hash, self.prefix) + ".zst"]
        for master in self.keys.keys if self.keys is not None else []:
            keys.append(self.object_key(chunk_hash, Locator(SEALED, master.key_id)))
        return keys

    @staticmethod
    def parse_key(key: str) -> tuple[str, str] | None:
        """(name, codec) of a chunk object key: the SHA-256 for raw and zstd objects,
        the keyed name for sealed ones; None for any other key."""
        match = _KEY_NAME.fullmatch(key.rsplit("/", 1)[-1])
        if match is None:
            return None
        suffix = match.group(2)
        return match.group(1), {None: RAW, ".zst": ZSTD, ".enc": SEALED}[suffix]

    def sealed_name(self, chunk_hash: str, key_id: str) -> str:
        """The keyed name of the chunk's sealed object under master key `key_id`."""
        return self._master(Locator(SEALED, key_id)).object_name(chunk_hash)

    def _master(self, locator: Locator) -> MasterKey:
        if self.keys is None or locator.key_id is None:
            raise Unavailable(f"a chunk is encrypted (key {locator.key_id}); no key is configured")
        try:
            return self.keys.key(locator.key_id)
        except UnknownKey as e:
            raise Unavailable(str(e)) from e

    def _unseal(self, chunk_hash: str, size: int, locator: Locator, stored: bytes) -> bytes:
        payload = self._master(locator).open(chunk_hash, stored)
        if not payload or payload[0] not in (_PLAIN_FLAG, _ZSTD_FLAG):
            raise Tampered("unknown payload flag")
        body = memoryview(payload)[1:]
        return self._decompress(bytes(body), size) if payload[0] == _ZSTD_FLAG else bytes(body)

    def _decompress(self, frame: bytes, size: int) -> bytes:
        compressor = self.compressor or _READER
        return compressor.decompress(frame, size)


_READER = ChunkCompressor()  # reads zstd chunks when this vault no longer compresses
