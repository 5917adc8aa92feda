"""The change feed: entry fields on `change`, folder revisions on `node`.

`change` gains what a feed entry needs without looking at the tree again (the tree
moves on; an entry tells what was true at its commit): `old_path` and `old_owner_id`
(a move, possibly out of another owner's tree), `node_kind`, `size`, `etag`, `sha256`
(filled when known), `mtime`, and `user_id`, the one user a row is for (a grant or
revoke, written per grantee user with group members expanded at grant time, and what
that user newly sees below it), with `via_id`, the shared node they see it through. Reads
go by (owner_id, seq) and (user_id, seq); the single-column owner index is replaced.

`node.rev` is the seq of the last change at or below the node (a folder's ETag moves
with it). Existing rows start at 0.

Rows written before this revision lack the entry fields and cannot be replayed: the
`change_floor` setting is set to the last of them, so the feed treats the log below
it as compacted (a cursor can only be newer: none was handed out before). Grants that
exist get their `granted` rows (one per receiving user), so feeds list them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_ENTRY_COLUMNS = (
    ("user_id", sa.Integer()),
    ("via_id", sa.Integer()),
    ("old_owner_id", sa.Integer()),
    ("old_path", sa.String()),
    ("node_kind", sa.String(8)),
    ("size", sa.BigInteger()),
    ("etag", sa.String(64)),
    ("sha256", sa.String(64)),
    ("mtime", sa.Float()),
)


def upgrade() -> None:
    with op.batch_alter_table("change") as batch:
        for name, type_ in _ENTRY_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.drop_index("ix_change_owner_id", table_name="change")
    op.create_index("ix_change_owner_seq", "change", ["owner_id", "seq"])
    op.create_index("ix_change_user_seq", "change", ["user_id", "seq"])
    with op.batch_alter_table("node") as batch:
        batch.add_column(sa.Column("rev", sa.BigInteger(), nullable=False, server_default="0"))
    _grants_received()
    floor = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(seq), 0) FROM change")).scalar()
    setting = sa.table("setting", sa.column("key", sa.String), sa.column("value", sa.String))
    op.execute(sa.delete(setting).where(setting.c.key == "change_floor"))
    op.bulk_insert(setting, [{"key": "change_floor", "value": str(floor or 0)}])


_RECEIVED = sa.text(
    'SELECT g.node_id, g.user_id FROM "grant" g WHERE g.user_id IS NOT NULL'
    ' UNION SELECT g.node_id, m.user_id FROM "grant" g'
    " JOIN membership m ON m.group_id = g.group_id"
)
_NODE = sa.text("SELECT parent_id, name, owner_id, kind, mtime FROM node WHERE id = :id")
_GRANTED = sa.text(
    "INSERT INTO change (owner_id, node_id, kind, path, at, user_id, via_id, node_kind, mtime)"
    " VALUES (:owner, :node, 'granted', :path, :at, :user, :node, :kind, :mtime)"
)


def _grants_received() -> None:
    """A `granted` row for every user who receives a node now (directly or through a
    group), so their feed knows their `Shared/` entries; below the floor, like all
    rows written before (the feed reads granted rows of live shares whatever their age)."""
    bind = op.get_bind()
    at = time.time()
    for node_id, user_id in sorted(bind.execute(_RECEIVED).all()):
        node = bind.execute(_NODE, {"id": node_id}).first()
        if node is None or node.owner_id == user_id:
            continue
        names, parent = [node.name], node.parent_id
        while parent is not None:
            up = bind.execute(_NODE, {"id": parent}).first()
            if up is None or up.parent_id is None:
                break
            names.append(up.name)
            parent = up.parent_id
        path = "/" + "/".join(reversed(names))
        row = {"owner": node.owner_id, "node": node_id, "path": path, "user": user_id}
        bind.execute(_GRANTED, {**row, "at": at, "kind": node.kind, "mtime": node.mtime})


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM setting WHERE key = 'change_floor'"))
    with op.batch_alter_table("node") as batch:
        batch.drop_column("rev")
    op.drop_index("ix_change_user_seq", table_name="change")
    op.drop_index("ix_change_owner_seq", table_name="change")
    op.create_index("ix_change_owner_id", "change", ["owner_id"])
    with op.batch_alter_table("change") as batch:
        for name, _type in reversed(_ENTRY_COLUMNS):
            batch.drop_column(name)
