"""What a damaged chunk damages: every file, old version and trash item that names it.

fsck (`providers.gc.check_store`) asks this for the chunks it found missing, of the
wrong size or corrupt, and names each use to the operator: the current file at its
path, an old version of a file (retention keeps it; a snapshot of that moment reads
it too), a file in the trash (at the path it would be restored to). Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, or_, select

from providers.catalog.db import IN_BATCH
from providers.catalog.schema import Extent, Node, User, Version

FILE, VERSION, TRASH = "file", "version", "trash"


@dataclass(frozen=True, order=True)
class FileUse:
    """One use of a chunk: the owner, the file's path in the owner's home (for a trash
    item, the path it is restored to), and `kind`: `file` (the current content),
    `version` (an old version, written at `written_at`) or `trash` (a trashed file's
    content)."""

    owner: str
    path: str
    kind: str = FILE
    written_at: float | None = None

    def describe(self) -> str:
        """`owner:/path`, with what it is when not the current file."""
        where = f"{self.owner}:{self.path}"
        if self.kind == TRASH:
            return f"{where} (in the trash)"
        if self.kind == VERSION:
            return f"{where} (an old version)"
        return where


def chunk_users(session: Session, hashes: list[str]) -> dict[str, list[FileUse]]:
    """For each of `hashes` that anything names: its uses, sorted (see `FileUse`)."""
    found: dict[str, set[FileUse]] = {}
    for start in range(0, len(hashes), IN_BATCH):
        batch = hashes[start : start + IN_BATCH]
        for chunk_hash, use in [*_current(session, batch), *_old_versions(session, batch)]:
            found.setdefault(chunk_hash, set()).add(use)
    return {h: sorted(uses) for h, uses in found.items()}


def _current(session: Session, batch: list[str]) -> list[tuple[str, FileUse]]:
    """The files (in a home or in the trash) whose content names a chunk of `batch`."""
    rows = session.exec(
        select(col(Extent.chunk_hash), col(Node.id), col(User.name))
        .join(Node, col(Node.content_id) == col(Extent.content_id))
        .join(User, col(User.id) == col(Node.owner_id))
        .where(col(Extent.chunk_hash).in_(batch))
        .distinct()
    ).all()
    uses = []
    for chunk_hash, node_id, owner in rows:
        if node_id is not None:  # always: a primary key, typed optional by sqlmodel
            path, trashed = _where(session, node_id)
            uses.append((chunk_hash, FileUse(owner, path, TRASH if trashed else FILE)))
    return uses


def _old_versions(session: Session, batch: list[str]) -> list[tuple[str, FileUse]]:
    """The kept versions, other than their file's current content, naming a chunk."""
    rows = session.exec(
        select(
            col(Extent.chunk_hash), col(Version.node_id), col(Version.created_at), col(User.name)
        )
        .join(Version, col(Version.content_id) == col(Extent.content_id))
        .join(Node, col(Node.id) == col(Version.node_id))
        .join(User, col(User.id) == col(Node.owner_id))
        .where(col(Extent.chunk_hash).in_(batch))
        .where(or_(col(Node.content_id).is_(None), col(Node.content_id) != col(Version.content_id)))
        .distinct()
    ).all()
    uses = []
    for chunk_hash, node_id, written_at, owner in rows:
        path, _ = _where(session, node_id)
        uses.append((chunk_hash, FileUse(owner, path, VERSION, written_at)))
    return uses


def _where(session: Session, node_id: int) -> tuple[str, bool]:
    """(the node's path in its owner's home, whether it is in the trash). A trashed
    subtree's root knows the path it came from (`Node.trash_path`); the names below
    it follow."""
    names: list[str] = []
    node = session.get(Node, node_id)
    while node is not None and node.parent_id is not None:
        if node.trashed_at is not None:
            base = (node.trash_path or "").strip("/")
            return "/" + "/".join([base, *reversed(names)]).strip("/"), True
        names.append(node.name)
        node = session.get(Node, node.parent_id)
    return "/" + "/".join(reversed(names)), False
