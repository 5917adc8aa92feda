"""Convergent authenticated encryption of one chunk (the one `cryptography` module).

Every key is derived from a 256-bit master key with HMAC-SHA256 under a distinct
label, so no two uses share a key:

- the chunk key is HMAC(master, "davserver chunk key" + sha256): identical chunks
  get identical keys and, since the cipher is deterministic, identical objects, so
  dedup keeps working across users (convergent encryption; its limits are in
  `docs/encryption.md`);
- the object name is HMAC(HMAC(master, "davserver object names"), sha256): the bucket
  does not show which chunks (hence which well-known files) are stored;
- the key id is the first 16 hex digits of HMAC(master, "davserver key id"): it names
  the master key in the catalog without revealing it.

The cipher is AES-256-GCM-SIV with a fixed nonce: each key only ever encrypts one
chunk's plaintext, and GCM-SIV is misuse-resistant, so even two different encodings
of one chunk (two zstd versions) under one key reveal nothing but their equality.
The associated data binds the object to its chunk hash and key id, so an object
moved or copied to another chunk's name fails its tag (`Tampered`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

KEY_BYTES = 32
_NONCE = bytes(12)
_AAD = b"davserver chunk v1\0"


class Tampered(ValueError):
    """The object fails its authentication tag: changed, swapped or under another key."""


class UnknownKey(LookupError):
    """A chunk is sealed under a master key this key ring does not hold."""


def parse_master_key(text: str) -> bytes:
    """A master key from its 64 hex characters (surrounding whitespace ignored);
    `ValueError` with a short reason otherwise."""
    text = text.strip()
    if len(text) != 2 * KEY_BYTES:
        raise ValueError(f"a key is {2 * KEY_BYTES} hex characters, this one has {len(text)}")
    try:
        return bytes.fromhex(text)
    except ValueError as e:
        raise ValueError("a key is hex characters only (0-9, a-f)") from e


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


class MasterKey:
    """One master key and what is derived from it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes")
        self._secret = secret
        self._names = _mac(secret, b"davserver object names")
        self.key_id = _mac(secret, b"davserver key id").hex()[:16]

    def object_name(self, chunk_hash: str) -> str:
        """64 hex digits naming the chunk's object under this key."""
        return _mac(self._names, bytes.fromhex(chunk_hash)).hex()

    def seal(self, chunk_hash: str, payload: bytes) -> bytes:
        """`payload` encrypted and authenticated for chunk `chunk_hash`."""
        return self._cipher(chunk_hash).encrypt(_NONCE, payload, self._aad(chunk_hash))

    def open(self, chunk_hash: str, sealed: bytes) -> bytes:
        """The payload `seal` was given; `Tampered` if the object is not exactly what
        `seal` made for this chunk under this key."""
        try:
            return self._cipher(chunk_hash).decrypt(_NONCE, sealed, self._aad(chunk_hash))
        except InvalidTag as e:
            raise Tampered("the object fails its authentication tag") from e

    def _cipher(self, chunk_hash: str) -> AESGCMSIV:
        return AESGCMSIV(_mac(self._secret, b"davserver chunk key", bytes.fromhex(chunk_hash)))

    def _aad(self, chunk_hash: str) -> bytes:
        return _AAD + bytes.fromhex(chunk_hash) + self.key_id.encode()


class KeyRing:
    """The current master key (new chunks are sealed under it) and retired ones (still
    read, until `davserver reseal` has moved every chunk off them)."""

    def __init__(self, current: bytes, retired: Iterable[bytes] = ()) -> None:
        self.current = MasterKey(current)
        self._keys = {self.current.key_id: self.current}
        for secret in retired:
            key = MasterKey(secret)
            self._keys.setdefault(key.key_id, key)

    def key(self, key_id: str) -> MasterKey:
        """The master key named `key_id`; `UnknownKey` if the ring lacks it."""
        try:
            return self._keys[key_id]
        except KeyError as e:
            raise UnknownKey(f"master key {key_id} is not configured") from e

    @property
    def keys(self) -> list[MasterKey]:
        """Every key in the ring, the current one first."""
        return list(self._keys.values())
