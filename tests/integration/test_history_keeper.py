"""A running server expires history in the background (`history_interval`), on both
stacks: old versions beyond `versions_max_count` are dropped and trash items older
than `trash_retention` are purged without anyone running `gc`."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import STACKS
from tests.support.api import answer, api
from tests.support.dav import put
from tests.support.servers import RunningServer


def eventually(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert check()


@pytest.mark.parametrize("stack", STACKS)
def test_a_running_server_thins_versions_and_purges_old_trash(make_server: Any, stack: str) -> None:
    server: RunningServer = make_server(stack, history_interval=1, versions_max_count=1)
    admin = server.client()
    for n in range(4):
        put(admin, server.url("a.bin"), bytes([n]) * 2000)
    put(admin, server.url("old.txt"), b"deleted long ago")
    put(admin, server.url("new.txt"), b"deleted just now")
    assert admin.delete(server.url("old.txt")).status_code == 204
    with server.services.catalog.db.connection(write=True) as conn:  # 31 days ago
        conn.execute(text("UPDATE node SET trashed_at = trashed_at - 31 * 86400"))
    assert admin.delete(server.url("new.txt")).status_code == 204

    def versions() -> list[dict[str, Any]]:
        found = answer(admin.get(api(server, "versions"), params={"path": "a.bin"}), 200)
        return list(found["versions"])

    def trash() -> list[str]:
        return [item["path"] for item in answer(admin.get(api(server, "trash")), 200)["items"]]

    eventually(lambda: len(versions()) == 1 and trash() == ["/new.txt"])
    assert versions()[0]["size"] == 2000
    assert admin.get(server.url("a.bin")).content == bytes([3]) * 2000
