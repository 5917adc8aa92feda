"""SQLite writers of every process queue on `<database>-writer.lock` (module docstring
of `providers.catalog.db`): held for exactly a write transaction, never for a read."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import text

from providers.catalog.db import Database


def _held_elsewhere(lock: Path) -> bool:
    """True when another open file description holds the lock (what a second process
    sees)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _abandon_insert(database: Database, x: int, *, lose_connection: bool = False) -> object:
    """Insert `x` into t in a write transaction that then fails (after the driver lost
    its connection, with `lose_connection`); the driver connection it ran on."""
    try:
        with database.connection(write=True) as conn:
            used = conn.connection.dbapi_connection
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": x})
            if lose_connection:
                conn.invalidate()  # as when the driver fails: the statement raises
            raise RuntimeError("abandoned")
    except RuntimeError:
        return used
    raise AssertionError("unreachable")


def test_a_write_transaction_holds_the_lock_file_and_a_read_does_not(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'catalog.db'}")
    lock = tmp_path / "catalog.db-writer.lock"
    try:
        with database.connection(write=True) as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            assert _held_elsewhere(lock)
        assert not _held_elsewhere(lock)
        with database.connection() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
            assert not _held_elsewhere(lock)
        _abandon_insert(database, 1)
        assert not _held_elsewhere(lock), "a failed transaction kept the lock"
    finally:
        database.close()


def test_writes_reuse_one_connection_and_replace_a_lost_one(tmp_path: Path) -> None:
    """SQLite keeps its write connection from one write to the next; one the driver
    lost (invalidated) is replaced, and a failed write leaves it usable."""
    database = Database(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        with database.connection(write=True) as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            first = conn.connection.dbapi_connection
        assert _abandon_insert(database, 1, lose_connection=True) is first
        with database.connection(write=True) as conn:
            assert conn.connection.dbapi_connection is not first
            conn.execute(text("INSERT INTO t VALUES (2)"))
        _abandon_insert(database, 3)
        with database.connection(write=True) as conn:
            conn.execute(text("INSERT INTO t VALUES (4)"))
        with database.connection() as conn:
            assert [x for (x,) in conn.execute(text("SELECT x FROM t ORDER BY x"))] == [2, 4]
    finally:
        database.close()
