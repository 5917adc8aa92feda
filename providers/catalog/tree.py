"""The directory tree: lookups, listings and metadata-only mutations.

Every mutation is one transaction that also appends to the change log (DESIGN
invariant 5) and keeps the owner's `used_bytes` exact. On PostgreSQL, mutations lock
the parent directory row first (`FOR UPDATE`), which serialises changes to one
directory's names; SQLite serialises all writers anyway (`BEGIN IMMEDIATE`).
COPY, MOVE and DELETE touch rows only: never a chunk (invariant 4).

Names are kept as the client spelled them and looked up by `name_key` (their NFC
form, `providers.names`): a second spelling of a name is the same entry.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlmodel import Session

from providers.catalog.db import IN_BATCH, Database
from providers.catalog.records import DIR, FILE, NodeRecord
from providers.catalog.schema import (
    Change,
    Content,
    Counter,
    Grant,
    Node,
    Prop,
    ShareLink,
    User,
    Version,
)
from providers.errors import Conflict, NotFound, QuotaExceeded
from providers.names import name_key

ACL_COUNTER = "acl"  # bumped whenever who may see what changes (see `Counter`)


def node_select() -> Any:
    """SELECT of node columns plus the content digest (the file's strong ETag)."""
    return select(Node, Content.digest).outerjoin(Content, Node.content_id == Content.id)


# the columns of a NodeRecord, in its field order
_RECORD_COLUMNS = (
    Node.id,
    Node.parent_id,
    Node.name,
    Node.kind,
    Node.owner_id,
    Node.size,
    Node.mtime,
    Node.created,
    Node.content_id,
    Content.digest,
    Node.content_type,
)
_NODE_BY_ID = (
    select(*_RECORD_COLUMNS)
    .outerjoin(Content, Node.content_id == Content.id)
    .where(Node.id == bindparam("id"))
)
_CHILDREN = (
    select(*_RECORD_COLUMNS)
    .outerjoin(Content, Node.content_id == Content.id)
    .where(Node.parent_id == bindparam("parent"))
    .order_by(Node.name)
)
_CHILD_PROPS = (
    select(Prop.node_id, Prop.name, Prop.value)
    .join(Node, Node.id == Prop.node_id)
    .where(Node.parent_id == bindparam("parent"))
)
_CHILD_BY_KEY = (
    select(*_RECORD_COLUMNS)
    .outerjoin(Content, Node.content_id == Content.id)
    .where(Node.parent_id == bindparam("parent"), Node.name_key == bindparam("key"))
)


def to_record(row: Any) -> NodeRecord:
    node, digest = row
    return NodeRecord(
        id=node.id,
        parent_id=node.parent_id,
        name=node.name,
        kind=node.kind,
        owner_id=node.owner_id,
        size=node.size,
        mtime=node.mtime,
        created=node.created,
        content_id=node.content_id,
        digest=digest,
        content_type=node.content_type,
    )


def lock_dir(session: Session, dir_id: int) -> Node:
    """Lock a directory row for this transaction; `Conflict` if it is gone or a file."""
    node = session.exec(select(Node).where(Node.id == dir_id).with_for_update()).scalar()
    if node is None or node.kind != DIR:
        raise Conflict("parent collection does not exist")
    return node


def find_child(session: Session, parent_id: int, name: str) -> Node | None:
    """The child of `parent_id` whose name equals `name` once normalised, or None."""
    return session.exec(
        select(Node).where(Node.parent_id == parent_id, Node.name_key == name_key(name))
    ).scalar()


def child_record(conn: Connection, parent_id: int, name: str) -> NodeRecord | None:
    """The member of `parent_id` whose name equals `name` once normalised, or None
    (one prebuilt Core query)."""
    row = conn.execute(_CHILD_BY_KEY, {"parent": parent_id, "key": name_key(name)}).first()
    return NodeRecord(*row) if row else None


def find_user_id(session: Session, name: str) -> int:
    """The id of user `name`; `NotFound` if there is none."""
    user_id = session.exec(select(User.id).where(User.name == name)).scalar()
    if user_id is None:
        raise NotFound(f"no user {name!r}")
    return int(user_id)


_LOG_CHANGE = insert(Change)
_OWNER_USAGE = (
    select(User.used_bytes, User.quota_bytes)
    .where(User.id == bindparam("owner"))  # type: ignore[arg-type]
    .with_for_update()
)
_ADD_USED = (
    update(User)
    .where(User.id == bindparam("owner"))  # type: ignore[arg-type]
    .values(used_bytes=User.used_bytes + bindparam("delta"))
)


def log_change(conn: Connection, owner_id: int, node_id: int, kind: str, path: str) -> None:
    """Append to the change log in the caller's transaction (`Session.connection()`
    for ORM callers)."""
    row = {"owner_id": owner_id, "node_id": node_id, "kind": kind, "path": path}
    conn.execute(_LOG_CHANGE, {**row, "at": time.time()})


def add_used_bytes(conn: Connection, owner_id: int, delta: int) -> None:
    if delta:
        conn.execute(_ADD_USED, {"owner": owner_id, "delta": delta})


def charge_used_bytes(conn: Connection, owner_id: int, delta: int) -> None:
    """Add `delta` bytes to the owner's usage, locking their row for the rest of the
    transaction (so concurrent charges cannot pass the quota together); `QuotaExceeded`
    if a growth (`delta > 0`) would take them past their quota. Shrinking is always
    allowed, even for an owner already over quota."""
    usage = conn.execute(_OWNER_USAGE, {"owner": owner_id}).first()
    if delta > 0 and usage is not None and usage.quota_bytes is not None:
        used, quota = usage.used_bytes, usage.quota_bytes
        if used + delta > quota:
            raise QuotaExceeded(f"quota exceeded: {delta} more bytes, {max(0, quota - used)} left")
    add_used_bytes(conn, owner_id, delta)


def bump_counter(session: Session, name: str) -> None:
    """Add one to counter `name` (created at 1), in the caller's transaction."""
    done = session.exec(update(Counter).where(Counter.name == name).values(value=Counter.value + 1))
    if not done.rowcount:
        session.add(Counter(name=name, value=1))


def read_counter(session: Session, name: str) -> int:
    value = session.exec(select(Counter.value).where(Counter.name == name)).scalar()
    return int(value or 0)


def path_names(session: Session, node_id: int) -> tuple[str, ...]:
    """The names from the home root down to `node_id` (empty for a home)."""
    names: list[str] = []
    node = session.get(Node, node_id)
    while node is not None and node.parent_id is not None:
        names.append(node.name)
        node = session.get(Node, node.parent_id)
    return tuple(reversed(names))


def subtree_ids(session: Session, root_id: int) -> list[int]:
    """Ids of `root_id` and every node below it (one recursive query)."""
    tree = select(Node.id).where(Node.id == root_id).cte("tree", recursive=True)
    tree = tree.union_all(select(Node.id).join(tree, Node.parent_id == tree.c.id))
    return list(session.exec(select(tree.c.id)).scalars())


def remove_subtree(session: Session, root_id: int) -> None:
    """Delete a node and everything below it, with props and versions; fix quotas."""
    ids = subtree_ids(session, root_id)
    for start in range(0, len(ids), IN_BATCH):
        batch = ids[start : start + IN_BATCH]
        sizes = session.exec(
            select(Node.owner_id, func.sum(Node.size))
            .where(Node.id.in_(batch), Node.kind == FILE)  # type: ignore[union-attr]
            .group_by(Node.owner_id)
        ).all()
        for owner_id, total in sizes:
            add_used_bytes(session.connection(), owner_id, -int(total or 0))
        session.exec(delete(Prop).where(Prop.node_id.in_(batch)))  # type: ignore[attr-defined]
        session.exec(delete(Version).where(Version.node_id.in_(batch)))  # type: ignore[attr-defined]
        _withdraw_sharing(session, batch)
    # Children reference parents: delete deepest first (ids were produced top-down).
    for start in range(len(ids), 0, -IN_BATCH):
        batch = ids[max(0, start - IN_BATCH) : start]
        session.exec(delete(Node).where(Node.id.in_(batch)))  # type: ignore[union-attr]


def _withdraw_sharing(session: Session, node_ids: list[int]) -> None:
    """Delete the grants and share links of these nodes (bumping the `acl` counter
    when a grant went): their node is gone or no longer its sharer's."""
    if session.exec(delete(Grant).where(Grant.node_id.in_(node_ids))).rowcount:  # type: ignore[attr-defined]
        bump_counter(session, ACL_COUNTER)
    session.exec(delete(ShareLink).where(ShareLink.node_id.in_(node_ids)))  # type: ignore[attr-defined]


class Tree:
    """Queries and mutations of the node tree."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, node_id: int) -> NodeRecord | None:
        with self._db.session() as s:
            row = s.exec(node_select().where(Node.id == node_id)).first()
            return to_record(row) if row else None

    def resolve(self, root_id: int, names: list[str]) -> NodeRecord | None:
        """The node at `names` below `root_id` (matched normalised), or None."""
        found = self.resolve_path(root_id, names)
        return found[0] if found else None

    def resolve_path(self, root_id: int, names: list[str]) -> tuple[NodeRecord, list[str]] | None:
        """The node at `names` below `root_id` and the stored spelling of each of those
        names, or None. Names are matched by `name_key`, so any spelling finds the node,
        and the returned names are the ones to show. Every request resolves its path, so
        this is one prebuilt Core query per path level, without ORM objects."""
        stored: list[str] = []
        with self._db.connection() as conn:
            row = conn.execute(_NODE_BY_ID, {"id": root_id}).first()
            node = NodeRecord(*row) if row else None
            for name in names:
                if node is None or node.kind != DIR:
                    return None
                node = child_record(conn, node.id, name)
                if node is not None:
                    stored.append(node.name)
            return (node, stored) if node else None

    def children(self, dir_id: int) -> list[NodeRecord]:
        """Members of a directory, sorted by name (one query)."""
        with self._db.connection() as conn:
            return [NodeRecord(*row) for row in conn.execute(_CHILDREN, {"parent": dir_id})]

    def listing(self, dir_id: int) -> tuple[list[NodeRecord], dict[int, dict[str, str]]]:
        """Members of a directory sorted by name, and their dead properties
        ({node_id: {name: xml}}, every member present): two prebuilt Core queries in one
        read transaction, no ORM objects, since every folder listing goes through here."""
        with self._db.connection() as conn:
            rows = conn.execute(_CHILDREN, {"parent": dir_id}).all()  # fetchall: one call
            nodes = [NodeRecord(*row) for row in rows]
            found: dict[int, dict[str, str]] = {node.id: {} for node in nodes}
            for node_id, name, value in conn.execute(_CHILD_PROPS, {"parent": dir_id}):
                found.setdefault(node_id, {})[name] = value
        return nodes, found

    def props(self, node_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Dead properties of many nodes at once: {node_id: {name: xml}}."""
        ids = list(node_ids)
        result: dict[int, dict[str, str]] = {i: {} for i in ids}
        with self._db.session() as s:
            for start in range(0, len(ids), IN_BATCH):
                rows = s.exec(select(Prop).where(Prop.node_id.in_(ids[start : start + IN_BATCH])))  # type: ignore[attr-defined]
                for prop in rows.scalars():
                    result[prop.node_id][prop.name] = prop.value
        return result

    def mkdir(self, parent_id: int, name: str, owner_id: int, path: str) -> NodeRecord:
        """Create an empty directory; `Conflict` if the name is taken."""

        def work(s: Session) -> NodeRecord:
            lock_dir(s, parent_id)
            if find_child(s, parent_id, name) is not None:
                raise Conflict("name exists")
            now = time.time()
            node = Node(
                parent_id=parent_id,
                name=name,
                name_key=name_key(name),
                kind=DIR,
                owner_id=owner_id,
                mtime=now,
                created=now,
            )
            s.add(node)
            s.flush()
            assert node.id is not None
            log_change(s.connection(), owner_id, node.id, "mkdir", path)
            return to_record((node, None))

        return self._db.run(work)

    def delete(self, node_id: int, path: str) -> None:
        """Delete a node and its subtree; `NotFound` if it is already gone."""

        def work(s: Session) -> None:
            node = s.get(Node, node_id)
            if node is None:
                raise NotFound(path)
            if node.parent_id is not None:
                lock_dir(s, node.parent_id)
            remove_subtree(s, node_id)
            log_change(s.connection(), node.owner_id, node_id, "delete", path)

        self._db.run(work)

    def move(
        self, node_id: int, dest_parent_id: int, dest_name: str, path: str, *, replace: bool = True
    ) -> NodeRecord:
        """Rename/move one row, replacing whatever sits at the destination (`Conflict`
        instead when not `replace`); the node takes the spelling `dest_name`. A
        destination that is the node itself (a rename that only changes the spelling)
        just renames it. Moving into another owner's tree (through a share) hands the
        subtree to that owner (`_transfer`)."""

        def work(s: Session) -> NodeRecord:
            for dir_id in sorted({dest_parent_id, _parent_of(s, node_id)}):
                lock_dir(s, dir_id)
            _refuse_cycle(s, node_id, dest_parent_id)
            existing = find_child(s, dest_parent_id, dest_name)
            if existing is not None and existing.id != node_id:
                if not replace:
                    raise Conflict(f"{dest_name!r} exists")
                assert existing.id is not None
                remove_subtree(s, existing.id)
                s.flush()
            node = s.get(Node, node_id)
            assert node is not None
            new_owner = s.exec(select(Node.owner_id).where(Node.id == dest_parent_id)).scalar()
            if new_owner is not None and new_owner != node.owner_id:
                _transfer(s, node_id, node.owner_id, new_owner)
                node.owner_id = new_owner
            node.parent_id, node.name = dest_parent_id, dest_name
            node.name_key = name_key(dest_name)
            s.add(node)
            s.flush()
            log_change(s.connection(), node.owner_id, node_id, "move", path)
            return to_record((node, _digest(s, node.content_id)))

        return self._db.run(work)

    def copy(self, node_id: int, dest_parent_id: int, dest_name: str, path: str) -> NodeRecord:
        """Copy a subtree as new rows sharing the same contents (no chunk is touched),
        replacing whatever sits at the destination; `Conflict` if that is the source
        itself (another spelling of its own name). The copies belong to the destination
        folder's owner, who is charged their bytes (less those of what they replace):
        `QuotaExceeded` if that passes their quota, and nothing is copied."""

        def work(s: Session) -> NodeRecord:
            dest = lock_dir(s, dest_parent_id)
            _refuse_cycle(s, node_id, dest_parent_id)
            existing = find_child(s, dest_parent_id, dest_name)
            if existing is not None and existing.id == node_id:
                raise Conflict("cannot copy a resource onto itself")
            if existing is not None:
                assert existing.id is not None
                remove_subtree(s, existing.id)
                s.flush()
            new_root, copied = _copy_rows(s, node_id, dest_parent_id, dest_name, dest.owner_id)
            charge_used_bytes(s.connection(), dest.owner_id, copied)
            log_change(s.connection(), new_root.owner_id, new_root.id or 0, "copy", path)
            return to_record((new_root, _digest(s, new_root.content_id)))

        return self._db.run(work)

    def set_mtime(self, node_id: int, mtime: float, path: str) -> None:
        """Set a node's modification time (logged as a `prop` change at `path`);
        `NotFound` if it is gone."""

        def work(s: Session) -> None:
            owner_id = _owner_of(s, node_id, path)
            s.exec(update(Node).where(Node.id == node_id).values(mtime=mtime))
            log_change(s.connection(), owner_id, node_id, "prop", path)

        self._db.run(work)

    def set_prop(self, node_id: int, name: str, value: str | None, path: str) -> None:
        """Write (or with None remove) one dead property (logged as a `prop` change
        at `path`); `NotFound` if the node is gone."""

        def work(s: Session) -> None:
            owner_id = _owner_of(s, node_id, path)
            s.exec(delete(Prop).where(Prop.node_id == node_id, Prop.name == name))  # type: ignore[arg-type]
            if value is not None:
                s.add(Prop(node_id=node_id, name=name, value=value))
            log_change(s.connection(), owner_id, node_id, "prop", path)

        self._db.run(work)


def _owner_of(s: Session, node_id: int, path: str) -> int:
    """The owner of `node_id`; `NotFound` (naming `path`) if the node is gone."""
    owner_id = s.exec(select(Node.owner_id).where(Node.id == node_id)).scalar()
    if owner_id is None:
        raise NotFound(path)
    return int(owner_id)


def _transfer(s: Session, root_id: int, old_owner: int, new_owner: int) -> None:
    """Give the subtree at `root_id` to `new_owner`: its bytes move from the old
    owner's usage to theirs (`QuotaExceeded` past their quota), and the old owner's
    grants and share links inside it are withdrawn (they shared it; it is no longer
    theirs)."""
    ids = subtree_ids(s, root_id)
    total = 0
    for start in range(0, len(ids), IN_BATCH):
        batch = ids[start : start + IN_BATCH]
        total += int(
            s.exec(
                select(func.coalesce(func.sum(Node.size), 0)).where(
                    Node.id.in_(batch),  # type: ignore[union-attr]
                    Node.kind == FILE,
                )
            ).scalar()
            or 0
        )
        s.exec(update(Node).where(Node.id.in_(batch)).values(owner_id=new_owner))  # type: ignore[union-attr]
        _withdraw_sharing(s, batch)
    charge_used_bytes(s.connection(), new_owner, total)
    add_used_bytes(s.connection(), old_owner, -total)


def _parent_of(s: Session, node_id: int) -> int:
    node = s.get(Node, node_id)
    if node is None or node.parent_id is None:
        raise NotFound("source vanished")
    return node.parent_id


def _refuse_cycle(s: Session, node_id: int, dest_parent_id: int) -> None:
    """`Conflict` if `dest_parent_id` is `node_id` or lies below it."""
    current: int | None = dest_parent_id
    while current is not None:
        if current == node_id:
            raise Conflict("cannot copy or move a collection into itself")
        current = s.exec(select(Node.parent_id).where(Node.id == current)).scalar()


def _digest(s: Session, content_id: int | None) -> str | None:
    if content_id is None:
        return None
    return s.exec(select(Content.digest).where(Content.id == content_id)).scalar()


def _copy_rows(
    s: Session, src_id: int, dest_parent_id: int, dest_name: str, owner_id: int
) -> tuple[Node, int]:
    """Insert copies of the subtree at `src_id`, owned by `owner_id`, level by level;
    return the new root and the bytes of the files copied (not yet charged to anyone).
    The root is named `dest_name`; members keep their names (and keys)."""
    src = s.get(Node, src_id)
    if src is None:
        raise NotFound("source vanished")
    now = time.time()
    level: list[tuple[Node, int, str, str]] = [
        (src, dest_parent_id, dest_name, name_key(dest_name))
    ]
    new_root: Node | None = None
    copied = 0
    while level:
        next_level: list[tuple[Node, int, str, str]] = []
        for old, parent_id, name, key in level:
            new = Node(
                parent_id=parent_id,
                name=name,
                name_key=key,
                kind=old.kind,
                owner_id=owner_id,
                content_id=old.content_id,
                size=old.size,
                mtime=old.mtime,
                created=now,
                content_type=old.content_type,
            )
            s.add(new)
            s.flush()
            assert new.id is not None and old.id is not None
            new_root = new_root or new
            _copy_node_extras(s, old, new, now)
            copied += new.size if new.kind == FILE else 0
            children = s.exec(select(Node).where(Node.parent_id == old.id)).scalars()
            next_level.extend((child, new.id, child.name, child.name_key) for child in children)
        level = next_level
    assert new_root is not None
    return new_root, copied


def _copy_node_extras(s: Session, old: Node, new: Node, now: float) -> None:
    """Props and the current version row of one copied node."""
    props = s.exec(select(Prop).where(Prop.node_id == old.id)).scalars().all()
    s.add_all(Prop(node_id=new.id, name=p.name, value=p.value) for p in props)
    if new.kind == FILE and new.content_id is not None:
        assert new.id is not None
        s.add(Version(node_id=new.id, content_id=new.content_id, size=new.size, created_at=now))


__all__ = ["Tree"]
