"""Checksums: the whole content's SHA-1, MD5 and SHA-256 (hex) on `content`.

Nullable: contents written before this revision have none until `davserver checksums
--apply` (or a full GET) computes them from their bytes; nothing is computed here, since
a migration runs in one transaction at start-up and must not read every blob.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = (("sha1", 40), ("md5", 32), ("sha256", 64))


def upgrade() -> None:
    for name, length in _COLUMNS:
        op.add_column("content", sa.Column(name, sa.String(length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("content") as batch:
        for name, _length in reversed(_COLUMNS):
            batch.drop_column(name)
