"""FileWriter's byte limit: a body passing it stops at the first block over it."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog
from providers.chunker import FastCDCChunker, FixedChunker
from providers.errors import QuotaExceeded
from providers.filestore import FileStore

KIB = 1024


@pytest.fixture(params=["fastcdc", "fixed"])
def store(
    request: pytest.FixtureRequest, catalog: Catalog, blobs: MemoryBlobStore
) -> Iterator[FileStore]:
    if request.param == "fastcdc":
        chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    else:
        chunker = FixedChunker(4 * KIB)
    files = FileStore(catalog, blobs, chunker, workers=2, max_in_flight=2)
    yield files
    files.close()


class CountingBody:
    """A body of `blocks` random blocks of `size` bytes that counts the blocks taken."""

    def __init__(self, blocks: int, size: int) -> None:
        self.blocks, self.size, self.taken = blocks, size, 0
        self._rng = random.Random(blocks * size)

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.blocks):
            self.taken += 1
            yield self._rng.randbytes(self.size)


@pytest.mark.parametrize("limit", [None, 10 * KIB, 10 * KIB + 1, 1 << 40])
def test_body_within_the_limit_is_stored_whole(store: FileStore, limit: int | None) -> None:
    body = CountingBody(blocks=10, size=KIB)
    writer = store.writer(limit=limit)
    writer.writelines(body)
    content = writer.finish()
    assert content.size == 10 * KIB and body.taken == 10
    assert sum(e.size for e in content.extents) == 10 * KIB


@pytest.mark.parametrize("limit", [0, 1, 5 * KIB, 5 * KIB + 1, 10 * KIB - 1])
def test_body_past_the_limit_stops_at_the_first_block_over_it(
    store: FileStore, blobs: MemoryBlobStore, limit: int
) -> None:
    body = CountingBody(blocks=100, size=KIB)
    writer = store.writer(limit=limit)
    with pytest.raises(QuotaExceeded):
        writer.writelines(body)
    writer.abort()
    assert body.taken == limit // KIB + 1  # not one block more is pulled from the client
    stored = sum(info.size for info in blobs.iter_keys(""))
    assert stored <= limit  # what reached the store fits in the limit


def test_empty_body_fits_a_zero_limit(store: FileStore) -> None:
    writer = store.writer(limit=0)
    writer.writelines([])
    assert writer.finish().size == 0
