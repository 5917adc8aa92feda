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
        try:
            with database.connection(write=True) as conn:
                conn.execute(text("INSERT INTO t VALUES (1)"))
                raise RuntimeError("abandoned")
        except RuntimeError:
            pass
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
        try:
            with database.connection(write=True) as conn:
                assert conn.connection.dbapi_connection is first
                conn.execute(text("INSERT INTO t VALUES (1)"))
                conn.invalidate()  # as when the driver fails: the statement raises
                raise RuntimeError("connection lost")
        except RuntimeError:
            pass
        with database.connection(write=True) as conn:
            assert conn.connection.dbapi_connection is not first
            conn.execute(text("INSERT INTO t VALUES (2)"))
        try:
            with database.connection(write=True) as conn:
                conn.execute(text("INSERT INTO t VALUES (3)"))
                raise RuntimeError("abandoned")
        except RuntimeError:
            pass
        with database.connection(write=True) as conn:
            conn.execute(text("INSERT INTO t VALUES (4)"))
        with database.connection() as conn:
            assert [x for (x,) in conn.execute(text("SELECT x FROM t ORDER BY x"))] == [2, 4]
    finally:
        database.close()
