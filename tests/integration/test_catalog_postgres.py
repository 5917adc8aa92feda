"""Catalog statements that differ by dialect, run on the test PostgreSQL server."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Connection, NullPool, create_engine, text
from sqlalchemy import exc as sa_exc

from providers.catalog import Catalog
from providers.catalog import db as db_module
from providers.catalog.changes import bump_revs
from providers.catalog.content import CLAIM_DEDUP
from providers.catalog.records import ExtentRecord, NewContent
from providers.catalog.rows import subtree_file_bytes, subtrees_file_bytes
from providers.catalog.schema import Node
from providers.errors import Unavailable
from tests.services.postgres import PostgresService
from tests.unit.test_catalog import check_claim_many, check_commit_rows, commit, stored_content


@pytest.fixture
def pg_catalog(postgres_service: PostgresService) -> Iterator[Catalog]:
    catalog = Catalog(postgres_service.create_database())
    catalog.create_schema()
    yield catalog
    catalog.close()


def test_claim_many_on_postgres(pg_catalog: Catalog) -> None:
    check_claim_many(pg_catalog)


def test_commit_rows_on_postgres(pg_catalog: Catalog) -> None:
    check_commit_rows(pg_catalog, pg_catalog.users.create("alice", "hash"))


def _kill_other_connections(catalog: Catalog) -> int:
    """Terminate every session of the catalog's database, from a connection of its own
    outside the catalog's pool (as a database restart would)."""
    url = catalog.db.engine.url.render_as_string(hide_password=False)
    killer = create_engine(url, poolclass=NullPool)
    try:
        with killer.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalar()
    finally:
        killer.dispose()
    return int(killed or 0)


def _users(catalog: Catalog, together: threading.Barrier | None = None) -> int:
    with catalog.db.connection() as conn:
        users = int(conn.exec_driver_sql('SELECT count(*) FROM "user"').scalar() or 0)
        if together is not None:  # hold this connection until the others hold theirs
            together.wait(timeout=10)
        return users


def test_a_rested_connection_that_died_is_replaced_before_use(
    pg_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pooled connections are pinged only after resting (`PING_AFTER_REST`): a dead
    one is replaced then, unseen by the caller; one in steady use is not pinged, so
    its death fails one transaction (503), and the pool is renewed for the next."""
    both_held = threading.Barrier(2)  # two pooled connections, both used just now
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: _users(pg_catalog, both_held), range(2)))
    monkeypatch.setattr(db_module, "PING_AFTER_REST", 3600.0)
    assert _kill_other_connections(pg_catalog) == 2
    with pytest.raises(Unavailable):  # in steady use: not pinged, the death shows once
        _users(pg_catalog)
    assert _users(pg_catalog) == 0  # the pool was renewed

    _users(pg_catalog)
    monkeypatch.setattr(db_module, "PING_AFTER_REST", 0.0)  # every connection has rested
    assert _kill_other_connections(pg_catalog) >= 1
    assert _users(pg_catalog) == 0  # pinged, found dead, replaced: no error


@pytest.fixture
def retried(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Every deadlock or serialization failure the catalog meets from now on, even
    one its retry absorbs (and which `pg_stat_database` may not count yet)."""
    seen: list[BaseException] = []
    is_retryable = db_module._is_retryable

    def recording(error: sa_exc.DBAPIError) -> bool:
        if is_retryable(error):
            seen.append(error)
        return is_retryable(error)

    monkeypatch.setattr(db_module, "_is_retryable", recording)
    return seen


def test_commits_sharing_chunks_in_any_order_never_deadlock(
    pg_catalog: Catalog, retried: list[BaseException]
) -> None:
    """Commits settle their chunks before the log's order lock, side by side: files
    made of the same chunks in different orders, committed by four threads at once,
    all commit, and none meets a deadlock, not even one its retry would absorb (it
    would stall a commit for a second)."""
    alice = pg_catalog.users.create("alice", "hash")
    pieces = [b"piece %d" % n for n in range(6)]

    def commit_rotated(worker: int) -> list[int]:
        ids = []
        for round_ in range(12):
            turn = (worker + round_) % len(pieces)
            order = pieces[turn:] + pieces[:turn]
            node, _ = commit(
                pg_catalog,
                alice,
                alice.home_id,
                f"f{worker}-{round_}",
                stored_content(pg_catalog, *order),
            )
            ids.append(node.id)
        return ids

    with ThreadPoolExecutor(4) as pool:
        committed = [i for ids in pool.map(commit_rotated, range(4)) for i in ids]
    assert len(set(committed)) == 48
    assert len(pg_catalog.tree.children(alice.home_id)) == 48
    assert retried == []


def test_claims_of_the_same_chunks_in_any_order_never_deadlock(
    pg_catalog: Catalog, retried: list[BaseException]
) -> None:
    """Uploads claim their chunks in transactions of their own, side by side: four
    threads claiming the same stored chunks in rotated orders all get them as
    duplicates, and none meets a deadlock (a claim is not retried: its writer would
    get an error)."""
    pieces = {hashlib.sha256(b"piece %d" % n).hexdigest(): 7 for n in range(6)}
    pg_catalog.contents.claim_many(pieces)
    alice = pg_catalog.users.create("alice", "hash")
    extents = [ExtentRecord(offset=7 * n, size=7, chunk_hash=h) for n, h in enumerate(pieces)]
    commit(
        pg_catalog, alice, alice.home_id, "all", NewContent(size=42, digest="d", extents=extents)
    )
    hashes = list(pieces)

    def claim_rotated(worker: int) -> set[str]:
        answers = set()
        for round_ in range(100):
            turn = (worker + round_) % len(hashes)
            order = hashes[turn:] + hashes[:turn]
            answers |= set(pg_catalog.contents.claim_many({h: 7 for h in order}).values())
        return answers

    with ThreadPoolExecutor(4) as pool:
        answers = set().union(*pool.map(claim_rotated, range(4)))
    assert answers == {CLAIM_DEDUP}
    assert retried == []


# the sequential scans of `node` the transaction has made so far (no lag within it)
_NODE_SCANS = text(
    "SELECT COALESCE(seq_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = 'node'"
)


def _copy_node(conn: Connection, node_id: int, times: int) -> None:
    """Insert `times` copies of node `node_id` beside it (names suffixed 1..times),
    then ANALYZE, so the planner knows the tree's size."""
    copied = [c.name for c in Node.__table__.columns if c.name not in ("id", "name", "name_key")]
    columns = ", ".join(copied)
    many_copies = text(
        f"INSERT INTO node (name, name_key, {columns})"
        f" SELECT name || g, name_key || g, {columns}"
        " FROM node, generate_series(1, :times) AS g WHERE id = :node"
    )
    conn.execute(many_copies, {"node": node_id, "times": times})
    conn.exec_driver_sql("ANALYZE node")


def test_a_bump_reads_the_chain_by_key_not_the_tree(pg_catalog: Catalog) -> None:
    """Setting the `rev` of a file and its folders (every logged change does it) looks
    the chain up by key in a tree of 10,000 nodes: a plan that scans every node makes
    each commit grow with the tree (design invariant 26)."""
    alice = pg_catalog.users.create("alice", "hash")
    file, _ = commit(pg_catalog, alice, alice.home_id, "f", stored_content(pg_catalog, b"x"))
    with pg_catalog.db.connection(write=True) as conn:
        _copy_node(conn, file.id, 10000)
        before = conn.execute(_NODE_SCANS).scalar_one()
        bump_revs(conn, file.id, 10**9)
        assert conn.execute(_NODE_SCANS).scalar_one() == before
        bumped = conn.execute(text("SELECT id FROM node WHERE rev = 1000000000")).scalars()
        assert set(bumped) == {file.id, alice.home_id}


def test_subtree_sums_read_the_subtree_not_the_tree(pg_catalog: Catalog) -> None:
    """A folder's size (a trash item's, the trash's, a listing's folders') walks down
    from the folder by the parent_id index in a tree of 10,000 nodes: joining the walk
    to `node` scanned every node (and a listing's walk hashed each level against
    another scan), so every sum grew with the tree (design invariant 26)."""
    alice = pg_catalog.users.create("alice", "hash")
    home = alice.home_id
    top = pg_catalog.tree.mkdir(home, "a", alice.id, "/a")
    sub = pg_catalog.tree.mkdir(top.id, "b", alice.id, "/a/b")
    empty = pg_catalog.tree.mkdir(top.id, "c", alice.id, "/a/c")
    commit(pg_catalog, alice, top.id, "f", stored_content(pg_catalog, b"abc"))
    commit(pg_catalog, alice, sub.id, "g", stored_content(pg_catalog, b"defgh"))
    many, _ = commit(pg_catalog, alice, home, "m", stored_content(pg_catalog, b"x"))
    with pg_catalog.db.connection(write=True) as conn:
        _copy_node(conn, many.id, 10000)
        before = conn.execute(_NODE_SCANS).scalar_one()
        sizes = [subtree_file_bytes(conn, folder.id) for folder in (top, sub, empty)]
        listed = subtrees_file_bytes(conn, [top.id, sub.id, empty.id])
        assert conn.execute(_NODE_SCANS).scalar_one() == before
    assert sizes == [8, 5, 0]
    assert sorted(listed) == sorted([(top.id, 8), (sub.id, 5)])  # no file: not listed
