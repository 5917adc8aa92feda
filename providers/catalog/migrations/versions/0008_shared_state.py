"""State every worker shares without Redis: WebDAV locks (`dav_lock`), short-lived
values such as Login Flow v2 flows (`ephemeral`) and expiring counters such as failed
logins (`expiring_count`). Before, a store without Redis kept these in process memory.

Only new tables: every existing row stays as it was. Going back drops them, which
forgets the locks, flows and counts of the moment (the older release kept them in
memory, so a restart forgot them too).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

# Byte order on PostgreSQL too: the lock store's prefix ranges need it (see the model).
PATH_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "dav_lock",
        sa.Column("token", sa.String(100), nullable=False),
        sa.Column("root", PATH_TEXT, nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("lock", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_index("ix_dav_lock_root", "dav_lock", ["root"])
    op.create_table(
        "ephemeral",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_ephemeral_expires", "ephemeral", ["expires"])
    op.create_table(
        "expiring_count",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_expiring_count_expires", "expiring_count", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_expiring_count_expires", "expiring_count")
    op.drop_table("expiring_count")
    op.drop_index("ix_ephemeral_expires", "ephemeral")
    op.drop_table("ephemeral")
    op.drop_index("ix_dav_lock_root", "dav_lock")
    op.drop_table("dav_lock")
