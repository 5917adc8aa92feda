"""`providers.reseal` over a SQLite catalog and a MemoryBlobStore: chunks move to the
form the settings want (encryption turned on, a key rotation, --recompress), verified,
resumably, without deleting anything; corrupt and missing chunks are left alone."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog, Locator, NodeRecord, UserRecord
from providers.chunker import FastCDCChunker
from providers.codec import RAW, SEALED, ZSTD, ChunkCompressor, ChunkVault, KeyRing
from providers.filestore import FileStore
from providers.gc import check_store, collect_garbage
from providers.reseal import reseal_chunks, wants_change
from tests.support.saved import save

KIB = 1024
OLD_KEY, NEW_KEY = bytes(range(32)), bytes(range(100, 132))
MARKER = b"reseal-marker-5d1e"


def text(size: int, seed: int) -> bytes:
    lines = [b"line %d of file %d " % (i, seed) + MARKER + b"\n" for i in range(size // 30 + 1)]
    return b"".join(lines)[:size]


@pytest.fixture
def stores(catalog: Catalog, blobs: MemoryBlobStore) -> Iterator[dict[str, FileStore]]:
    """A file store per setting, all on one catalog and one blob store."""
    vaults = {
        "plain": ChunkVault(blobs),
        "zstd": ChunkVault(blobs, compressor=ChunkCompressor()),
        "old-key": ChunkVault(blobs, compressor=ChunkCompressor(), keys=KeyRing(OLD_KEY)),
        "sealed": ChunkVault(blobs, compressor=ChunkCompressor(), keys=KeyRing(NEW_KEY)),
        "rotated": ChunkVault(
            blobs, compressor=ChunkCompressor(), keys=KeyRing(NEW_KEY, [OLD_KEY])
        ),
    }
    chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    made = {
        name: FileStore(catalog, blobs, chunker, workers=2, vault=v) for name, v in vaults.items()
    }
    yield made
    for store in made.values():
        store.close()


def read(files: FileStore, node: NodeRecord) -> bytes:
    assert node.content_id is not None
    with files.reader(node.content_id, node.size) as reader:
        return reader.readall()


def forms(catalog: Catalog) -> set[tuple[str, str | None]]:
    return {(loc.codec, loc.key_id) for _h, _n, loc in catalog.locators.all_rows()}


def keys(blobs: MemoryBlobStore) -> set[str]:
    return {info.key for info in blobs.iter_keys()}


def test_turning_encryption_on_seals_the_old_chunks(
    catalog: Catalog, blobs: MemoryBlobStore, stores: dict[str, FileStore], user: UserRecord
) -> None:
    old = {
        "plain.txt": save(stores["plain"], user, "plain.txt", text(80 * KIB, 1)),
        "zstd.txt": save(stores["zstd"], user, "zstd.txt", text(80 * KIB, 2)),
        "random": save(stores["plain"], user, "random", os.urandom(40 * KIB)),
    }
    contents = {name: read(stores["plain"], node) for name, node in old.items()}
    before = keys(blobs)
    sealed = stores["sealed"]
    assert sealed.vault.keys is not None
    current = sealed.vault.keys.current.key_id
    assert {codec for codec, _k in forms(catalog)} == {RAW, ZSTD}

    report = reseal_chunks(catalog, sealed.vault)
    assert report.ok and report.resealed == report.candidates == report.examined > 10
    assert report.raced == report.unchanged == 0
    assert forms(catalog) == {(SEALED, current)}
    assert before < keys(blobs)  # nothing deleted: the old objects wait for GC
    for name, node in old.items():
        assert read(sealed, node) == contents[name]
    again = reseal_chunks(catalog, sealed.vault)
    assert again.examined == report.examined and again.candidates == again.resealed == 0

    time.sleep(0.01)
    collect_garbage(catalog, blobs, grace=0, apply=True, vault=sealed.vault)
    assert keys(blobs).isdisjoint(before)
    assert all(MARKER not in blobs.get(key) for key in keys(blobs))
    assert check_store(catalog, blobs, deep=True, vault=sealed.vault).ok


def test_rotation_moves_every_chunk_to_the_new_key(
    catalog: Catalog, blobs: MemoryBlobStore, stores: dict[str, FileStore], user: UserRecord
) -> None:
    data = text(120 * KIB, 3)
    node = save(stores["old-key"], user, "f.txt", data)
    rotated = stores["rotated"]
    assert rotated.vault.keys is not None
    old_id, new_id = KeyRing(OLD_KEY).current.key_id, rotated.vault.keys.current.key_id
    assert catalog.locators.key_ids() == {old_id}

    report = reseal_chunks(catalog, rotated.vault, workers=3)
    assert report.ok and report.resealed == report.examined
    assert catalog.locators.key_ids() == {new_id}
    time.sleep(0.01)
    collect_garbage(catalog, blobs, grace=0, apply=True, vault=rotated.vault)
    assert read(stores["sealed"], node) == data  # the new key alone reads it
    assert check_store(catalog, blobs, deep=True, vault=stores["sealed"].vault).ok
    assert len(keys(blobs)) == report.resealed


def test_a_dry_run_counts_and_changes_nothing(
    catalog: Catalog, blobs: MemoryBlobStore, stores: dict[str, FileStore], user: UserRecord
) -> None:
    save(stores["plain"], user, "f.txt", text(60 * KIB, 4))
    rows, before = forms(catalog), keys(blobs)
    seen: list[int] = []
    report = reseal_chunks(catalog, stores["sealed"].vault, dry_run=True, progress=seen.append)
    assert report.candidates == report.examined == sum(seen) > 0
    assert report.candidate_bytes == 60 * KIB and report.resealed == 0
    assert forms(catalog) == rows and keys(blobs) == before


def test_recompress_compresses_what_pays_and_is_resumable(
    catalog: Catalog, blobs: MemoryBlobStore, stores: dict[str, FileStore], user: UserRecord
) -> None:
    written = text(100 * KIB, 5)
    node = save(stores["plain"], user, "f.txt", written)
    save(stores["plain"], user, "random", os.urandom(30 * KIB))
    auto = stores["zstd"].vault
    assert reseal_chunks(catalog, auto).candidates == 0  # only with --recompress
    report = reseal_chunks(catalog, auto, recompress=True)
    assert report.ok and report.resealed > 0 and report.unchanged > 0
    assert report.bytes_after < report.bytes_before / 2
    assert read(stores["zstd"], node) == written
    again = reseal_chunks(catalog, auto, recompress=True)
    assert again.resealed == 0 and again.unchanged == report.unchanged  # random: read again

    back = reseal_chunks(catalog, stores["plain"].vault, recompress=True)
    assert back.resealed == report.resealed
    assert forms(catalog) == {(RAW, None)}
    assert read(stores["plain"], node) == written


def test_wanted_forms() -> None:
    blobs = MemoryBlobStore()
    ring = KeyRing(NEW_KEY, [OLD_KEY])
    new, old = ring.current.key_id, KeyRing(OLD_KEY).current.key_id
    sealed = ChunkVault(blobs, keys=ring)
    cases = [
        (sealed, Locator(RAW), False, True),
        (sealed, Locator(ZSTD, None, 10), False, True),
        (sealed, Locator(SEALED, old, 10), False, True),
        (sealed, Locator(SEALED, new, 10), True, False),
        (ChunkVault(blobs), Locator(ZSTD, None, 10), False, False),
        (ChunkVault(blobs), Locator(ZSTD, None, 10), True, True),
        (ChunkVault(blobs), Locator(RAW), True, False),
        (ChunkVault(blobs, compressor=ChunkCompressor()), Locator(RAW), True, True),
    ]
    for vault, locator, recompress, wanted in cases:
        assert wants_change(vault, locator, recompress=recompress) is wanted, locator


def test_corrupt_and_missing_chunks_are_reported_and_left(
    catalog: Catalog, blobs: MemoryBlobStore, stores: dict[str, FileStore], user: UserRecord
) -> None:
    node = save(stores["plain"], user, "f.txt", text(60 * KIB, 6))
    assert node.content_id is not None
    hashes = [e.chunk_hash for e in catalog.contents.extents(node.content_id)]
    damaged, lost = hashes[1], hashes[2]
    vault = stores["plain"].vault
    flipped = bytearray(blobs.get(vault.object_key(damaged)))
    flipped[7] ^= 0x01
    blobs.put(vault.object_key(damaged), bytes(flipped))
    blobs.delete(vault.object_key(lost))

    report = reseal_chunks(catalog, stores["sealed"].vault)
    assert report.corrupt == [damaged] and report.missing == [lost] and not report.ok
    assert report.resealed == len(set(hashes)) - 2
    left = catalog.locators.get([damaged, lost])
    assert {loc.codec for loc in left.values()} == {RAW}
    assert blobs.get(vault.object_key(damaged)) == bytes(flipped)  # not touched


class RacingBlobStore(MemoryBlobStore):
    """Calls `on_put(key)` after each put: another writer acting meanwhile."""

    on_put: Callable[[str], None] = staticmethod(lambda key: None)

    def put(self, key: str, data: bytes | memoryview) -> None:
        super().put(key, data)
        self.on_put(key)


def test_a_row_changed_meanwhile_is_not_overwritten(catalog: Catalog, user: UserRecord) -> None:
    blobs = RacingBlobStore()
    plain = FileStore(
        catalog, blobs, FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB), vault=ChunkVault(blobs)
    )
    save(plain, user, "f.txt", text(30 * KIB, 7))
    plain.close()
    rows = catalog.locators.page()
    first, size, _raw = rows[0]
    writer_form = ChunkVault(blobs, keys=KeyRing(OLD_KEY)).put(
        first, ChunkVault(blobs).get(first, size)
    )
    sealed = ChunkVault(blobs, keys=KeyRing(NEW_KEY, [OLD_KEY]))
    ours = sealed.object_key(
        first, Locator(SEALED, sealed.keys.current.key_id if sealed.keys else None)
    )

    def writer_records(key: str) -> None:
        if key == ours:
            catalog.locators.record({first: writer_form})

    blobs.on_put = writer_records
    report = reseal_chunks(catalog, sealed, workers=1)
    assert report.raced == 1 and report.resealed == len(rows) - 1
    assert catalog.locators.get([first])[first] == writer_form
