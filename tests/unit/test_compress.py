"""`ChunkCompressor`: what it keeps, what it refuses, and how many zstd contexts it
holds when many threads take turns (a worker's request threads do)."""

from __future__ import annotations

import os
import threading

import pytest

from providers.codec.compress import KEEP, ChunkCompressor, CorruptObject

TEXT = b"def handler(request):\n    return request.path\n" * 4000


def test_compressible_chunk_round_trips() -> None:
    compressor = ChunkCompressor()
    frame = compressor.compress(TEXT)
    assert frame is not None and len(frame) < len(TEXT) // 10
    assert compressor.decompress(frame, len(TEXT)) == TEXT


def test_random_bytes_are_kept_as_they_are() -> None:
    assert ChunkCompressor().compress(os.urandom(256 * 1024)) is None


def test_a_frame_of_another_size_is_corrupt() -> None:
    compressor = ChunkCompressor()
    frame = compressor.compress(TEXT)
    assert frame is not None
    with pytest.raises(CorruptObject):
        compressor.decompress(frame, len(TEXT) - 1)
    with pytest.raises(CorruptObject):
        compressor.decompress(b"not a frame", 10)
    assert compressor.decompress(frame, len(TEXT)) == TEXT  # the context is still good


def test_threads_taking_turns_share_one_context() -> None:
    compressor = ChunkCompressor()
    frame = compressor.compress(TEXT)
    assert frame is not None
    for _ in range(50):  # one thread after another, as a pool's threads serve in turn
        thread = threading.Thread(
            target=lambda: compressor.decompress(compressor.compress(TEXT) or b"", len(TEXT))
        )
        thread.start()
        thread.join()
    assert compressor._compressors.made == 1
    assert compressor._decompressors.made == 1


def test_concurrent_threads_get_their_own_and_at_most_keep_stay() -> None:
    compressor = ChunkCompressor()
    count = KEEP + 4
    start = threading.Barrier(count)
    results: list[bool] = []

    def compress() -> None:
        start.wait()
        frame = compressor.compress(TEXT)
        results.append(frame is not None and compressor.decompress(frame, len(TEXT)) == TEXT)

    threads = [threading.Thread(target=compress) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * count
    assert 1 <= compressor._compressors.made <= count
    assert len(compressor._compressors._free) <= KEEP
