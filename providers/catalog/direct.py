"""Lookups run straight on the database driver's cursor (`DirectRead`).

SQLAlchemy's execution of a cached statement (its execution context, result object
and events) costs several times what SQLite takes to find a row by key, and every
request makes four to six such lookups (its login, its path, its content). A
`DirectRead` compiles its SELECT once per dialect and then hands the SQL text and the
parameters to the driver's cursor of the caller's connection, in the caller's
transaction, and returns its rows as named tuples (by position or by column name).

Only statements that need nothing from SQLAlchemy at run time go this way: no
parameter or column type that converts values (a Boolean on SQLite, say) and no
expanding IN list. Any other runs through `Connection.execute` as usual, with the same
result. A driver error goes through SQLAlchemy's own handling, so it is wrapped (and a
lost connection invalidated) exactly as for `Connection.execute`, and the statement's
time reaches the engine's cursor events (the metrics of `db.on_query`).
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import Select


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled for one dialect; `sql` None: it runs through SQLAlchemy."""

    sql: str | None
    fixed: dict[str, Any]  # parameters with values of their own (literals in the query)
    order: tuple[str, ...] | None  # parameter names in position order (positional drivers)


class DirectRead:
    """A SELECT that `rows` runs on the driver's cursor (see the module docstring).
    Safe to share between threads: what it compiles is kept per dialect."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self._statement = statement
        self._row: Any = namedtuple("Row", statement.selected_columns.keys(), rename=True)  # type: ignore[misc]
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row the statement selects with `params`, as named tuples."""
        compiled = self._compiled.get(conn.dialect.name) or self._compile(conn.dialect)
        make = self._row._make
        if compiled.sql is None:
            return [make(row) for row in conn.execute(self._statement, dict(params))]
        values = {**compiled.fixed, **params}
        bound: Any = values if compiled.order is None else [values[n] for n in compiled.order]
        return [make(row) for row in _run(conn, compiled.sql, bound)]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        """The first row, or None."""
        found = self.rows(conn, params)
        return found[0] if found else None

    def _compile(self, dialect: Dialect) -> _Compiled:
        with self._lock:
            compiled = self._compiled.get(dialect.name)
            if compiled is None:
                compiled = _compile(self._statement, dialect)
                self._compiled[dialect.name] = compiled
            return compiled


def _compile(statement: Select[*tuple[Any, ...]], dialect: Dialect) -> _Compiled:
    """`statement` compiled for `dialect`, or `_Compiled(None, ...)` when it needs
    SQLAlchemy at run time (see the module docstring)."""
    compiled = statement.compile(dialect=dialect)
    binds = list(compiled.binds.values())
    converts = any(
        b.expanding or b.callable or b.type.bind_processor(dialect) for b in binds
    ) or any(column.type.result_processor(dialect, None) for column in statement.selected_columns)
    later = compiled.literal_execute_params or compiled.post_compile_params
    if converts or later or compiled.escaped_bind_names:
        return _Compiled(None, {}, None)
    # keyed by the names the compiled SQL gives them (a literal's are made up)
    fixed = {name: b.value for name, b in compiled.binds.items() if b.value is not None}
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return _Compiled(compiled.string, fixed, order)


def _run(conn: Connection, sql: str, bound: Any) -> list[tuple[Any, ...]]:
    """`sql` with `bound` on a cursor of `conn`'s driver connection, in its
    transaction (begun first if none is open, as `Connection.execute` would)."""
    if not conn.in_transaction():
        conn.begin()
    driver = conn.connection.dbapi_connection
    assert driver is not None, "a connection in use has its driver connection"
    dispatch = conn.dispatch
    cursor = driver.cursor()
    try:
        dispatch.before_cursor_execute(conn, cursor, sql, bound, None, False)
        cursor.execute(sql, bound)
        found = list(cursor.fetchall())
        dispatch.after_cursor_execute(conn, cursor, sql, bound, None, False)
        return found
    except conn.dialect.loaded_dbapi.Error as e:
        conn._handle_dbapi_exception(e, sql, bound, cursor, None)  # raises it, wrapped
        raise AssertionError("unreachable") from e
    finally:
        cursor.close()
