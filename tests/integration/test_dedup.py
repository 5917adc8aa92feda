"""Dedup across users and files, and content-defined re-chunking after an insert."""

from __future__ import annotations

import random

from tests.support.dav import put
from tests.support.servers import RunningServer

MIB = 1024 * 1024


def test_same_content_by_two_users_is_stored_once(server: RunningServer) -> None:
    body = random.Random(64).randbytes(64 * MIB)
    server.add_user("carol", "carol-pass")
    put(server.client(), server.url("first.bin"), body)
    after_first = server.stored_bytes()
    assert after_first >= len(body)
    put(server.client("carol"), server.url("other-name.bin"), body)
    assert server.stored_bytes() - after_first < len(body) // 100

    edited = body[: 32 * MIB] + b"x" * 100 + body[32 * MIB :]
    put(server.client(), server.url("first.bin"), edited)
    assert server.stored_bytes() - after_first < 10 * MIB
    assert server.client().get(server.url("first.bin")).content == edited
    assert server.client("carol").get(server.url("other-name.bin")).content == body
