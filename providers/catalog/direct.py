"""Statements run straight on the database driver's cursor (`DirectRead`,
`DirectWrite`).

SQLAlchemy's execution of a cached statement (its execution context, result object
and events) costs several times what SQLite takes to find a row by key, and every
request makes four to six such lookups (its login, its path, its content) and every
upload a dozen writes in its commit. A direct statement is compiled once per dialect;
then the SQL text and the parameters go to the driver's cursor of the caller's
connection, in the caller's transaction, and rows come back as named tuples (by
position or by column name).

Only statements that need nothing from SQLAlchemy at run time go this way: no result
column whose type converts values (a Boolean on SQLite, say), no expanding IN list, no
parameter computed at run time, no column default computed in Python. Parameter types
that convert values on the way in (a Float's `float()`) are applied here, as
SQLAlchemy would, and a column's constant default is a fixed parameter. Any other
statement runs through `Connection.execute` as usual, with the same result. A driver
error goes through SQLAlchemy's own handling, so it is wrapped (and a lost connection
invalidated) exactly as for `Connection.execute`. The statement's time goes to the
callbacks `watch_statements` registers for the engine (the metrics of `db.on_query`),
called directly: dispatching SQLAlchemy's cursor events cost as much as the statements
took on SQLite.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Dialect, bindparam, func, insert
from sqlalchemy.sql import Insert, Select, Update
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.schema import ScalarElementColumnDefault

Statement = Select[*tuple[Any, ...]] | Insert | Update
QueryCallback = Callable[[float, bool], None]
QUERY_STARTED = "davserver_query_started"  # a connection's stack of statement start times
# per engine (its dialect: the engine's own, shared by its option engines, kept by
# `dispose`), the callbacks told each direct statement's time
_WATCHERS: weakref.WeakKeyDictionary[Dialect, tuple[QueryCallback, ...]] = (
    weakref.WeakKeyDictionary()
)


def watch_statements(dialect: Dialect, callback: QueryCallback) -> None:
    """Call `callback(seconds, False)` after each direct statement run on a connection
    of the engine whose dialect is `dialect`. A failed one is not reported here: it
    reaches the engine's `handle_error` listeners (as any failed statement does) with
    its start time pushed on the connection's `info[QUERY_STARTED]`."""
    _WATCHERS[dialect] = (*_WATCHERS.get(dialect, ()), callback)


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled for one dialect; `sql` None: it runs through SQLAlchemy."""

    sql: str | None
    fixed: dict[str, Any]  # parameters with values of their own (literals, defaults)
    order: tuple[str, ...] | None  # parameter names in position order (positional drivers)
    convert: tuple[tuple[str, Callable[[Any], Any]], ...] = ()  # each parameter's type
    options: dict[str, Any] = field(default_factory=dict)  # the driver's `execute` keywords

    def bind(self, params: Mapping[str, Any]) -> Any:
        """The driver's parameters: `params` over the fixed ones, converted, in
        position order for a positional driver."""
        values = {**self.fixed, **params}
        for name, convert in self.convert:
            values[name] = convert(values[name])
        return values if self.order is None else [values[n] for n in self.order]


@dataclass(frozen=True)
class Outcome:
    """What a statement did: the rows it returned (a SELECT's, or RETURNING), how many
    it changed."""

    rows: list[Any]
    rowcount: int


class _Direct:
    """What both kinds share: the statement, its row type, its compilation per dialect.
    Safe to share between threads. `prepared=False`: psycopg never prepares it, so
    PostgreSQL plans it for the values of each call (a generic plan of a recursive
    query over `node` took 8-24 ms where a custom one takes 0.2 ms)."""

    def __init__(self, statement: Statement, *, prepared: bool = True) -> None:
        self._statement: Any = statement
        self._prepared = prepared
        names = list(map(str, statement.exported_columns.keys()))
        self._row: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is not None:
            return compiled
        with self._lock:
            compiled = self._compiled.get(dialect.name)
            if compiled is None:
                compiled = _compile(self._statement, dialect)
                if not self._prepared and dialect.driver == "psycopg":
                    compiled = replace(compiled, options={"prepare": False})
                self._compiled[dialect.name] = compiled
            return compiled


class DirectRead(_Direct):
    """A SELECT that `rows` runs on the driver's cursor (see the module docstring).
    With `row` (a named tuple type whose fields are the statement's columns, in their
    order) rows come back as that type."""

    def __init__(
        self,
        statement: Select[*tuple[Any, ...]],
        *,
        prepared: bool = True,
        row: type[tuple[Any, ...]] | None = None,
    ) -> None:
        super().__init__(statement, prepared=prepared)
        if row is not None:
            self._row = row

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row the statement selects with `params`, as named tuples."""
        compiled = self._for(conn.dialect)
        make = self._row._make
        if compiled.sql is None:
            return [make(row) for row in conn.execute(self._statement, dict(params))]
        done = _run(conn, compiled.sql, compiled.bind(params), options=compiled.options)
        return [make(row) for row in done.rows]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        """The first row, or None."""
        found = self.rows(conn, params)
        return found[0] if found else None


class DirectWrite(_Direct):
    """An INSERT or UPDATE (with or without RETURNING) that `run` runs on the driver's
    cursor (see the module docstring). Give an INSERT its columns with `values()`:
    without them SQLAlchemy chooses the columns from each call's parameters."""

    def __init__(self, statement: Insert | Update, *, prepared: bool = True) -> None:
        super().__init__(statement, prepared=prepared)

    def run(self, conn: Connection, params: Mapping[str, Any]) -> Outcome:
        """Run it once with `params`; the rows it returned and how many it changed."""
        compiled = self._for(conn.dialect)
        make = self._row._make
        if compiled.sql is None:
            result = conn.execute(self._statement, dict(params))
            rows = [make(row) for row in result] if result.returns_rows else []
            return Outcome(rows, result.rowcount)
        done = _run(conn, compiled.sql, compiled.bind(params), options=compiled.options)
        return Outcome([make(row) for row in done.rows], done.rowcount)

    def run_many(self, conn: Connection, many: Sequence[Mapping[str, Any]]) -> None:
        """Run it once per item of `many` (no RETURNING), as one driver call."""
        compiled = self._for(conn.dialect)
        if compiled.sql is None:
            conn.execute(self._statement, [dict(params) for params in many])
        elif many:
            _run(conn, compiled.sql, [compiled.bind(params) for params in many], many=True)


def run_sql(conn: Connection, sql: str, params: Any = (), *, begin: bool = True) -> int:
    """Run `sql`, a statement returning no rows, with `params` in the driver's own
    parameter style, on the driver's cursor in `conn`'s transaction; how many rows it
    changed. `begin=False`: open no transaction first (the statement is the one that
    opens it, in the engine's `begin` event)."""
    return _run(conn, sql, params, begin=begin).rowcount


def insert_values(
    table: Any, names: Sequence[str], *, using: Callable[[Any], Insert] = insert
) -> Insert:
    """An INSERT into `table` (a model or a Table) of the columns `names`, each bound to
    the parameter of its name: the fixed shape a `DirectWrite` wants. Inline: no
    RETURNING of the new key unless the caller asks for it (`returning`). `using`: the
    INSERT of a dialect, for its ON CONFLICT."""
    return using(table).inline().values({name: bindparam(name) for name in names})


def unindexed(column: Any) -> ColumnElement[Any]:
    """`column` as an expression no index serves, for a filter that must not choose a
    statement's plan. SQLite keeps no statistics here and takes an equality on any
    index as selective: `state = 'stored'` beside a lookup of a few hashes made it
    scan every stored chunk by the state index, `owner_id = ?` every node of the
    owner (design invariant 26). PostgreSQL, which has statistics, plans as before."""
    return func.coalesce(column, column)


def _compile(statement: Statement, dialect: Dialect) -> _Compiled:
    """`statement` compiled for `dialect`, or `_Compiled(None, ...)` when it needs
    SQLAlchemy at run time (see the module docstring)."""
    compiled: Any = statement.compile(dialect=dialect)
    binds = list(compiled.binds.values())
    if any(b.expanding or b.callable for b in binds) or any(
        column.type.result_processor(dialect, None) for column in statement.exported_columns
    ):
        return _Compiled(None, {}, None)
    later = (
        compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.implicit_returning  # rows the caller did not ask for
    )
    defaults = _constant_defaults(compiled)
    if later or compiled.escaped_bind_names or defaults is None:
        return _Compiled(None, {}, None)
    # keyed by the names the compiled SQL gives them (a literal's are made up)
    fixed = {name: b.value for name, b in compiled.binds.items() if b.value is not None}
    fixed.update(defaults)
    convert = tuple(
        (name, processor)
        for name, b in compiled.binds.items()
        if (processor := b.type.bind_processor(dialect)) is not None
    )
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return _Compiled(compiled.string, fixed, order, convert)


def _constant_defaults(compiled: SQLCompiler) -> dict[str, Any] | None:
    """The values of the columns an INSERT or UPDATE leaves to their Python-side
    default, by parameter name; None if one is computed at run time."""
    values: dict[str, Any] = {}
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        default = column.default if column in compiled.insert_prefetch else column.onupdate
        if not isinstance(default, ScalarElementColumnDefault):
            return None
        values[column.key] = default.arg
    return values


def _run(
    conn: Connection,
    sql: str,
    bound: Any,
    *,
    many: bool = False,
    begin: bool = True,
    options: Mapping[str, Any] | None = None,
) -> Outcome:
    """`sql` with `bound` (a list of them if `many`) on a cursor of `conn`'s driver
    connection, in its transaction (begun first if none is open and `begin`, as
    `Connection.execute` would); `options`: keywords of the driver's `execute`."""
    if begin and not conn.in_transaction():
        conn.begin()
    driver = conn.connection.dbapi_connection
    assert driver is not None, "a connection in use has its driver connection"
    watchers = _WATCHERS.get(conn.dialect, ())
    cursor = driver.cursor()
    started = time.perf_counter()
    try:
        if many:
            cursor.executemany(sql, bound)
        else:
            cursor.execute(sql, bound, **(options or {}))
        found = list(cursor.fetchall()) if cursor.description is not None else []
        if watchers:
            spent = time.perf_counter() - started
            for watcher in watchers:
                watcher(spent, False)
        return Outcome(found, cursor.rowcount)
    except conn.dialect.loaded_dbapi.Error as e:
        if watchers:
            conn.info.setdefault(QUERY_STARTED, []).append(started)
        conn._handle_dbapi_exception(e, sql, bound, cursor, None)  # raises it, wrapped
        raise AssertionError("unreachable") from e
    finally:
        cursor.close()
