"""Chunkers: pinned FastCDC cut points, block-size independence, bounds, locality."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator

import pytest
from pyfastcdc import FastCDC

from providers.chunker import Chunker, FastCDCChunker, FixedChunker

KIB, MIB = 1024, 1024 * 1024

# FastCDCChunker(256 KiB, 1 MiB, 4 MiB) over random.Random(1234).randbytes(16 MiB).
# If this changes, every deployed catalog loses dedup against new uploads: do not
# update it casually.
GOLDEN_LENGTHS = [
    1587404, 1421755, 1160442, 1241405, 3271789, 1996844,
    1311562, 947877, 1068759, 1247231, 1080793, 441355,
]  # fmt: skip


def default_chunker() -> FastCDCChunker:
    return FastCDCChunker(256 * KIB, 1 * MIB, 4 * MIB)


def small_chunker() -> FastCDCChunker:
    return FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)


def blocks_of(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def chunks_of(chunker: Chunker, blocks: Iterable[bytes]) -> list[bytes]:
    """The chunks, copied (each view is released when the chunker resumes)."""
    return [bytes(chunk) for chunk in chunker.split(blocks)]


def test_golden_cut_points() -> None:
    data = random.Random(1234).randbytes(16 * MIB)
    chunks = chunks_of(default_chunker(), [data])
    assert [len(c) for c in chunks] == GOLDEN_LENGTHS
    assert b"".join(chunks) == data


def test_golden_cut_points_with_odd_blocks() -> None:
    data = random.Random(1234).randbytes(16 * MIB)
    chunks = chunks_of(default_chunker(), blocks_of(data, 4097))
    assert [len(c) for c in chunks] == GOLDEN_LENGTHS


def test_cuts_across_windows_match_pyfastcdc_on_the_whole_buffer() -> None:
    # several windows of the default chunker, read in odd blocks: the cut lengths must
    # be those pyfastcdc finds with the whole stream in one buffer
    data = random.Random(99).randbytes(3 * FastCDCChunker.WINDOW_CHUNKS * 4 * MIB + 12345)
    reference = FastCDC(1 * MIB - 256 * KIB, min_size=256 * KIB, max_size=4 * MIB)
    expected = [chunk.length for chunk in reference.cut_buf(data)]
    assert len(expected) > 40
    chunks = chunks_of(default_chunker(), blocks_of(data, 1_000_003))
    assert [len(c) for c in chunks] == expected
    assert b"".join(chunks) == data


@pytest.mark.parametrize("block_size", [1, 7, 4097, 300 * KIB])
def test_cut_points_do_not_depend_on_block_sizes(block_size: int) -> None:
    data = random.Random(5).randbytes(300 * KIB)
    expected = chunks_of(small_chunker(), [data])
    assert len(expected) > 10
    assert chunks_of(small_chunker(), blocks_of(data, block_size)) == expected


def test_empty_blocks_are_harmless() -> None:
    data = random.Random(6).randbytes(100 * KIB)
    with_empties = [b"", data[:10], b"", b"", data[10:], b""]
    assert chunks_of(small_chunker(), with_empties) == chunks_of(small_chunker(), [data])


def test_empty_input_yields_nothing() -> None:
    assert chunks_of(default_chunker(), []) == []
    assert chunks_of(default_chunker(), [b"", b""]) == []
    assert chunks_of(FixedChunker(10), [b""]) == []


@pytest.mark.parametrize("size", [1, 1000, 1024, 5000, 300 * KIB + 17])
def test_bounds_and_concatenation(size: int) -> None:
    chunker = small_chunker()
    data = random.Random(size).randbytes(size)
    chunks = chunks_of(chunker, blocks_of(data, 999))
    assert b"".join(chunks) == data
    assert all(chunker.min_size <= len(c) <= chunker.max_size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunker.max_size


def test_max_size_is_enforced_on_uniform_data() -> None:
    chunker = small_chunker()
    chunks = chunks_of(chunker, [bytes(100 * KIB)])
    assert b"".join(chunks) == bytes(100 * KIB)
    assert all(len(c) == chunker.max_size for c in chunks[:-1])


def test_insert_in_the_middle_changes_few_chunks() -> None:
    data = random.Random(99).randbytes(64 * MIB)
    middle = len(data) // 2
    edited = data[:middle] + random.Random(7).randbytes(100) + data[middle:]

    def hashes(content: bytes) -> set[str]:
        return {hashlib.sha256(c).hexdigest() for c in default_chunker().split([content])}

    before, after = hashes(data), hashes(edited)
    assert len(before) > 30
    assert len(before - after) <= 3
    assert len(after - before) <= 3


def test_fixed_chunker() -> None:
    chunker = FixedChunker(4)
    assert chunker.min_size == chunker.max_size == 4
    assert chunks_of(chunker, [b"ab", b"cdefghi", b"j"]) == [b"abcd", b"efgh", b"ij"]
    assert chunks_of(chunker, [b"abcd", b"efgh"]) == [b"abcd", b"efgh"]
    assert chunks_of(chunker, [b"xy"]) == [b"xy"]


def test_params() -> None:
    assert default_chunker().params() == "fastcdc2020:min=262144,avg=1048576,max=4194304"
    assert FixedChunker(4096).params() == "fixed:size=4096"


@pytest.mark.parametrize("sizes", [(32, 64, 128), (1024, 512, 2048), (1024, 4096, 2048)])
def test_invalid_sizes_are_refused(sizes: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        FastCDCChunker(*sizes)


@pytest.mark.parametrize("chunker", [default_chunker(), FixedChunker(4 * KIB)], ids=repr)
@pytest.mark.parametrize("size", [100, 300 * KIB, 9 * MIB])
def test_a_chunk_is_lent_read_only_until_the_chunker_resumes(chunker: Chunker, size: int) -> None:
    data = random.Random(7).randbytes(size)
    chunks = chunker.split([data])
    first = next(chunks)
    assert first.readonly
    assert bytes(first) == data[: len(first)]
    next(chunks, None)
    with pytest.raises(ValueError, match="released"):
        bytes(first)
