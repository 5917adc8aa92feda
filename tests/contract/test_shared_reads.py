"""`Database.reading()` on SQLite and PostgreSQL: a request's reads share one
transaction, and a write on the same thread is seen by the reads after it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import event, text

from providers.catalog import Catalog
from providers.errors import Unavailable


def _count_begins(catalog: Catalog) -> list[int]:
    begins = [0]

    @event.listens_for(catalog.db.engine, "begin")
    def _begun(_conn: object) -> None:
        begins[0] += 1

    return begins


def _names(catalog: Catalog) -> set[str]:
    return set(catalog.users.names())


def test_reads_in_a_reading_block_share_one_transaction(catalog: Catalog) -> None:
    catalog.users.create("alice", "hash")
    begins = _count_begins(catalog)
    with catalog.db.reading():
        for _ in range(5):
            assert catalog.users.get("alice") is not None
            assert _names(catalog) == {"alice"}
    assert begins[0] == 1
    catalog.users.get("alice")
    assert begins[0] == 2  # outside the block each read is its own transaction again


def test_a_write_on_the_same_thread_is_seen_by_the_reads_after_it(catalog: Catalog) -> None:
    catalog.users.create("alice", "hash")
    with catalog.db.reading():
        assert _names(catalog) == {"alice"}
        catalog.users.create("bob", "hash")
        assert _names(catalog) == {"alice", "bob"}


def test_a_block_keeps_one_snapshot_against_other_threads(catalog: Catalog) -> None:
    catalog.users.create("alice", "hash")
    with catalog.db.reading():
        assert _names(catalog) == {"alice"}
        other = threading.Thread(target=catalog.users.create, args=("carol", "hash"))
        other.start()
        other.join(30)
        seen = _names(catalog)
    # SQLite's snapshot holds for the whole transaction; PostgreSQL's read committed
    # sees each committed write at the next statement. Either way nothing breaks.
    assert seen in ({"alice"}, {"alice", "carol"})
    assert _names(catalog) == {"alice", "carol"}


def test_a_failed_read_does_not_spoil_the_reads_after_it(catalog: Catalog) -> None:
    catalog.users.create("alice", "hash")
    with catalog.db.reading():
        with pytest.raises(Exception), catalog.db.connection() as conn:  # noqa: B017
            conn.execute(text("SELECT no_such_column FROM chunk"))
        assert _names(catalog) == {"alice"}
        assert catalog.users.get("alice") is not None


def test_reading_blocks_nest_and_are_per_thread(catalog: Catalog) -> None:
    catalog.users.create("alice", "hash")
    begins = _count_begins(catalog)
    seen: list[set[str]] = []
    with catalog.db.reading():
        with catalog.db.reading():
            assert _names(catalog) == {"alice"}
        assert _names(catalog) == {"alice"}
        thread = threading.Thread(target=lambda: seen.append(_names(catalog)))
        thread.start()
        thread.join(30)
    assert seen == [{"alice"}]
    assert begins[0] == 2  # this thread's block, and the other thread's own read


def test_a_database_that_is_gone_is_unavailable_inside_a_block(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'missing' / 'catalog.db'}")
    with catalog.db.reading(), pytest.raises(Unavailable):
        catalog.users.get("alice")
    catalog.close()


def _in_use_at_rest(catalog: Catalog) -> int:
    """Connections out of the pool when no request holds one, after a first write:
    on SQLite the process's write connection, kept open between writes."""
    with catalog.db.connection(write=True):
        pass
    return int(catalog.db.engine.pool.checkedout())  # type: ignore[attr-defined]


def test_a_write_gives_the_block_s_connection_back_before_taking_its_own(
    catalog: Catalog,
) -> None:
    catalog.users.create("alice", "hash")
    pool = catalog.db.engine.pool
    at_rest = _in_use_at_rest(catalog)
    write_takes = 0 if catalog.db.is_sqlite else 1  # SQLite writes on its kept one
    with catalog.db.reading():
        assert _names(catalog) == {"alice"}
        assert pool.checkedout() == at_rest + 1  # type: ignore[attr-defined]
        with catalog.db.connection(write=True):
            # only the write's own: the block's was given back
            assert pool.checkedout() == at_rest + write_takes  # type: ignore[attr-defined]
        begins = _count_begins(catalog)
        assert _names(catalog) == {"alice"}
        assert _names(catalog) == {"alice"}
        assert begins[0] == 2  # after the write, each read is its own transaction
        with catalog.db.reading():  # a block opened after the write shares anew
            assert _names(catalog) == {"alice"}
            assert _names(catalog) == {"alice"}
        assert begins[0] == 3
    assert pool.checkedout() == at_rest  # type: ignore[attr-defined]


def test_a_write_inside_a_read_of_the_block_leaves_that_read_whole(catalog: Catalog) -> None:
    catalog.users.create("alice", "hash")
    pool = catalog.db.engine.pool
    at_rest = _in_use_at_rest(catalog)
    with catalog.db.reading():
        with catalog.db.connection() as shared:
            catalog.users.create("bob", "hash")  # a write while the shared read is in use
            assert shared.execute(text('SELECT count(*) FROM "user"')).scalar() is not None
        assert _names(catalog) == {"alice", "bob"}
    assert pool.checkedout() == at_rest  # type: ignore[attr-defined]


def test_a_block_ends_its_read_transaction_with_a_commit(catalog: Catalog) -> None:
    """Not a ROLLBACK: psycopg drops a connection's prepared statements on one."""
    catalog.users.create("alice", "hash")
    ends: list[str] = []
    event.listen(catalog.db.engine, "commit", lambda _conn: ends.append("commit"))
    event.listen(catalog.db.engine, "rollback", lambda _conn: ends.append("rollback"))
    with catalog.db.reading():
        assert _names(catalog) == {"alice"}
    with catalog.db.reading():
        assert _names(catalog) == {"alice"}
        catalog.users.create("bob", "hash")  # the write ends the block's transaction
    assert ends == ["commit", "commit", "commit"]
