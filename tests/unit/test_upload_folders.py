"""Upload folders (`providers.operations.upload_folders`): chunk names of every client
sort by their first number, chunks received in order are checksummed without a read
back, chunks out of order or through another process are read back once, a chunk sent
again replaces the old one, and a body shorter than announced records nothing."""

from __future__ import annotations

import os

import pytest

from providers.blobstore.base import chunk_key
from providers.checksums import checksums_of
from providers.errors import InvalidUpload
from providers.operations import Actor, Located, Operations
from providers.operations.upload_folders import UploadFolders, chunk_number
from providers.operations.upload_hashes import UploadHashes

KIB = 1024


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("0000000000000000", 0),  # Nextcloud 3.7: indexes
        ("0000000000000012", 12),
        ("0000000010485760", 10485760),  # ownCloud 2.11: byte offsets
        ("000000000000000-000000010485759", 0),  # rclone: byte ranges
        ("000000010485760-000000020971519", 10485760),
        ("1", 1),  # Nextcloud v2: 1..10000
        ("10000", 10000),
    ],
)
def test_a_chunk_name_sorts_by_its_first_number(name: str, number: int) -> None:
    assert chunk_number(name) == number


@pytest.mark.parametrize("name", ["", ".file", "abc", "12a", "1-2-3", "-1", "1-", "+1", "1 "])
def test_other_names_are_not_chunks(name: str) -> None:
    with pytest.raises(InvalidUpload):
        chunk_number(name)


def checksums_of_file(ops: Operations, actor: Actor, name: str) -> object:
    found = ops.view(actor).locate([name])
    assert found is not None and found.node is not None and found.node.content_id
    assert ops.files.reader(found.node.content_id, found.node.size).readall() == DATA
    return ops.catalog.checksums.get(found.node.content_id)


DATA = os.urandom(300 * KIB)
PIECES = [DATA[: 100 * KIB], DATA[100 * KIB : 200 * KIB], DATA[200 * KIB :]]
NAMES = ["0000000000000000", "0000000000000001", "0000000000000002"]


def test_chunks_in_order_are_checksummed_without_a_read_back(
    ops: Operations, actor: Actor, home: Located
) -> None:
    engine = UploadFolders(ops, UploadHashes())
    folder = engine.open(actor, "in-order", len(DATA))
    for name, piece in zip(NAMES, PIECES, strict=True):
        engine.write_chunk(actor, folder, name, [piece], len(piece))
    extents = ops.catalog.upload_folders.extents(engine.chunks(folder))
    for extent in extents:  # a read-back would now fail
        ops.files.blobs.delete(chunk_key(extent.chunk_hash, ops.files.key_prefix))
    node, created = engine.commit(
        actor, folder, (home, "f.bin"), length=len(DATA), expected={}, mtime=None
    )
    assert created and node.content_id is not None
    assert ops.catalog.checksums.get(node.content_id) == checksums_of([DATA])


@pytest.mark.parametrize("order", [(2, 0, 1), (0, 2, 1), (0, 1, 2, 1)])
def test_chunks_out_of_order_or_sent_again_are_read_back(
    ops: Operations, actor: Actor, home: Located, order: tuple[int, ...]
) -> None:
    engine = UploadFolders(ops, UploadHashes())
    folder = engine.open(actor, "any-order", len(DATA))
    for i in order:
        engine.write_chunk(actor, folder, NAMES[i], [PIECES[i]], len(PIECES[i]))
    engine.commit(actor, folder, (home, "g.bin"), length=None, expected={}, mtime=None)
    assert checksums_of_file(ops, actor, "g.bin") == checksums_of([DATA])


def test_chunks_through_another_process_are_read_back(
    ops: Operations, actor: Actor, home: Located
) -> None:
    first, second = UploadFolders(ops, UploadHashes()), UploadFolders(ops, UploadHashes())
    folder = first.open(actor, "spread", None)
    for i, engine in enumerate((first, second, first)):
        engine.write_chunk(actor, folder, NAMES[i], [PIECES[i]], len(PIECES[i]))
    second.commit(actor, folder, (home, "h.bin"), length=len(DATA), expected={}, mtime=None)
    assert checksums_of_file(ops, actor, "h.bin") == checksums_of([DATA])


def test_a_short_body_records_nothing(ops: Operations, actor: Actor) -> None:
    engine = UploadFolders(ops, UploadHashes())
    folder = engine.open(actor, "short", None)
    with pytest.raises(InvalidUpload):
        engine.write_chunk(actor, folder, NAMES[0], [b"abc"], 10)
    assert engine.chunks(folder) == []
