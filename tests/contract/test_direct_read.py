"""`DirectRead` (providers.catalog.direct) on SQLite and PostgreSQL: the rows SQLAlchemy
would give, by position and by column name; statements that need SQLAlchemy's
conversions still get them; driver errors come out as SQLAlchemy's, and the engine's
cursor events (the query metrics) see every direct read."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Boolean, bindparam, cast, column, literal, select, table
from sqlalchemy import exc as sa_exc
from sqlmodel import col

from providers.catalog import Catalog
from providers.catalog.db import on_query
from providers.catalog.direct import DirectRead
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
