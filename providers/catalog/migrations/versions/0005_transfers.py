"""Transfers: resumable uploads for accounts, and blocks staged through the delta API.

`upload` gains the account that made it (`user_id`; `link_id` becomes optional: an
upload is made through a link or by an account), a deferred length (`length` may be
NULL until a PATCH declares it), the file's `mtime` and expected `checksum` from the
creation's metadata, and `partial` (a part of a concatenation). Every existing row is
a link's upload with a known length, so nothing is rewritten. `stagedblock` is new:
the chunks an account sent through the delta API that no file of theirs names yet.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("upload") as batch:
        batch.alter_column("link_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("length", existing_type=sa.BigInteger(), nullable=True)
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("mtime", sa.Float(), nullable=True))
        batch.add_column(sa.Column("checksum", sa.String(200), nullable=True))
        batch.add_column(
            sa.Column("partial", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_upload_user_id", ["user_id"])
    op.create_table(
        "stagedblock",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chunk_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(64), nullable=True),
        sa.Column("staged_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "chunk_hash"),
    )
    op.create_index("ix_stagedblock_chunk_hash", "stagedblock", ["chunk_hash"])
    op.create_index("ix_stagedblock_staged_at", "stagedblock", ["staged_at"])


def downgrade() -> None:
    op.drop_index("ix_stagedblock_staged_at", "stagedblock")
    op.drop_index("ix_stagedblock_chunk_hash", "stagedblock")
    op.drop_table("stagedblock")
    op.execute(
        "DELETE FROM uploadextent WHERE upload_id IN"
        " (SELECT id FROM upload WHERE link_id IS NULL OR length IS NULL)"
    )
    op.execute("DELETE FROM upload WHERE link_id IS NULL OR length IS NULL")
    with op.batch_alter_table("upload") as batch:
        batch.drop_index("ix_upload_user_id")
        batch.drop_column("partial")
        batch.drop_column("checksum")
        batch.drop_column("mtime")
        batch.drop_column("user_id")
        batch.alter_column("length", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("link_id", existing_type=sa.Integer(), nullable=False)
