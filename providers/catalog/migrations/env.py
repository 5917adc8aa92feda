"""Alembic's environment: run by every `alembic.command` that `providers.catalog.migrate`
calls. No alembic.ini and no URL here: the caller passes its open connection (already
in the migration's transaction, under the migration lock) in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from providers.catalog import schema  # noqa: F401  (registers the tables for autogenerate)

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters a table by copying it: batch mode does that (see docs/migrations.md).
    render_as_batch=connection.dialect.name == "sqlite",
    on_version_apply=config.attributes.get("on_version_apply"),
)
# Inside the caller's transaction, so this begins nothing: all revisions commit
# together or not at all.
with context.begin_transaction():
    context.run_migrations()
