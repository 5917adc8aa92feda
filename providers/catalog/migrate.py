"""Schema migrations: the one module that runs Alembic (docs/migrations.md).

The scripts live in `providers/catalog/migrations/versions/` (package data), one per
revision; `0001` is the baseline (the schema of the last release before migrations).
Alembic is configured here, with no alembic.ini: `script_location` is the package
directory and the open connection goes to `migrations/env.py` in `config.attributes`.

`migrate` opens a store: under the migration lock (PostgreSQL: an advisory lock held
by the transaction; SQLite: the `BEGIN IMMEDIATE` write lock), it reads the schema's
state and, as the caller allows, creates it (an empty database), upgrades it (a store
behind this release, or one made before migrations, which the baseline adopts), or
refuses (`StoreMissing`, `SchemaMismatch`). Every revision of one upgrade commits in
that one transaction, so a failed upgrade leaves the store as it was (on SQLite and
PostgreSQL both, DDL is transactional); a second instance starting at the same time
waits for the lock, then finds the schema current.

A store already at `HEAD` is recognised without Alembic (its version table read with
one query), and Alembic is imported only when there is more to do: it and the Mako and
Pygments it brings weigh 11 MiB in every server process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, inspect, make_url, text
from sqlmodel import SQLModel

from providers.catalog import schema  # noqa: F401  (registers the tables of `SQLModel.metadata`)
from providers.catalog.db import Database
from providers.errors import SchemaMismatch, StoreMissing

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest revision of `migrations/versions/` (a unit test holds it to the scripts).
HEAD = "0009"
_VERSION_TABLE = "alembic_version"  # Alembic's, one row: the stamped revision
# Key of the PostgreSQL advisory lock that serialises migrations (any constant no
# other code uses; this one spells "davsrv").
_LOCK_KEY = 0x646176737276
# `on_step(revision, description)`: called after each revision is applied.
StepReport = Callable[[str, str], None]


@dataclass(frozen=True)
class SchemaState:
    """Where a catalog's schema stands against this release.

    `revision` is the stamped revision (None: no `alembic_version`, a new or a
    pre-migration store); `empty` means no davserver table at all; `known` is false
    for a revision this release has no script for (a newer release made it).
    """

    revision: str | None
    head: str
    empty: bool
    known: bool = True

    @property
    def current(self) -> bool:
        return self.revision == self.head

    def describe(self) -> str:
        """`0001`, or `empty`, or `unversioned` (made before schema migrations)."""
        if self.empty:
            return "empty"
        return self.revision or "unversioned"


@dataclass(frozen=True)
class SchemaChange:
    """What `migrate` did: from `before` (a `SchemaState.describe()`) to `after`,
    applying `applied` (revision ids, oldest first; empty when already current)."""

    before: str
    after: str
    applied: tuple[str, ...]
    created: bool


@functools.cache
def _script() -> ScriptDirectory:
    """The scripts, read once: they are part of the release."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def alembic_config(attributes: dict[str, Any] | None = None) -> Config:
    """Alembic's configuration for our scripts; `attributes` reach `migrations/env.py`
    (`connection`: the open connection to migrate, required by every command that
    runs env.py; `on_version_apply`: Alembic's per-revision callback)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes.update(attributes or {})
    return config


def head_revision() -> str:
    """The newest revision this release knows (the schema it needs)."""
    head = _script().get_current_head()
    assert head is not None, "the baseline revision is always there"
    return head


def location(db: Database) -> str:
    """Where the store is, for messages: the SQLite file, or the URL without its
    password."""
    if db.is_sqlite:
        return make_url(db.url).database or "(in memory)"
    return make_url(db.url).render_as_string(hide_password=True)


def _sqlite_file_missing(db: Database) -> Path | None:
    """The SQLite file when it does not exist yet (None for in-memory or present).
    Asked before connecting, since connecting creates the file."""
    name = make_url(db.url).database if db.is_sqlite else None
    if not name or name == ":memory:":
        return None
    path = Path(name)
    return None if path.is_file() else path


def read_state(conn: Connection) -> SchemaState:
    """The schema's state, read through `conn` (changes nothing). A store at `HEAD`
    is recognised without Alembic (see the module docstring)."""
    if _stamped(conn) == HEAD:
        return SchemaState(HEAD, HEAD, empty=False)
    from alembic.migration import MigrationContext

    head = head_revision()
    revision = MigrationContext.configure(conn).get_current_revision()
    ours = set(SQLModel.metadata.tables)
    empty = revision is None and not ours & set(inspect(conn).get_table_names())
    known = revision is None or revision in {s.revision for s in _script().walk_revisions()}
    return SchemaState(revision, head, empty, known)


def _stamped(conn: Connection) -> str | None:
    """The revision in Alembic's version table, or None (no table, no row or more than
    one: Alembic itself then tells what the store is)."""
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    stamped = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()
    return str(stamped[0]) if len(stamped) == 1 else None


def schema_state(db: Database, *, must_exist: bool = False) -> SchemaState:
    """`read_state` on `db`; a missing SQLite file is an empty store (and stays
    missing). `must_exist`: raise `StoreMissing` for an empty store."""
    if _sqlite_file_missing(db) is not None:
        state = SchemaState(None, HEAD, empty=True)
    else:
        with db.connection() as conn:
            state = read_state(conn)
    if state.empty and must_exist:
        raise _missing(db)
    return state


def migrate(
    db: Database, *, create: bool, upgrade: bool, on_step: StepReport | None = None
) -> SchemaChange:
    """Bring `db` to the head revision as far as allowed, under the migration lock.

    `create`: an empty store may be created (the baseline, then every later revision).
    `upgrade`: a store behind this release (or made before migrations) may be upgraded.
    Raises `StoreMissing` for an empty store without `create` (for SQLite, without
    creating the file), `SchemaMismatch` for a store behind without `upgrade` or one
    at a revision this release does not know.
    """
    if _sqlite_file_missing(db) is not None and not create:
        raise _missing(db)
    with db.connection(write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        state = read_state(conn)
        _check(db, state, create=create, upgrade=upgrade)
        if state.current:
            return SchemaChange(state.describe(), state.head, (), created=False)
        applied: list[str] = []

        def step(*, step: Any, **_: Any) -> None:  # Alembic's on_version_apply
            revision = str(step.up_revision_id)
            applied.append(revision)
            if on_step is not None:
                on_step(revision, str(step.up_revision.doc))

        from alembic import command
        from alembic.util import CommandError

        attributes = {"connection": conn, "on_version_apply": step}
        try:
            command.upgrade(alembic_config(attributes), "head")
        except CommandError as e:
            raise SchemaMismatch(f"catalog schema upgrade failed: {e}", upgradable=False) from e
        return SchemaChange(state.describe(), state.head, tuple(applied), created=state.empty)


def _check(db: Database, state: SchemaState, *, create: bool, upgrade: bool) -> None:
    """Raise what `migrate` refuses (see there)."""
    if state.empty and not create:
        raise _missing(db)
    if not state.known:
        raise SchemaMismatch(
            f"catalog schema is at {state.revision}, which this release does not know "
            f"(made by a newer davserver?); this release needs {state.head}",
            upgradable=False,
        )
    if not (state.empty or state.current or upgrade):
        at = f"at {state.revision}" if state.revision else "unversioned (made before migrations)"
        raise SchemaMismatch(
            f"catalog schema is {at}, this release needs {state.head}", upgradable=True
        )


def _missing(db: Database) -> StoreMissing:
    """The error naming where the store was looked for and what was not there."""
    where = location(db)
    if not db.is_sqlite:
        return StoreMissing(f"no davserver store in {where} (no davserver tables)")
    path = Path(where)
    what = "missing" if _sqlite_file_missing(db) else "has no davserver tables"
    return StoreMissing(f"no davserver store at {path.parent} ({path.name} {what})")


def metadata_differences(db: Database) -> list[Any]:
    """What differs between the database and `SQLModel.metadata` (Alembic's
    autogenerate comparison; empty when every schema change shipped a migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.connection() as conn:
        context = MigrationContext.configure(conn)
        diffs: list[Any] = compare_metadata(context, SQLModel.metadata)
    return diffs
