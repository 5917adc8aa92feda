"""A file larger than 4 GiB, streamed from a generator, on the embedded stack."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from typing import Any

import pytest

MIB = 1024 * 1024
SIZE = 4 * 1024 * MIB + 5 * MIB + 123  # past 2**32, not a multiple of anything


def _blocks(digest: Any) -> Iterator[bytes]:
    """SIZE bytes: a few random blocks, repeated with a counter so chunks differ a little."""
    rng = random.Random(4)
    pool = [rng.randbytes(MIB) for _ in range(4)]
    sent = 0
    counter = 0
    while sent < SIZE:
        block = counter.to_bytes(8, "big") + pool[counter % 4][8:]
        block = block[: SIZE - sent]
        digest.update(block)
        sent += len(block)
        counter += 1
        yield block


class _SizedBody:
    """An iterable with a length, so `requests` streams it with a Content-Length."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks

    def __iter__(self) -> Iterator[bytes]:
        return self._blocks

    def __len__(self) -> int:
        return SIZE


@pytest.mark.slow
def test_file_over_4_gib_round_trips(make_server: Any) -> None:
    server = make_server("embedded")
    client = server.client()
    sent = hashlib.sha256()
    response = client.put(server.url("huge.bin"), data=_SizedBody(_blocks(sent)))
    assert response.status_code == 201, response.text[:300]
    head = client.head(server.url("huge.bin"))
    assert int(head.headers["Content-Length"]) == SIZE
    etag = head.headers["ETag"]
    assert etag.startswith('"') and len(etag) == 66  # strong: a quoted SHA-256 content digest

    received = hashlib.sha256()
    total = 0
    with client.get(server.url("huge.bin"), stream=True) as got:
        assert got.headers["ETag"] == etag
        for block in got.iter_content(MIB):
            received.update(block)
            total += len(block)
    assert total == SIZE and received.hexdigest() == sent.hexdigest()

    tail = client.get(server.url("huge.bin"), headers={"Range": f"bytes={2**32 - 3}-{2**32 + 4}"})
    assert tail.status_code == 206 and len(tail.content) == 8
