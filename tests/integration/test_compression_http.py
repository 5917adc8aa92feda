"""Compression as users see it, on both stacks: text is stored compressed and reads back
whole and by ranges across chunk boundaries; random data is stored as it is; a store
with compression off, then on, keeps both kinds readable."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from providers.catalog import ExtentRecord
from providers.codec import RAW, ZSTD
from tests.support.dav import put
from tests.support.servers import RunningServer, stack_settings, start_server

KIB, MIB = 1024, 1024 * 1024


def source_text(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = ["request", "response", "handler", "return", "self", "value", "path", "node"]
    lines = []
    length = 0
    while length < size:
        names = " ".join(rng.choice(words) for _ in range(rng.randint(2, 8)))
        line = f"    def {rng.choice(words)}_{rng.randint(0, 999)}(self): {names}\n".encode()
        lines.append(line)
        length += len(line)
    return b"".join(lines)[:size]


def extents(server: RunningServer, name: str) -> list[ExtentRecord]:
    catalog = server.services.catalog
    admin = catalog.users.get("admin")
    assert admin is not None
    node = catalog.tree.resolve(admin.home_id, [name])
    assert node is not None and node.content_id is not None
    return catalog.contents.extents(node.content_id)


def codecs_of(server: RunningServer, name: str) -> set[str]:
    hashes = [e.chunk_hash for e in extents(server, name)]
    return {loc.codec for loc in server.services.catalog.locators.get(hashes).values()}


def test_text_is_stored_compressed_and_reads_back_by_ranges(server: RunningServer) -> None:
    body = source_text(6 * MIB, seed=1)
    before = server.stored_bytes()
    put(server.client(), server.url("src.py"), body)
    assert server.stored_bytes() - before < len(body) * 0.5
    assert codecs_of(server, "src.py") == {ZSTD}
    client = server.client()
    assert client.get(server.url("src.py")).content == body
    boundaries = [e.offset for e in extents(server, "src.py")][1:]
    assert boundaries, "a 6 MiB file has several chunks"
    for at in boundaries[:4]:
        answer = client.get(server.url("src.py"), headers={"Range": f"bytes={at - 10}-{at + 9}"})
        assert answer.status_code == 206
        assert answer.content == body[at - 10 : at + 10]


def test_random_data_is_stored_as_it_is(server: RunningServer) -> None:
    body = random.Random(2).randbytes(3 * MIB)
    before = server.stored_bytes()
    put(server.client(), server.url("noise.bin"), body)
    assert len(body) <= server.stored_bytes() - before <= len(body) * 1.003
    assert codecs_of(server, "noise.bin") == {RAW}
    assert server.client().get(server.url("noise.bin")).content == body


@pytest.mark.parametrize("stack", ["embedded", "full"])
def test_a_store_written_without_compression_stays_readable(
    request: pytest.FixtureRequest, tmp_path: Path, stack: str
) -> None:
    old_body, new_body = source_text(2 * MIB, seed=3), source_text(2 * MIB, seed=4)
    settings = stack_settings(request, tmp_path / "data", stack, compression="off")
    first = start_server(settings)
    try:
        put(first.client(), first.url("old.py"), old_body)
        assert codecs_of(first, "old.py") == {RAW}
    finally:
        first.stop()
    second = start_server(replace(settings, compression="auto"), flush_redis=False)
    try:
        put(second.client(), second.url("new.py"), new_body)
        assert codecs_of(second, "new.py") == {ZSTD}
        assert second.client().get(second.url("old.py")).content == old_body
        assert second.client().get(second.url("new.py")).content == new_body
    finally:
        second.stop()
