"""Database access: engine set-up for SQLite and PostgreSQL, sessions, error translation.

`Database.session(write=...)` (ORM) and `Database.connection(write=...)` (Core) are
the ways in, and `run` / `run_core` the same with retries. Each commits on success,
rolls back on error, and translates SQLAlchemy errors: a lost or refused connection
becomes `Unavailable` (answered 503), a constraint violation `Conflict`. On SQLite a
write transaction starts with `BEGIN IMMEDIATE`, so concurrent writers queue on the
database lock instead of failing when a read transaction tries to upgrade. Writers of
one process also queue on a Python lock first, and processes on the same file
(workers, a command run beside a server) on a lock file next to it: SQLite's busy
handler sleeps in growing steps (up to 100 ms) when it finds the database locked,
which made every contended write slow; a lock the kernel hands over wakes the next
writer at once. SQLite's write transactions of a process share one connection, kept
open (`_kept_writer`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, create_engine

from providers.catalog.direct import QUERY_STARTED, QueryCallback, run_sql, watch_statements
from providers.errors import Conflict, StorageError, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
_WRITE_OPTION = "davserver_write"
IN_BATCH = 500  # values per IN list: well under every backend's bound-parameter limit
PING_AFTER_REST = 1.0  # seconds a pooled server connection rests before it is pinged
_RESTED_SINCE = "davserver_rested_since"


def _sqlite_engine(url: str) -> Engine:
    # A connection per busy request thread (a request's reads hold one, see
    # `Database.reading`) and one more for a write: SQLite connections are cheap.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=8,
        max_overflow=120,
        pool_timeout=30,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=60000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        # on the driver's cursor: SQLAlchemy's execution was a tenth of a small PUT's CPU
        run_sql(conn, "BEGIN IMMEDIATE" if write else "BEGIN", begin=False)

    return engine


def _lock_path(database: str | None) -> str | None:
    """The lock file that writers of every process on the SQLite file `database`
    take in turn, or None for an in-memory database."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-writer.lock"


def _open_lock(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise Unavailable(f"database unavailable: cannot open its lock file ({e.strerror})") from e


def _server_engine(url: str) -> Engine:
    connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_timeout=30,
        connect_args=connect_args,
    )
    _ping_rested_connections(engine)
    return engine


def _ping_rested_connections(engine: Engine) -> None:
    """Check a pooled connection before lending it only if it rested `PING_AFTER_REST`
    seconds or more (or is new), instead of before every transaction (`pool_pre_ping`):
    a round trip of its own per transaction was 7 % of a small PUT on PostgreSQL, and
    a connection in steady use has just answered. A dead one found so is replaced
    before the request uses it (the first request after a database restart works); one
    that dies while in steady use fails its request with 503, and SQLAlchemy then
    replaces every connection of the pool."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_RESTED_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_RESTED_SINCE)
        if since is not None and time.monotonic() - since < PING_AFTER_REST:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:  # any failure: the pool retries with a new connection
            raise sa_exc.DisconnectionError(f"pooled connection is dead: {e}") from e


def _is_retryable(error: sa_exc.DBAPIError) -> bool:
    """Deadlocks and serialization failures are worth one more try (PostgreSQL)."""
    code = getattr(error.orig, "sqlstate", None)
    return code in ("40001", "40P01")


class Database:
    """Owns the engine; hands out sessions with translated errors."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # INSERT with ON CONFLICT (upserts, insert-if-absent) in this database's dialect
        self.insert = sqlite_insert if self.is_sqlite else pg_insert
        try:
            self.engine = _sqlite_engine(url) if self.is_sqlite else _server_engine(url)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError, ValueError) as e:
            # The message names the scheme or the part that is wrong, never the URL,
            # which may hold a password.
            raise StorageError(
                f"database_url: not a usable database URL ({type(e).__name__})"
            ) from e
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._lock_path = _lock_path(self.engine.url.database) if self.is_sqlite else None
        self._file_lock: int | None = None  # its descriptor, opened by the first write
        self._writer: Connection | None = None  # SQLite: see `_kept_writer`
        self._shared = threading.local()  # .read: this thread's `_SharedRead`, if any

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, else rolled back.
        A read session inside `reading()` joins that block's read transaction; a
        write ends that block's sharing (see `reading`)."""
        shared = self._shared_for(write)
        with self._translated(), self._writer_slot(write):
            if shared is not None:
                with shared.use(), Session(shared.conn, expire_on_commit=False) as session:
                    yield session
                return
            bind = self._write_engine if write else self.engine
            with Session(bind, expire_on_commit=False) as session, session.begin():
                yield session

    @contextmanager
    def connection(self, *, write: bool = False) -> Iterator[Connection]:
        """A Core-level transaction: cheaper than a session, for hot single statements.
        A read inside `reading()` runs in that block's read transaction; a write ends
        that block's sharing (see `reading`)."""
        shared = self._shared_for(write)
        with self._translated(), self._writer_slot(write):
            if shared is not None:
                with shared.use():
                    yield shared.conn
                return
            if write and self._write_lock is not None:
                with self._kept_writer() as conn:
                    yield conn
                return
            with (self._write_engine if write else self.engine).begin() as conn:
                yield conn

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Within the block, this thread's read transactions are one: one BEGIN and one
        snapshot for all the lookups of a request instead of one each. The first
        write transaction this thread opens ends the sharing and gives the connection
        back before it takes its own, so the reads after a write see it (in
        transactions of their own) and no thread ever holds two connections for it.
        Nested blocks share the outermost one. Hold it briefly (not while a body
        streams): on SQLite an open read transaction holds back WAL checkpoints."""
        if self._shared_read() is not None:
            yield
            return
        try:
            conn = self.engine.connect()
        except sa_exc.SQLAlchemyError:  # each read then takes its own, reporting the fault
            yield
            return
        shared = _SharedRead(conn)
        self._shared.read = shared
        try:
            yield
        finally:
            self._shared.read = None
            shared.end()

    def _shared_read(self) -> _SharedRead | None:
        shared: _SharedRead | None = getattr(self._shared, "read", None)
        return None if shared is None or shared.broken or shared.ended else shared

    def _shared_for(self, write: bool) -> _SharedRead | None:
        """The shared read a read transaction joins; a write joins none and ends this
        thread's shared read, if any (see `reading`)."""
        shared = self._shared_read()
        if write and shared is not None:
            shared.end()
        return None if write else shared

    def run(self, work: Callable[[Session], T], *, write: bool = True, tries: int = 3) -> T:
        """Run `work` in one transaction, retrying deadlocks and serialization failures."""
        return self._retrying(lambda: self.session(write=write), work, tries)

    def run_core(self, work: Callable[[Connection], T], *, write: bool = True, tries: int = 3) -> T:
        """`run` on a Core connection instead of an ORM session: for a hot transaction
        (an upload's commit), whose session alone cost 5 % of a small PUT's CPU."""
        return self._retrying(lambda: self.connection(write=write), work, tries)

    def _retrying(
        self,
        opening: Callable[[], AbstractContextManager[R]],
        work: Callable[[R], T],
        tries: int,
    ) -> T:
        """`work` in the transaction `opening` opens, tried again (at most `tries` times
        in all) after a deadlock or a serialization failure."""
        for attempt in range(tries):
            try:
                with opening() as transaction:
                    return work(transaction)
            except Conflict as e:
                cause = e.__cause__
                retry = isinstance(cause, sa_exc.DBAPIError) and _is_retryable(cause)
                if not retry or attempt == tries - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def check(self) -> None:
        """Raise `Unavailable` if the database cannot be reached now."""
        with self.session() as session:
            session.connection().exec_driver_sql("SELECT 1")

    def close(self) -> None:
        if self._write_lock is None:
            self.engine.dispose()
            return
        with self._write_lock:
            if self._writer is not None:  # checked out: `dispose` would leave it open
                self._writer.close()
                self._writer = None
            self.engine.dispose()
            if self._file_lock is not None:
                os.close(self._file_lock)
                self._file_lock = None

    @contextmanager
    def _writer_slot(self, write: bool) -> Iterator[None]:
        """Serialise SQLite write transactions: this process's threads on a Python
        lock, then processes (workers, a command beside a server) on a lock file (see
        the module docstring)."""
        if not (write and self._write_lock):
            yield
            return
        with self._write_lock:
            if self._lock_path is None:
                yield
                return
            if self._file_lock is None:
                self._file_lock = _open_lock(self._lock_path)
            fcntl.flock(self._file_lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._file_lock, fcntl.LOCK_UN)

    @contextmanager
    def _kept_writer(self) -> Iterator[Connection]:
        """SQLite, inside the writer slot: a write transaction on the process's one
        write connection, kept open from one write to the next (the slot makes it one
        thread's at a time). Taking a connection from the pool and giving it back for
        each write was 6 % of a small PUT's CPU. A connection the driver lost is
        replaced at the next write."""
        conn = self._writer
        if conn is None or conn.closed or conn.invalidated:
            conn = self._writer = self._write_engine.connect()
        with conn.begin():
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.IntegrityError as e:
            raise Conflict(f"database constraint: {e.orig}") from e
        except sa_exc.OperationalError as e:
            if _is_retryable(e):
                raise Conflict("transaction conflict, retry") from e
            raise Unavailable(f"database unavailable: {e.orig}") from e
        except (sa_exc.InterfaceError, sa_exc.TimeoutError) as e:
            raise Unavailable(f"database unavailable: {e}") from e
        except sa_exc.DBAPIError as e:
            if e.connection_invalidated:
                raise Unavailable(f"database connection lost: {e.orig}") from e
            raise


class _SharedRead:
    """The connection of one `Database.reading()` block and its read transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.broken = False  # its connection failed: reads take their own again
        self.ended = False  # a write ended the sharing: reads take their own again
        self._uses = 0  # reads on it now (a write may open inside one)

    @contextmanager
    def use(self) -> Iterator[None]:
        """A read on the shared transaction (begun by the first read after the block
        opened or a write ended the last one); a read that fails ends the transaction
        (on PostgreSQL an aborted one refuses every later statement)."""
        self._uses += 1
        try:
            if not self.conn.in_transaction():
                self.conn.begin()
            yield
        except BaseException:
            self.restart()
            raise
        finally:
            self._uses -= 1
            if self.ended and not self._uses:
                self._give_back()

    def end(self) -> None:
        """No more reads on it; its connection goes back to the pool now, or when the
        reads on it now are done. Ending it again does nothing."""
        if self.ended:
            return
        self.ended = True
        if not self._uses:
            self._give_back()

    def _give_back(self) -> None:
        """End the read transaction with a COMMIT, not the pool's ROLLBACK: the same
        for a transaction that only read, but psycopg drops every statement the
        connection has prepared on a ROLLBACK, and PostgreSQL then parses and plans
        each again (a shared read cost PostgreSQL twice the CPU per lookup)."""
        try:
            if self.conn.in_transaction():
                self.conn.commit()
        except sa_exc.SQLAlchemyError:
            pass  # the connection is discarded or rolled back by the pool below
        self.conn.close()

    def restart(self) -> None:
        """After a failed read: roll the transaction back (on PostgreSQL a failed
        statement aborts it), so the next read begins another. If the connection
        fails, it is marked `broken` instead."""
        try:
            self.conn.rollback()
        except sa_exc.SQLAlchemyError:
            self.broken = True


def on_query(db: Database, callback: QueryCallback) -> None:
    """Call `callback(seconds, failed)` after each statement `db` sends to the database
    (a hook for metrics, which live outside `providers`). It runs on the request's
    thread, so it must be cheap and must not raise."""
    watch_statements(db.engine.dialect, callback)  # the direct ones (`providers.catalog.direct`)

    @event.listens_for(db.engine, "before_cursor_execute")
    def _before(conn: Any, *_args: Any) -> None:
        conn.info.setdefault(QUERY_STARTED, []).append(time.perf_counter())

    @event.listens_for(db.engine, "after_cursor_execute")
    def _after(conn: Any, *_args: Any) -> None:
        started = conn.info.get(QUERY_STARTED)
        if started:
            callback(time.perf_counter() - started.pop(), False)

    @event.listens_for(db.engine, "handle_error")
    def _failed(context: Any) -> None:
        conn = context.connection
        started = conn.info.get(QUERY_STARTED) if conn is not None else None
        callback(time.perf_counter() - started.pop() if started else 0.0, True)
