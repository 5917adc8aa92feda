"""Updates of several chunk rows look the chunks up by hash on SQLite, whatever the
store holds: a plan by the state index scans every stored chunk, so a claim or a
commit would slow down as the store grows (the soak's throughput halved in 20 min)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert

from providers.catalog import Catalog, ExtentRecord, NewContent
from providers.catalog.schema import Chunk
from tests.unit.test_catalog import commit

STORED = 2000  # enough rows that the plan matters; SQLite keeps no statistics here


def _hash(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def chunk_plans() -> Iterator[list[str]]:
    """The query plan of every UPDATE of `chunk` run through SQLAlchemy from now on,
    one line per step."""
    plans: list[str] = []

    def explain(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("UPDATE CHUNK") and not many:
            rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.extend(row[3] for row in rows)

    event.listen(Engine, "before_cursor_execute", explain)
    yield plans
    event.remove(Engine, "before_cursor_execute", explain)


def test_claims_and_commits_of_several_chunks_look_them_up_by_hash(
    catalog: Catalog, chunk_plans: list[str]
) -> None:
    with catalog.db.connection(write=True) as conn:
        rows = [
            {"hash": _hash(n), "size": 7, "state": "stored", "touched_at": 0.0, "created_at": 0.0}
            for n in range(STORED)
        ]
        conn.execute(insert(Chunk), rows)
    wanted = {_hash(n): 7 for n in range(10, 16)}

    assert set(catalog.contents.claim_many(wanted).values()) == {"dedup"}
    alice = catalog.users.create("alice", "hash")
    extents = [ExtentRecord(offset=7 * n, size=7, chunk_hash=h) for n, h in enumerate(wanted)]
    commit(catalog, alice, alice.home_id, "f", NewContent(size=42, digest="d", extents=extents))

    of_chunk = [step for step in chunk_plans if " chunk " in f"{step} "]
    assert len(of_chunk) >= 2  # the claim's and the commit's updates were seen
    assert all("(hash=?)" in step for step in of_chunk), of_chunk
