"""`DirectRead` and `DirectWrite` (providers.catalog.direct) on SQLite and PostgreSQL:
the rows SQLAlchemy would give, by position and by column name; writes return what
they were asked to return (and nothing else), count what they changed, and fill a
column's constant default; statements that need SQLAlchemy at run time still get it;
driver errors come out as SQLAlchemy's, and the engine's cursor events (the query
metrics) see every direct statement. Also the change log's order lock, asked once per
transaction."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Boolean, bindparam, cast, column, literal, select, table, update
from sqlalchemy import exc as sa_exc
from sqlmodel import col

from providers.catalog import Catalog
from providers.catalog.changes import lock_log
from providers.catalog.db import on_query
from providers.catalog.direct import DirectRead, DirectWrite, insert_values
from providers.catalog.schema import Node, User


@pytest.fixture(autouse=True)
def _three_users(catalog: Catalog) -> None:
    for name in ("alice", "bob", "carol"):
        catalog.users.create(name, f"hash-{name}")


# A join, a literal of the query's own ('dir') and a parameter of the caller's.
HOMES: Any = (
    select(col(User.name), col(User.used_bytes), col(Node.kind), col(Node.name).label("home"))
    .join(Node, col(Node.id) == col(User.home_id))
    .where(col(Node.kind) == "dir", col(User.name) != bindparam("skip"))
    .order_by(col(User.name))
)


def _both(catalog: Catalog, statement: Any, params: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(SQLAlchemy's rows as tuples, DirectRead's rows) in one read transaction."""
    with catalog.db.connection() as conn:
        expected = [tuple(row) for row in conn.execute(statement, params)]
        return expected, DirectRead(statement).rows(conn, params)


def test_rows_are_those_sqlalchemy_gives_by_position_and_by_name(catalog: Catalog) -> None:
    expected, rows = _both(catalog, HOMES, {"skip": "bob"})
    assert [tuple(row) for row in rows] == expected
    assert [row[0] for row in rows] == ["alice", "carol"]
    assert [(row.name, row.used_bytes, row.kind) for row in rows] == [
        ("alice", 0, "dir"),
        ("carol", 0, "dir"),
    ]
    with catalog.db.connection() as conn:
        first = DirectRead(HOMES).first(conn, {"skip": "nobody"})
        assert first is not None and first.name == "alice"
        assert DirectRead(HOMES.where(col(User.name) == "zed")).first(conn, {"skip": ""}) is None


def test_one_instance_serves_either_database_and_many_calls(catalog: Catalog) -> None:
    read = DirectRead(HOMES)
    with catalog.db.connection() as conn:
        for skip in ("alice", "bob", "carol", "alice"):
            names = [row.name for row in read.rows(conn, {"skip": skip})]
            assert names == sorted({"alice", "bob", "carol"} - {skip})


def test_a_converting_column_still_converts(catalog: Catalog) -> None:
    """SQLite has no boolean: SQLAlchemy turns its 1 into True, and so must this."""
    statement: Any = select(cast(literal(1), Boolean).label("yes"))
    with catalog.db.connection() as conn:
        row = DirectRead(statement).first(conn, {})
    assert row is not None and row.yes is True


def test_an_expanding_in_list_still_works(catalog: Catalog) -> None:
    statement: Any = select(col(User.name)).where(
        col(User.name).in_(bindparam("names", expanding=True))
    )
    expected, rows = _both(catalog, statement.order_by(col(User.name)), {"names": ["carol", "bob"]})
    assert [tuple(row) for row in rows] == expected == [("bob",), ("carol",)]


def test_a_driver_error_comes_out_as_sqlalchemys(catalog: Catalog) -> None:
    statement: Any = select(column("x")).select_from(table("no_such_table"))
    with pytest.raises(sa_exc.DBAPIError), catalog.db.engine.connect() as conn:
        DirectRead(statement).rows(conn, {})


def test_the_query_callbacks_see_direct_reads(catalog: Catalog) -> None:
    seen: list[tuple[float, bool]] = []
    on_query(catalog.db, lambda seconds, failed: seen.append((seconds, failed)))
    with catalog.db.connection() as conn:
        conn.exec_driver_sql("SELECT 1")  # the transaction's BEGIN (SQLite) counts too
        seen.clear()
        DirectRead(HOMES).rows(conn, {"skip": ""})
    assert len(seen) == 1 and seen[0][0] >= 0 and not seen[0][1]


def test_the_query_callbacks_see_a_failed_direct_statement_once(catalog: Catalog) -> None:
    seen: list[tuple[float, bool]] = []
    on_query(catalog.db, lambda seconds, failed: seen.append((seconds, failed)))
    statement: Any = select(column("x")).select_from(table("no_such_table"))
    with pytest.raises(sa_exc.DBAPIError), catalog.db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        seen.clear()
        started = time.perf_counter()
        try:
            DirectRead(statement).rows(conn, {})
        finally:
            spent = time.perf_counter() - started
    assert len(seen) == 1 and seen[0][1], seen
    assert 0 < seen[0][0] <= spent  # its own time, not zero


def _home_id(catalog: Catalog, user: str) -> int:
    with catalog.db.connection() as conn:
        row = DirectRead(select(col(User.home_id)).where(col(User.name) == user)).first(conn, {})
    assert row is not None
    return int(row.home_id)


def new_folder() -> Any:
    """A fresh statement each time: SQLAlchemy memoizes a statement's columns, and a
    copy made by `returning()` afterwards would keep them."""
    return insert_values(
        Node, ("parent_id", "name", "name_key", "kind", "owner_id", "mtime", "created")
    )


def _folder(parent: int, name: str) -> dict[str, Any]:
    return dict(
        parent_id=parent, name=name, name_key=name, kind="dir", owner_id=1, mtime=1, created=2
    )


def test_an_insert_returns_what_it_is_asked_and_fills_constant_defaults(catalog: Catalog) -> None:
    home = _home_id(catalog, "alice")
    returning = DirectWrite(new_folder().returning(col(Node.id)))
    plain = DirectWrite(new_folder())  # PostgreSQL would add RETURNING of the key
    with catalog.db.connection(write=True) as conn:
        made = returning.run(conn, _folder(home, "a"))
        assert plain.run(conn, _folder(home, "b")).rows == []
    assert len(made.rows) == 1 and made.rowcount == 1
    with catalog.db.connection() as conn:
        stored = conn.execute(
            select(col(Node.name), col(Node.id), col(Node.size), col(Node.rev), col(Node.mtime))
            .where(col(Node.parent_id) == home)
            .order_by(col(Node.name))
        ).all()
    assert [(name, size, rev, mtime) for name, _, size, rev, mtime in stored] == [
        ("a", 0, 0, 1.0),  # size and rev: the columns' defaults; mtime made a float
        ("b", 0, 0, 1.0),
    ]
    assert made.rows[0].id == stored[0][1]


def test_an_update_counts_the_rows_it_changed_and_many_run_as_one_call(catalog: Catalog) -> None:
    home = _home_id(catalog, "bob")
    rename: Any = (
        update(Node).where(col(Node.parent_id) == bindparam("parent")).values(mtime=bindparam("at"))
    )
    with catalog.db.connection(write=True) as conn:
        DirectWrite(new_folder()).run_many(conn, [_folder(home, n) for n in ("x", "y", "z")])
        assert DirectWrite(rename).run(conn, {"parent": home, "at": 5}).rowcount == 3
        assert DirectWrite(rename).run(conn, {"parent": -1, "at": 5}).rowcount == 0
        DirectWrite(new_folder()).run_many(conn, [])  # nothing to do: no call


def test_a_default_computed_in_python_still_gets_computed(catalog: Catalog) -> None:
    """Node.name_key left out: SQLAlchemy computes it from the name, so the statement
    runs through SQLAlchemy rather than the driver."""
    home = _home_id(catalog, "carol")
    without_key: Any = insert_values(
        Node, ("parent_id", "name", "kind", "owner_id", "mtime", "created")
    )
    row = _folder(home, "cafe\u0301")  # decomposed: its key is the composed form
    del row["name_key"]
    with catalog.db.connection(write=True) as conn:
        DirectWrite(without_key).run(conn, row)
        key = conn.execute(select(col(Node.name_key)).where(col(Node.parent_id) == home)).scalar()
    assert key == "caf\u00e9"


def test_the_log_order_lock_is_asked_once_per_transaction(catalog: Catalog) -> None:
    sent: list[float] = []
    on_query(catalog.db, lambda seconds, failed: sent.append(seconds))
    for _ in range(2):  # a second transaction asks again
        with catalog.db.connection(write=True) as conn:
            conn.exec_driver_sql("SELECT 1")
            sent.clear()
            lock_log(conn)
            lock_log(conn)
            assert len(sent) == (1 if conn.dialect.name == "postgresql" else 0)
