"""Rows and statements the catalog's parts share.

Node records (`node_select`, `to_record`, `child_record`, and the prebuilt queries
the tree runs on every request), folder locks, user ids, the owners'
`used_bytes` and quota checks, the `acl` counter, paths, and the removal of whole
subtrees with what hangs off them (props, versions, grants, share links).

Statements that a `Connection` runs are SQLAlchemy Core (`core_select`), built once at
import: building and cache-keying SQLAlchemy expressions costs more than SQLite running
them. Queries an ORM `Session` runs use sqlmodel's `select`, the one `Session.exec`
types.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, text, update
from sqlalchemy import Select as CoreSelect
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from providers.catalog.direct import DirectRead, DirectWrite
from providers.catalog.records import DIR, FILE, NodeRecord
from providers.catalog.schema import (
    Content,
    Counter,
    Node,
    Prop,
    User,
)
from providers.errors import Conflict, NotFound, QuotaExceeded
from providers.names import name_key

ACL_COUNTER = "acl"  # bumped whenever who may see what changes (see `Counter`)


def node_select() -> Select[Node, str]:
    """SELECT of node columns plus the content digest (the file's strong ETag; None
    for a directory, through the outer join)."""
    return select(Node, col(Content.digest)).outerjoin(
        Content, col(Node.content_id) == col(Content.id)
    )


# the columns of a NodeRecord, in its field order (`NodeRecord._make(row)` makes the
# record: the model types `Node.id` as nullable, for a row not inserted yet)
_RECORD_COLUMNS = (
    col(Node.id),
    col(Node.parent_id),
    col(Node.name),
    col(Node.kind),
    col(Node.owner_id),
    col(Node.size),
    col(Node.mtime),
    col(Node.created),
    col(Node.content_id),
    col(Content.digest),
    col(Node.content_type),
    col(Node.rev),
)
RECORD_COLUMNS = _RECORD_COLUMNS  # for the catalog's other readers of node records


def _records() -> CoreSelect[*tuple[Any, ...]]:
    """Node records (`_RECORD_COLUMNS`: the node's columns and its content's digest)."""
    return core_select(*_RECORD_COLUMNS).outerjoin(Content, col(Node.content_id) == col(Content.id))


NODE_BY_ID = _records().where(col(Node.id) == bindparam("id"))
CHILDREN = _records().where(col(Node.parent_id) == bindparam("parent")).order_by(col(Node.name))
# a folder's members as node records, on the driver's cursor: every listing reads them
CHILD_RECORDS = DirectRead(CHILDREN, row=NodeRecord)
CHILD_PROPS = (
    core_select(col(Prop.node_id), col(Prop.name), col(Prop.value))
    .join(Node, col(Node.id) == col(Prop.node_id))
    .where(col(Node.parent_id) == bindparam("parent"))
)
CHILD_PROP_ROWS = DirectRead(CHILD_PROPS)  # (node id, name, value) of a folder's members
_CHILD_BY_KEY = DirectRead(
    _records().where(
        col(Node.parent_id) == bindparam("parent"), col(Node.name_key) == bindparam("key")
    )
)


_PATH_QUERIES: dict[int, DirectRead] = {}
# Paths up to this deep are resolved by one join; deeper ones a level at a time
# (SQLite joins at most 64 tables, and few paths are this deep).
JOINED_DEPTH = 12


def resolve_names(
    conn: Connection, root_id: int, names: list[str]
) -> tuple[NodeRecord, list[str]] | None:
    """The node at `names` below folder `root_id` and the stored spelling of each of
    those names, or None (a level missing, or one before the last not a folder). One
    query up to `JOINED_DEPTH` levels (a join per level, built once per depth), then
    one per level: every request resolves its path, and a query per level cost most
    of a small GET's lookups."""
    if not names:
        root = conn.execute(NODE_BY_ID, {"id": root_id}).first()
        return (NodeRecord._make(root), []) if root else None
    if len(names) > JOINED_DEPTH:
        upper = resolve_names(conn, root_id, names[:JOINED_DEPTH])
        if upper is None or upper[0].kind != DIR:
            return None
        lower = resolve_names(conn, upper[0].id, names[JOINED_DEPTH:])
        return None if lower is None else (lower[0], upper[1] + lower[1])
    params: dict[str, object] = {"root": root_id}
    params.update((f"k{i}", name_key(name)) for i, name in enumerate(names, 1))
    row = _path_query(len(names)).first(conn, params)
    if row is None:
        return None
    record = NodeRecord._make(row[len(names) - 1 :])
    return record, [str(name) for name in row[: len(names) - 1]] + [record.name]


def _path_query(depth: int) -> DirectRead:
    """SELECT the names of levels 1..depth-1 and the record of level `depth` below
    node :root, level i matched by its name key :k<i>, every level above the last a
    folder."""
    query = _PATH_QUERIES.get(depth)
    if query is not None:
        return query
    table = Node.__table__  # type: ignore[attr-defined]
    levels = [table.alias(f"n{i}") for i in range(depth + 1)]
    joined = levels[0]
    for i in range(1, depth + 1):
        joined = joined.join(
            levels[i],
            and_(
                levels[i].c.parent_id == levels[i - 1].c.id,
                levels[i].c.name_key == bindparam(f"k{i}"),
            ),
        )
    last, contents = levels[-1], Content.__table__  # type: ignore[attr-defined]
    joined = joined.outerjoin(contents, contents.c.id == last.c.content_id)
    record = [last.c[name] for name in NodeRecord._fields[:9]]  # id .. content_id
    record += [contents.c.digest, last.c.content_type, last.c.rev]
    query = DirectRead(
        core_select(*(level.c.name for level in levels[1:-1]), *record)
        .select_from(joined)
        .where(levels[0].c.id == bindparam("root"), *(lv.c.kind == DIR for lv in levels[:-1]))
    )
    _PATH_QUERIES[depth] = query
    return query


def to_record(row: tuple[Node, str | None]) -> NodeRecord:
    node, digest = row
    assert node.id is not None
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
        rev=node.rev,
    )


def require_folder(kind: str | None) -> None:
    """`Conflict` unless `kind` (of the row meant as a parent; None: no row) is a
    folder's. Every write that gives a node a parent checks it here (invariant 28)."""
    if kind != DIR:
        raise Conflict("parent collection does not exist")


def lock_dir(session: Session, dir_id: int) -> Node:
    """Lock a directory row for this transaction; `Conflict` if it is gone or a file."""
    node = session.exec(select(Node).where(col(Node.id) == dir_id).with_for_update()).first()
    require_folder(None if node is None else node.kind)
    assert node is not None
    return node


def find_child(session: Session, parent_id: int, name: str) -> Node | None:
    """The child of `parent_id` whose name equals `name` once normalised, or None."""
    return session.exec(
        select(Node).where(col(Node.parent_id) == parent_id, col(Node.name_key) == name_key(name))
    ).first()


def _locked_folder_with(member: ColumnElement[bool]) -> DirectRead:
    """Folder `parent`'s kind, its row locked for the transaction (FOR UPDATE of that
    row only), and the record of its member matching `member` (all None: none)."""
    folder = aliased(Node)
    return DirectRead(
        core_select(col(folder.kind).label("folder_kind"), *_RECORD_COLUMNS)
        .select_from(folder)
        .outerjoin(Node, and_(col(Node.parent_id) == col(folder.id), member))
        .outerjoin(Content, col(Node.content_id) == col(Content.id))
        .where(col(folder.id) == bindparam("parent"))
        .with_for_update(of=folder)
    )


_FOLDER_AND_CHILD = _locked_folder_with(col(Node.name_key) == bindparam("key"))
_FOLDER_AND_MEMBER = _locked_folder_with(col(Node.id) == bindparam("member"))


def _locked_folder_member(
    conn: Connection, query: DirectRead, params: dict[str, Any]
) -> NodeRecord | None:
    row = query.first(conn, params)
    require_folder(None if row is None else row.folder_kind)
    return None if row is None or row.id is None else NodeRecord._make(row[1:])


def locked_folder_child(conn: Connection, parent_id: int, name: str) -> NodeRecord | None:
    """Lock folder `parent_id`'s row for the transaction and return its member named
    `name` (as `child_record`), in one statement; `Conflict` if the folder is gone or
    a file. The member is read in the statement's snapshot, taken before the folder's
    lock is granted: only for a caller holding the log's order lock
    (`changes.lock_log`), under which no other transaction changes a folder's members
    or a file's row (every such change is logged, design invariant 5)."""
    return _locked_folder_member(
        conn, _FOLDER_AND_CHILD, {"parent": parent_id, "key": name_key(name)}
    )


def locked_folder_member(conn: Connection, parent_id: int, node_id: int) -> NodeRecord | None:
    """As `locked_folder_child`, the member being node `node_id` (None: it is not in
    that folder any more)."""
    return _locked_folder_member(conn, _FOLDER_AND_MEMBER, {"parent": parent_id, "member": node_id})


def child_record(conn: Connection, parent_id: int, name: str) -> NodeRecord | None:
    """The member of `parent_id` whose name equals `name` once normalised, or None
    (one prebuilt Core query)."""
    row = _CHILD_BY_KEY.first(conn, {"parent": parent_id, "key": name_key(name)})
    return NodeRecord._make(row) if row else None


def find_user_id(session: Session, name: str) -> int:
    """The id of user `name`; `NotFound` if there is none."""
    user_id = session.exec(select(col(User.id)).where(col(User.name) == name)).first()
    if user_id is None:
        raise NotFound(f"no user {name!r}")
    return user_id


_ADD_USED = (
    update(User)
    .where(col(User.id) == bindparam("owner"))
    .values(used_bytes=col(User.used_bytes) + bindparam("delta"))
)
_CHARGE = DirectWrite(
    _ADD_USED.returning(col(User.used_bytes), col(User.history_bytes), col(User.quota_bytes))
)


def add_used_bytes(conn: Connection, owner_id: int, delta: int) -> None:
    if delta:
        conn.execute(_ADD_USED, {"owner": owner_id, "delta": delta})


def charge_used_bytes(conn: Connection, owner_id: int, delta: int) -> None:
    """Add `delta` bytes to the owner's usage, locking their row for the rest of the
    transaction (so concurrent charges cannot pass the quota together); `QuotaExceeded`
    if a growth (`delta > 0`) would take them past their quota, with nothing charged.
    Shrinking is always allowed, even for an owner already over quota. What history
    alone keeps (`history_bytes`) counts as used. One statement: the update returns
    the usage it made (under the row's lock), and a refused growth is taken back."""
    returned = _CHARGE.run(conn, {"owner": owner_id, "delta": delta}).rows
    usage = returned[0] if returned else None
    if delta > 0 and usage is not None and usage.quota_bytes is not None:
        used_before = usage.used_bytes + usage.history_bytes - delta  # the row is charged
        left = usage.quota_bytes - used_before
        if delta > left:
            add_used_bytes(conn, owner_id, -delta)
            raise QuotaExceeded(f"quota exceeded: {delta} more bytes, {max(0, left)} left")


def bump_counter(session: Session, name: str) -> None:
    """Add one to counter `name` (created at 1), in the caller's transaction."""
    done = session.exec(
        update(Counter).where(col(Counter.name) == name).values(value=col(Counter.value) + 1)
    )
    if not done.rowcount:
        session.add(Counter(name=name, value=1))


def read_counter(session: Session, name: str) -> int:
    value = session.exec(select(col(Counter.value)).where(col(Counter.name) == name)).first()
    return value or 0


def path_names(session: Session, node_id: int) -> tuple[str, ...]:
    """The names from the home root down to `node_id` (empty for a home)."""
    return _lineage(session, node_id)[1]


def names_below(session: Session, node_id: int, root_id: int | None) -> tuple[str, ...] | None:
    """The names from root `root_id` down to `node_id`; None if the node is gone or
    hangs from another root (a home's node that was trashed hangs from the trash)."""
    top, names = _lineage(session, node_id)
    return names if top is not None and top == root_id else None


def _lineage(session: Session, node_id: int) -> tuple[int | None, tuple[str, ...]]:
    """(the id of the root `node_id` hangs from, the names from it down to the node);
    root None if the node is gone."""
    names: list[str] = []
    node = session.get(Node, node_id)
    while node is not None and node.parent_id is not None:
        names.append(node.name)
        node = session.get(Node, node.parent_id)
    return (None if node is None else node.id), tuple(reversed(names))


# The walk down from a folder carries each node's kind and size, so a sum joins
# nothing to it afterwards. Its step, the children of each node reached, is on
# PostgreSQL a LATERAL subquery (OFFSET 0 keeps it from being flattened into a join),
# which can only be looked up by the parent_id index. As joins to `node`, the planner
# (estimating a recursive query at ten rows a level) hashed the sum's join, and for a
# listing's folders each level of the walk, against a scan of every node: at 43,600
# nodes 1 scan and 9-14 ms for a folder of 1-26 nodes (0.2-0.7 ms by the index), 1-5
# scans for a listing, growing with the store (design invariant 26). SQLite walks its
# queue row by row by the parent_id index either way, and has no LATERAL. Only folders
# are looked up for children: a file has none (invariant 28), and a subtree is mostly
# files, so this skips most of the index lookups.
_CHILDREN = {
    "postgresql": "SELECT {top}n.id, n.kind, n.size FROM t, LATERAL"
    " (SELECT id, kind, size FROM node WHERE parent_id = t.id OFFSET 0) AS n"
    f" WHERE t.kind = '{DIR}'",
    "sqlite": "SELECT {top}n.id, n.kind, n.size FROM node n JOIN t ON n.parent_id = t.id"
    f" WHERE t.kind = '{DIR}'",
}

# the bytes of the files at and below node :root (one statement, whatever the size)
_SUBTREE_FILE_BYTES = {
    dialect: text(
        "WITH RECURSIVE t(id, kind, size) AS"
        " (SELECT id, kind, size FROM node WHERE id = :root UNION ALL"
        f" {children.format(top='')})"
        f" SELECT COALESCE(SUM(size), 0) FROM t WHERE kind = '{FILE}'"
    )
    for dialect, children in _CHILDREN.items()
}

# the bytes of the files below each folder of :ids (one statement for a whole listing)
_SUBTREES_FILE_BYTES = {
    dialect: text(
        "WITH RECURSIVE t(top, id, kind, size) AS"
        " (SELECT id, id, kind, size FROM node WHERE id IN :ids UNION ALL"
        f" {children.format(top='t.top, ')})"
        f" SELECT top, COALESCE(SUM(size), 0) FROM t WHERE kind = '{FILE}' GROUP BY top"
    ).bindparams(bindparam("ids", expanding=True))
    for dialect, children in _CHILDREN.items()
}


def subtree_file_bytes(conn: Connection, root_id: int) -> int:
    """The bytes of the files at and below node `root_id` (0 if none, or no such
    node): one statement, costing what the subtree holds (see `_CHILDREN`)."""
    found = conn.execute(_SUBTREE_FILE_BYTES[conn.dialect.name], {"root": root_id})
    return int(found.scalar_one())


def subtrees_file_bytes(conn: Connection, folder_ids: list[int]) -> list[tuple[int, int]]:
    """(folder id, bytes of the files at and below it) for each of `folder_ids` that
    has any file (at most `db.IN_BATCH` ids; one statement, see `_CHILDREN`)."""
    found = conn.execute(_SUBTREES_FILE_BYTES[conn.dialect.name], {"ids": folder_ids})
    return [(int(top), int(size)) for top, size in found]


def subtree_ids(session: Session, root_id: int) -> list[int]:
    """Ids of `root_id` and every node below it (one recursive query)."""
    tree = select(col(Node.id)).where(col(Node.id) == root_id).cte("tree", recursive=True)
    tree = tree.union_all(select(col(Node.id)).join(tree, col(Node.parent_id) == tree.c.id))
    return list(session.exec(select(tree.c.id)))
