"""Upload folders: Nextcloud/ownCloud chunked uploads kept as upload rows.

`upload` gains `transfer` (an upload folder's name as the client chose it, on the
folder's row) and `parent_id` (on a chunk's row: the id of its folder's row), indexed
so a folder's chunks are found and deleted with it. Existing rows are TUS uploads:
both stay NULL, nothing is rewritten.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("upload") as batch:
        batch.add_column(sa.Column("transfer", sa.String(255), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.String(64), nullable=True))
        batch.create_index("ix_upload_parent_id", ["parent_id"])


def downgrade() -> None:
    op.execute(
        "DELETE FROM uploadextent WHERE upload_id IN"
        " (SELECT id FROM upload WHERE transfer IS NOT NULL OR parent_id IS NOT NULL)"
    )
    op.execute("DELETE FROM upload WHERE transfer IS NOT NULL OR parent_id IS NOT NULL")
    with op.batch_alter_table("upload") as batch:
        batch.drop_index("ix_upload_parent_id")
        batch.drop_column("parent_id")
        batch.drop_column("transfer")
