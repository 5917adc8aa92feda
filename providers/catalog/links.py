"""Share links: rows behind the signed `/s/<token>` URLs (the signing is davserver's).

Expiry, revocation and download counts live here, in the row, so a token that still
verifies stops working the moment its row says so. Deleting the shared node deletes
its links (`subtrees.remove_subtree`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from providers.catalog.db import Database
from providers.catalog.grants import owned_node
from providers.catalog.records import LINK_PERMS, ShareLinkRecord
from providers.catalog.rows import node_select, path_names, to_record
from providers.catalog.schema import Node, ShareLink, User
from providers.errors import Conflict, InvalidName


class ShareLinks:
    """Create, find, list, revoke share links; count downloads."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        owner: str,
        names: Sequence[str],
        perm: str,
        *,
        password_hash: str | None = None,
        expires_at: float | None = None,
        max_downloads: int | None = None,
    ) -> ShareLinkRecord:
        """A new link to the owner's node at `names`. `InvalidName` for a bad `perm` or
        `max_downloads` < 1, `NotFound` for an unknown owner or path, `Conflict` for a
        whole home or an `upload` link to a file (a drop box is a folder)."""
        if perm not in LINK_PERMS:
            raise InvalidName(f"permission must be one of {', '.join(LINK_PERMS)}")
        if max_downloads is not None and max_downloads < 1:
            raise InvalidName("max downloads must be at least 1")

        def work(s: Session) -> ShareLinkRecord:
            user, node = owned_node(s, owner, names)
            if node.parent_id is None:
                raise Conflict("a whole home cannot be shared; share a folder in it")
            if perm in ("upload", "edit") and node.kind != "dir":
                raise Conflict(f"an {perm} link needs a folder")
            assert user.id is not None and node.id is not None
            row = ShareLink(
                node_id=node.id,
                created_by=user.id,
                perm=perm,
                password_hash=password_hash,
                expires_at=expires_at,
                max_downloads=max_downloads,
                created_at=time.time(),
            )
            s.add(row)
            s.flush()
            return _record(s, row)

        return self._db.run(work)

    def get(self, link_id: int) -> ShareLinkRecord | None:
        """The link with this id, dead or alive (callers check `live`), or None."""
        with self._db.session() as s:
            row = s.get(ShareLink, link_id)
            return _record(s, row) if row is not None else None

    def of_owner(self, owner: str | None = None) -> list[ShareLinkRecord]:
        """Links made by `owner` (every link when None), oldest first."""
        with self._db.session() as s:
            query = select(ShareLink).order_by(col(ShareLink.id))
            if owner is not None:
                query = query.join(User, col(User.id) == col(ShareLink.created_by)).where(
                    col(User.name) == owner
                )
            return [_record(s, row) for row in s.exec(query)]

    def revoke(self, owner: str, link_id: int) -> bool:
        """Revoke the owner's link `link_id`; False if they have no such live link."""

        def work(s: Session) -> bool:
            mine = select(col(User.id)).where(col(User.name) == owner).scalar_subquery()
            done = s.exec(
                update(ShareLink)
                .where(
                    col(ShareLink.id) == link_id,
                    col(ShareLink.created_by) == mine,
                    col(ShareLink.revoked_at).is_(None),
                )
                .values(revoked_at=time.time())
            )
            return bool(done.rowcount)

        return self._db.run(work)

    def count_download(self, link_id: int) -> bool:
        """Count one download if the link allows another (atomic: two racing for the
        last one cannot both get it); False when it does not."""

        def work(s: Session) -> bool:
            done = s.exec(
                update(ShareLink)
                .where(
                    col(ShareLink.id) == link_id,
                    col(ShareLink.revoked_at).is_(None),
                    or_(
                        col(ShareLink.max_downloads).is_(None),
                        col(ShareLink.downloads) < col(ShareLink.max_downloads),
                    ),
                )
                .values(downloads=col(ShareLink.downloads) + 1)
            )
            return bool(done.rowcount)

        return self._db.run(work)


def _record(s: Session, row: ShareLink) -> ShareLinkRecord:
    assert row.id is not None
    found = s.exec(node_select().where(col(Node.id) == row.node_id)).first()
    assert found is not None
    owner = s.exec(select(col(User.name)).where(col(User.id) == row.created_by)).first() or "?"
    return ShareLinkRecord(
        id=row.id,
        node=to_record(found),
        owner=owner,
        path="/" + "/".join(path_names(s, row.node_id)),
        perm=row.perm,
        password_hash=row.password_hash,
        expires_at=row.expires_at,
        max_downloads=row.max_downloads,
        downloads=row.downloads,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
    )


__all__ = ["ShareLinks"]
