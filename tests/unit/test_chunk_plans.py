"""Statements that name chunks look them up by hash on SQLite, whatever the store
holds (design invariant 26): a plan by the chunk state's index read every stored
chunk, one by the owner's index every node they own, so claims, commits and the delta
API's presence checks slowed down as the store grew (the soak's throughput halved in
20 minutes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert

from providers.catalog import Catalog, ExtentRecord, NewContent
from providers.catalog.schema import Chunk
from tests.unit.test_catalog import commit

STORED = 2000  # enough rows that the plan matters; SQLite keeps no statistics here
# indexes on columns with a handful of values: no request's plan may be driven by them
UNSELECTIVE = ("ix_chunk_state", "ix_node_owner_id")


def _hash(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def plans() -> Iterator[dict[str, list[str]]]:
    """The query plan (its steps) of every statement naming `chunk` or `extent` run
    through SQLAlchemy from now on, by statement."""
    seen: dict[str, list[str]] = {}

    def explain(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        names_chunks = " chunk" in statement or " extent" in statement
        if (
            names_chunks
            and not many
            and statement.lstrip().upper().startswith(("SELECT", "UPDATE"))
        ):
            rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            seen[statement] = [row[3] for row in rows]

    event.listen(Engine, "before_cursor_execute", explain)
    yield seen
    event.remove(Engine, "before_cursor_execute", explain)


def test_claims_commits_and_presence_look_chunks_up_by_hash(
    catalog: Catalog, plans: dict[str, list[str]]
) -> None:
    with catalog.db.connection(write=True) as conn:
        rows = [
            {"hash": _hash(n), "size": 7, "state": "stored", "touched_at": 0.0, "created_at": 0.0}
            for n in range(STORED)
        ]
        conn.execute(insert(Chunk), rows)
    wanted = {_hash(n): 7 for n in range(10, 16)}
    alice = catalog.users.create("alice", "hash")

    assert set(catalog.contents.claim_many(wanted).values()) == {"dedup"}
    extents = [ExtentRecord(offset=7 * n, size=7, chunk_hash=h) for n, h in enumerate(wanted)]
    commit(catalog, alice, alice.home_id, "f", NewContent(size=42, digest="d", extents=extents))
    present = catalog.blocks.present_for(alice.id, [*wanted, _hash(20)]).present
    assert set(present) == set(wanted)

    updates = [s for s in plans if s.lstrip().upper().startswith("UPDATE CHUNK")]
    assert len(updates) >= 2  # the claim's and the commit's
    assert any(" extent" in s and "owner_id" in s for s in plans)  # the presence check
    for statement, steps in plans.items():
        assert not [step for step in steps if any(ix in step for ix in UNSELECTIVE)], (
            statement,
            steps,
        )
    for statement in updates:
        reads = [step for step in plans[statement] if step.startswith(("SEARCH", "SCAN"))]
        assert all("(hash=?)" in step for step in reads), reads
