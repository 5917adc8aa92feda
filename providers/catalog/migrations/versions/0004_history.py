"""History: every version a file had, and a trash.

`version` gains `mtime` (the file's mtime with that content); rows stop being dropped
at each write (retention thins them later), so the rows that exist, one per file (its
current content), stay as they are and get the node's mtime. `node` gains the trash
fields of a trashed subtree's root (`trashed_at`, `trashed_by`, `trash_path`), and
`user` the id of its trash root (`trash_id`), made at the first delete, and the bytes
only its old versions keep (`history_bytes`, 0: there are none yet). Nothing is
trashed before this revision: every new column starts NULL.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_NODE_COLUMNS = (
    ("trashed_at", sa.Float()),
    ("trashed_by", sa.Integer()),
    ("trash_path", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("version") as batch:
        batch.add_column(sa.Column("mtime", sa.Float(), nullable=True))
    op.execute(
        "UPDATE version SET mtime = (SELECT node.mtime FROM node"
        " WHERE node.id = version.node_id AND node.content_id = version.content_id)"
    )
    with op.batch_alter_table("node") as batch:
        for name, type_ in _NODE_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("trash_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("history_bytes", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.drop_column("history_bytes")
        batch.drop_column("trash_id")
    with op.batch_alter_table("node") as batch:
        for name, _type in reversed(_NODE_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("version") as batch:
        batch.drop_column("mtime")
