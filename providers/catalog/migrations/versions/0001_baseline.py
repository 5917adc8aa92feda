"""Baseline: the schema of the last release before migrations (2cd74e7).

Table by table as `SQLModel.metadata.create_all` made it.

Every statement creates only what is missing, so the same upgrade also adopts a store
made before migrations existed (tables present, no `alembic_version`): it adds the
tables and nullable columns that older releases lacked (what the pre-migration
`create_all` plus "add missing nullable columns" start-up step did) and is then
stamped like a fresh store. Never edit this file: a schema change is a new revision.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _table(name: str, *items: SchemaItem) -> None:
    """Create table `name`, or, when it exists (a store older than migrations), add
    the nullable columns it lacks (a NOT NULL column cannot be added to existing rows;
    no release ever added one)."""
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(name):
        op.create_table(name, *items)
        return
    present = {column["name"] for column in inspector.get_columns(name)}
    for item in items:
        if isinstance(item, sa.Column) and item.name not in present and item.nullable:
            op.add_column(name, item)


def _index(name: str, table: str, columns: list[str], *, unique: bool = False) -> None:
    """Create index `name` unless it exists."""
    present = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}
    if name not in present:
        op.create_index(name, table, columns, unique=unique)


def upgrade() -> None:
    _table(
        "change",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    _index("ix_change_owner_id", "change", ["owner_id"])
    _table(
        "chunk",
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("touched_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    _index("ix_chunk_state", "chunk", ["state"])
    _index("ix_chunk_touched_at", "chunk", ["touched_at"])
    _table(
        "content",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("ix_content_digest", "content", ["digest"])
    _table(
        "counter",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _table(
        "group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("ix_group_name", "group", ["name"], unique=True)
    _table(
        "lease",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _table(
        "setting",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    _table(
        "upload",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("folder_path", sa.String(), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("touched_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("finished_name", sa.String(1024), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("ix_upload_link_id", "upload", ["link_id"])
    _index("ix_upload_touched_at", "upload", ["touched_at"])
    _table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("digest_realm", sa.String(128), nullable=True),
        sa.Column("digest_ha1", sa.String(64), nullable=True),
        sa.Column("home_id", sa.Integer(), nullable=True),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("ix_user_name", "user", ["name"], unique=True)
    _table(
        "apppassword",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "key_id", name="uq_app_password_key"),
    )
    _index("ix_apppassword_user_id", "apppassword", ["user_id"])
    _table(
        "extent",
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("chunk_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["content_id"], ["content.id"]),
        sa.PrimaryKeyConstraint("content_id", "seq"),
    )
    _index("ix_extent_chunk_hash", "extent", ["chunk_hash"])
    _index("ix_extent_content_offset", "extent", ["content_id", "offset"])
    _table(
        "membership",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["group.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
    )
    _index("ix_membership_user_id", "membership", ["user_id"])
    _table(
        "node",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("name_key", sa.String(1024), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(["content_id"], ["content.id"]),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"]),
        sa.ForeignKeyConstraint(["parent_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("parent_id", "name_key", name="uq_node_parent_name_key"),
    )
    _index("ix_node_content_id", "node", ["content_id"])
    _index("ix_node_owner_id", "node", ["owner_id"])
    _index("ix_node_parent_id", "node", ["parent_id"])
    _table(
        "uploadextent",
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("chunk_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["upload.id"]),
        sa.PrimaryKeyConstraint("upload_id", "offset"),
    )
    _index("ix_uploadextent_chunk_hash", "uploadextent", ["chunk_hash"])
    _table(
        "grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("perm", sa.String(2), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["group.id"]),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("ix_grant_group_id", "grant", ["group_id"])
    _index("ix_grant_node_id", "grant", ["node_id"])
    _index("ix_grant_user_id", "grant", ["user_id"])
    _table(
        "prop",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("node_id", "name"),
    )
    _table(
        "sharelink",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("perm", sa.String(8), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["user.id"]),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("ix_sharelink_created_by", "sharelink", ["created_by"])
    _index("ix_sharelink_node_id", "sharelink", ["node_id"])
    _table(
        "version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["content_id"], ["content.id"]),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("ix_version_content_id", "version", ["content_id"])
    _index("ix_version_node_id", "version", ["node_id"])


# Creation order: every table after the tables its foreign keys name.
TABLES = (
    "change",
    "chunk",
    "content",
    "counter",
    "group",
    "lease",
    "setting",
    "upload",
    "user",
    "apppassword",
    "extent",
    "membership",
    "node",
    "uploadextent",
    "grant",
    "prop",
    "sharelink",
    "version",
)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
