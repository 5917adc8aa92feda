"""Catalogs in the states a release meets when it opens a store: made before
migrations (the baseline's tables, no `alembic_version`), or stamped by a newer
release. Built with Alembic on our own scripts, so they stay the baseline's tables
whatever later revisions add."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from providers.catalog.migrate import alembic_config

BASELINE = "0001"


def make_unversioned(url: str) -> None:
    """At `url`, the tables of the last release before migrations, with no
    `alembic_version`: a store that release made."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config({"connection": conn}), BASELINE)
            conn.execute(text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()


def stamp(url: str, revision: str) -> None:
    """Write `revision` into `alembic_version` as if another release had (it may be a
    revision these scripts do not know)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()
