"""Chunk codecs: how each chunk's object is stored (compression, encryption at rest).

`chunk` gains `codec` ("raw", "zstd" or "sealed"; existing rows are "raw": their
objects are the plaintext under `chunks/ab/cd/<sha256>`, exactly as before, so nothing
is rewritten and every old chunk stays readable), `stored_size` (the object's size;
NULL: the chunk's size) and `key_id` (the master key a sealed chunk is encrypted
under; NULL otherwise).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("chunk") as batch:
        batch.add_column(sa.Column("codec", sa.String(8), nullable=False, server_default="raw"))
        batch.add_column(sa.Column("stored_size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    # Only a store whose chunks are all raw can go back: older releases read objects
    # as plaintext under the plain key.
    bind = op.get_bind()
    other = bind.execute(sa.text("SELECT COUNT(*) FROM chunk WHERE codec != 'raw'")).scalar()
    if other:
        raise RuntimeError(f"{other} chunks are compressed or encrypted; cannot downgrade")
    with op.batch_alter_table("chunk") as batch:
        batch.drop_column("key_id")
        batch.drop_column("stored_size")
        batch.drop_column("codec")
