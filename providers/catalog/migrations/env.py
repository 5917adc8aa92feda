"""Alembic's environment: run by every `alembic.command` that `providers.catalog.migrate`
calls. No alembic.ini and no URL here: the caller passes its open connection (already
in the migration's transaction, under the migration lock) in `config.attributes`."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from providers.catalog import schema  # noqa: F401  (registers the tables for autogenerate)


def _render_item(kind: str, item: Any, _context: Any) -> str | Literal[False]:
    """Draft scripts (autogenerate) with plain SQLAlchemy types: a script never imports
    sqlmodel, whose AutoString is a VARCHAR."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String({item.length})" if item.length else "sa.String()"
    return False


config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters a table by copying it: batch mode does that (see docs/migrations.md).
    render_as_batch=connection.dialect.name == "sqlite",
    on_version_apply=config.attributes.get("on_version_apply"),
    render_item=_render_item,
)
# Inside the caller's transaction, so this begins nothing: all revisions commit
# together or not at all.
with context.begin_transaction():
    context.run_migrations()
