"""How one user sees the change log: rows of trees (theirs, their sharers') turned into
feed entries at the user's own paths, `Shared/...` included.

`FeedView` is a small state machine fed the log's rows in seq order: it knows which
nodes the user receives at the current position (from the rows for them alone,
`granted` and `revoked`), where each shared node sits in its owner's tree (a `moved`
row of an ancestor moves it) and the name of its entry under `Shared/` (the names
`SharedSpace` gives, `access.shown_names`, over the shares active at that point, so a
share arriving with a clashing name renames the other: a `moved` entry says so).
`FeedView.at(position)` rebuilds that state from the log below a position, so a
reader can start anywhere the log still covers.

A row of a sharer's tree means something to the user only inside a share they have at
that point: there it becomes the entry at `Shared/<entry>/<rest>`; a move into a
share from outside is skipped, since the rows for the user that follow it list what
they newly see (`providers.catalog.sharelog`), and a move out of one is `deleted`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from providers.catalog import Catalog, ChangeRecord
from providers.catalog.changes import (
    CREATED,
    DELETED,
    GRANTED,
    MODIFIED,
    MOVED,
    RESTORED,
    REVOKED,
    folder_etag,
)
from providers.catalog.records import DIR
from providers.operations.access import SHARED, shown_names

OPS = (CREATED, MODIFIED, DELETED, MOVED, RESTORED)  # the rows a feed shows
FILE_KIND, FOLDER_KIND = "file", "folder"  # what the API calls them


@dataclass(frozen=True)
class FeedEntry:
    """One change as the user sees it: `op` (created, modified, deleted, moved),
    `path` (and `old_path` for a move) in the user's view, the node's `kind` (file or
    folder), stable `id`, `size`, `etag`, `sha256` (files, when known) and `mtime` as
    of the change, and `at`, when it was committed. `cursor` is the position right
    after it (the SSE `id:`; see `providers.operations.feed`)."""

    op: str
    path: str
    kind: str
    id: str
    size: int | None
    etag: str | None
    sha256: str | None
    mtime: float | None
    at: float
    old_path: str | None = None
    cursor: str = ""

    def to_json(self) -> dict[str, Any]:
        """The entry as the API sends it (`old_path` only for moves, no cursor)."""
        body: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.old_path is not None:
            body["old_path"] = self.old_path
        body.update(
            kind=self.kind,
            id=self.id,
            size=self.size,
            etag=self.etag,
            sha256=self.sha256,
            mtime=self.mtime,
            at=self.at,
        )
        return body


def api_kind(kind: str | None) -> str:
    """`folder` for a directory, `file` otherwise (the API's spelling)."""
    return FOLDER_KIND if kind == DIR else FILE_KIND


def row_entry(row: ChangeRecord, op: str, path: str, old_path: str | None = None) -> FeedEntry:
    """The entry of `row` at `path` (the user's); a folder's etag is its id and seq. A
    trash item put back (`restored`) is `created` (the feed reader lists what it holds)."""
    is_dir = row.node_kind == DIR
    return FeedEntry(
        op=CREATED if op == RESTORED else op,
        path=path,
        kind=api_kind(row.node_kind),
        id=str(row.node_id),
        size=None if is_dir else row.size,
        etag=folder_etag(row.node_id, row.seq) if is_dir else row.etag,
        sha256=None if is_dir else row.sha256,
        mtime=row.mtime,
        at=row.at,
        old_path=old_path,
    )


def below(path: str, root: str) -> str | None:
    """`path` relative to `root` ('' for the root itself, '/x/y' below it), or None
    when it lies elsewhere."""
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) :]
    return None


@dataclass
class _Share:
    """A node the user receives: its owner, its path in the owner's tree now, and the
    name of its entry under `Shared/`."""

    via_id: int
    owner_id: int
    root: str
    kind: str
    since: int  # the seq of its `granted` row: only later moves move it
    name: str = ""

    @property
    def node_name(self) -> str:
        return self.root.rsplit("/", 1)[-1]

    def shown(self, rest: str) -> str:
        return f"/{SHARED}/{self.name}{rest}"


@dataclass
class FeedView:
    """The user's shares at a position of the log, and the translation of rows (see
    the module docstring). `owner_name` gives an owner's account name (clashes)."""

    user_id: int
    owner_name: Callable[[int], str]
    shares: dict[int, _Share] = field(default_factory=dict)  # by via_id, grant order

    @classmethod
    def at(
        cls,
        catalog: Catalog,
        user_id: int,
        start: int,
        floor: int,
        grants: list[ChangeRecord] | None = None,
    ) -> FeedView:
        """The view before row `start`: shares from the user's rows below it, their
        roots moved by their owners' `moved` rows since (rows kept below `floor` were
        brought up to date by compaction). `grants`: the user's `granted` and
        `revoked` rows if the caller read them already (any seq; read here if None)."""
        names: dict[int, str] = {}

        def owner_name(owner_id: int) -> str:
            if owner_id not in names:
                user = catalog.users.by_id(owner_id)
                names[owner_id] = user.name if user is not None else str(owner_id)
            return names[owner_id]

        view = cls(user_id, owner_name)
        if grants is None:
            grants = catalog.changes.user_rows(user_id, (GRANTED, REVOKED), before=start)
        for row in (r for r in grants if r.seq < start):
            if row.kind == GRANTED and row.via_id is not None:
                view.shares[row.via_id] = _share(row)
            elif row.via_id is not None:
                view.shares.pop(row.via_id, None)
        since: dict[int, int] = {}
        for share in view.shares.values():
            since[share.owner_id] = min(since.get(share.owner_id, share.since), share.since)
        for owner_id, first in since.items():
            for move in catalog.changes.moves(owner_id, max(first, floor), start):
                view._move_roots(move)
        view._rename()
        return view

    def translate(self, row: ChangeRecord) -> list[FeedEntry]:
        """The entries `row` makes for the user (none if it is not theirs to see),
        updating the view; `row` is the next row of the log after the last one given."""
        if row.user_id == self.user_id:
            return self._for_user(row)
        if row.user_id is not None:
            return []
        if row.owner_id == self.user_id:
            if row.kind not in OPS:
                return []
            return [row_entry(row, row.kind, row.path, row.old_path)]
        return self._in_shares(row)

    def _for_user(self, row: ChangeRecord) -> list[FeedEntry]:
        via = row.via_id
        if via is None:
            return []
        if row.kind == GRANTED:
            self.shares[via] = _share(row)
            renamed = self._rename()
            return [*renamed, row_entry(row, CREATED, self.shares[via].shown(""))]
        if row.kind == REVOKED:
            revoked = self.shares.pop(via, None)
            if revoked is None:
                return []
            gone = row_entry(row, DELETED, revoked.shown(""))
            return [gone, *self._rename()]
        share = self.shares.get(via)
        rest = below(row.path, share.root) if share is not None else None
        if share is None or rest is None or row.kind not in OPS:
            return []
        return [row_entry(row, row.kind, share.shown(rest))]

    def _in_shares(self, row: ChangeRecord) -> list[FeedEntry]:
        """A sharer's row, seen through each share of theirs that covers it."""
        mine = [s for s in self.shares.values() if s.owner_id == row.owner_id]
        if not mine or row.kind not in OPS:
            return []
        if row.kind != MOVED or row.old_path is None:
            found = [(s, below(row.path, s.root)) for s in mine]
            return [row_entry(row, row.kind, s.shown(r)) for s, r in found if r is not None]
        before = {s.via_id: (s, below(row.old_path, s.root)) for s in mine}
        old_shown = {v: s.shown(rest) for v, (s, rest) in before.items() if rest is not None}
        self._move_roots(row)
        out = self._rename(skip={v for v, s in self.shares.items() if row.node_id == v})
        for share in mine:
            rest = below(row.path, share.root)
            old = old_shown.get(share.via_id)
            if rest is not None and old is not None:
                new = share.shown(rest)
                if new != old:
                    out.append(row_entry(row, MOVED, new, old))
            elif old is not None:
                out.append(row_entry(row, DELETED, old))
        return out

    def _move_roots(self, move: ChangeRecord) -> None:
        """Follow a `moved` row of an owner's tree in the roots of their shares."""
        if move.old_path is None:
            return
        for share in self.shares.values():
            if share.owner_id != move.owner_id or move.seq <= share.since:
                continue
            rest = below(share.root, move.old_path)
            if rest is not None:
                share.root = move.path + rest

    def _rename(self, skip: set[int] | None = None) -> list[FeedEntry]:
        """Name every entry again (a share came, went or was renamed); a `moved` entry
        for each whose name changed, except those in `skip` (the caller says it)."""
        ordered = list(self.shares.values())
        names = shown_names([(s.node_name, self.owner_name(s.owner_id)) for s in ordered])
        moved: list[FeedEntry] = []
        for share, name in zip(ordered, names, strict=True):
            if share.name and share.name != name and share.via_id not in (skip or set()):
                old = share.shown("")
                share.name = name
                moved.append(_rename_entry(share, old))
            share.name = name
        return moved


def _share(granted: ChangeRecord) -> _Share:
    assert granted.via_id is not None
    kind = api_kind(granted.node_kind)
    return _Share(granted.via_id, granted.owner_id, granted.path, kind, granted.seq)


def _rename_entry(share: _Share, old: str) -> FeedEntry:
    """A `Shared/` entry that only changed its name (the node is unchanged: its
    fields are not at hand, the client keeps them)."""
    return FeedEntry(
        op=MOVED,
        path=share.shown(""),
        kind=share.kind,
        id=str(share.via_id),
        size=None,
        etag=None,
        sha256=None,
        mtime=None,
        at=0.0,
        old_path=old,
    )
