"""The codec layer's contract (`providers.codec.vault`), on every blob store, for each
setting a store can have: plain, compressed, encrypted, both."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest

from providers.blobstore.base import BlobStore, chunk_key
from providers.catalog.records import RAW_LOCATOR
from providers.codec import RAW, SEALED, ZSTD, ChunkCompressor, ChunkVault, KeyRing
from providers.errors import BlobNotFound, CorruptChunk, Unavailable

KiB = 1024
MASTER = bytes(range(32))
OTHER = bytes(range(1, 33))
MARKER = b"davserver-plaintext-marker-7f3a"
Setting = Callable[[BlobStore], ChunkVault]

SETTINGS: dict[str, Setting] = {
    "plain": lambda blobs: ChunkVault(blobs, prefix="v/"),
    "zstd": lambda blobs: ChunkVault(blobs, prefix="v/", compressor=ChunkCompressor()),
    "sealed": lambda blobs: ChunkVault(blobs, prefix="v/", keys=KeyRing(MASTER)),
    "zstd+sealed": lambda blobs: ChunkVault(
        blobs, prefix="v/", compressor=ChunkCompressor(), keys=KeyRing(MASTER)
    ),
}


@pytest.fixture(params=list(SETTINGS))
def vault(request: pytest.FixtureRequest, blobstore: BlobStore) -> ChunkVault:
    return SETTINGS[request.param](blobstore)


def text(size: int) -> bytes:
    line = b"def handler(request): return respond(request.path, status=200)  # " + MARKER + b"\n"
    return (line * (size // len(line) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["text", "random", "empty", "tiny"])
def test_put_then_get_returns_the_plaintext(vault: ChunkVault, kind: str) -> None:
    data = {"text": text(300 * KiB), "random": os.urandom(300 * KiB), "empty": b"", "tiny": b"x"}[
        kind
    ]
    locator = vault.put(sha(data), memoryview(data))
    assert vault.get(sha(data), len(data), locator) == data
    stored = vault.blobs.get(vault.object_key(sha(data), locator))
    assert len(stored) == (locator.stored_size if locator.stored_size is not None else len(data))


def test_the_form_follows_the_settings(vault: ChunkVault) -> None:
    compressible, random = text(256 * KiB), os.urandom(256 * KiB)
    first = vault.put(sha(compressible), compressible)
    second = vault.put(sha(random), random)
    if vault.keys is not None:
        assert first.codec == second.codec == SEALED
        assert first.key_id == vault.keys.current.key_id
    elif vault.compressor is not None:
        assert first.codec == ZSTD and first.stored_size is not None
        assert first.stored_size < len(compressible) * 0.95
        assert second == RAW_LOCATOR  # incompressible: kept as it is, no header
    else:
        assert first == second == RAW_LOCATOR
    if vault.compressor is not None and vault.keys is not None:
        assert first.stored_size is not None and first.stored_size < len(compressible) // 2


def test_sealed_objects_show_no_plaintext_nor_its_hash(blobstore: BlobStore) -> None:
    vault = SETTINGS["zstd+sealed"](blobstore)
    for data in (text(64 * KiB), MARKER * 3, os.urandom(KiB) + MARKER):
        locator = vault.put(sha(data), data)
        assert sha(data) not in vault.object_key(sha(data), locator)
    for info in blobstore.iter_keys("v/"):
        assert MARKER not in blobstore.get(info.key)
        assert not any(sha(d) in info.key for d in (text(64 * KiB), MARKER * 3))


def test_equal_chunks_give_one_object(vault: ChunkVault) -> None:
    data = text(100 * KiB)
    first = vault.put(sha(data), data)
    second = vault.put(sha(data), bytearray(data))
    assert first.codec == second.codec
    assert vault.object_key(sha(data), first) == vault.object_key(sha(data), second)
    assert len(list(vault.blobs.iter_keys("v/"))) == 1


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_is_never_served(vault: ChunkVault, where: str) -> None:
    for data in (text(200 * KiB), os.urandom(200 * KiB)):
        locator = vault.put(sha(data), data)
        key = vault.object_key(sha(data), locator)
        stored = bytearray(vault.blobs.get(key))
        at = {"first": 0, "middle": len(stored) // 2, "last": len(stored) - 1}[where]
        stored[at] ^= 0x01
        vault.blobs.put(key, bytes(stored))
        with pytest.raises(CorruptChunk) as caught:
            vault.get(sha(data), len(data), locator)
        assert caught.value.chunk_hash == sha(data)


def test_a_swapped_object_is_detected(vault: ChunkVault) -> None:
    one, two = text(50 * KiB), text(60 * KiB)
    first, second = vault.put(sha(one), one), vault.put(sha(two), two)
    vault.blobs.put(
        vault.object_key(sha(one), first), vault.blobs.get(vault.object_key(sha(two), second))
    )
    with pytest.raises(CorruptChunk):
        vault.get(sha(one), len(one), first)


def test_a_wrong_size_is_corrupt(vault: ChunkVault) -> None:
    data = text(10 * KiB)
    locator = vault.put(sha(data), data)
    with pytest.raises(CorruptChunk):
        vault.get(sha(data), len(data) + 1, locator)


def test_a_missing_object_is_not_found(vault: ChunkVault) -> None:
    data = text(10 * KiB)
    locator = vault.put(sha(data), data)
    vault.blobs.delete(vault.object_key(sha(data), locator))
    with pytest.raises(BlobNotFound):
        vault.get(sha(data), len(data), locator)


def test_raw_chunks_written_before_codecs_stay_readable(vault: ChunkVault) -> None:
    """A store from before this release: plaintext objects under the plain key."""
    data = text(40 * KiB)
    vault.blobs.put(chunk_key(sha(data), "v/"), data)
    assert vault.get(sha(data), len(data), RAW_LOCATOR) == data


def test_another_master_key_cannot_read_and_says_so(blobstore: BlobStore) -> None:
    data = text(40 * KiB)
    locator = SETTINGS["sealed"](blobstore).put(sha(data), data)
    stranger = ChunkVault(blobstore, prefix="v/", keys=KeyRing(OTHER))
    with pytest.raises(Unavailable):
        stranger.get(sha(data), len(data), locator)
    rotated = ChunkVault(blobstore, prefix="v/", keys=KeyRing(OTHER, [MASTER]))
    assert rotated.get(sha(data), len(data), locator) == data
    assert rotated.put(sha(data), data).key_id == rotated.keys.current.key_id  # type: ignore[union-attr]


def test_forms_and_parse_key_cover_every_object(vault: ChunkVault) -> None:
    data = text(30 * KiB)
    locator = vault.put(sha(data), data)
    key = vault.object_key(sha(data), locator)
    assert key in vault.forms(sha(data))
    parsed = vault.parse_key(key)
    assert parsed is not None and parsed[1] == locator.codec
    if locator.codec != SEALED:
        assert parsed[0] == sha(data)
    assert vault.parse_key("v/probe/abc") is None
    assert locator.codec in (RAW, ZSTD, SEALED)
