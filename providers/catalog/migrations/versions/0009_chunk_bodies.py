"""Small chunks kept in the catalog: table `chunk_body` (design invariant 27).

A chunk of at most `inline_max_bytes` is written as a row of `chunk_body` (its
at-rest form: codec, master key id, bytes) by the claim that creates its `chunk` row,
instead of as an object in the blob store. Only a new table: every existing chunk
keeps its object and stays readable as before. Going back drops the table, which
loses the bytes of every chunk written inline since the upgrade: downgrading a store
that has them needs `davserver` of this release to write them out first (not
provided), so the downgrade refuses when the table has rows.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "chunk_body",
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("codec", sa.String(8), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["hash"], ["chunk.hash"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("hash"),
    )


def downgrade() -> None:
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM chunk_body")).scalar()
    if count:
        raise RuntimeError(
            f"{count} chunks are kept in the catalog (chunk_body): downgrading would lose them"
        )
    op.drop_table("chunk_body")
