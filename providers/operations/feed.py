"""The change feed's read side: what changed for a user, in commit order, at their paths.

Contract (the JSON API, long poll and SSE build on exactly this):

- `Feed.latest(actor, path="/") -> str`: the cursor of "now" (after every change
  committed so far).
- `Feed.read(actor, cursor, limit, path="/") -> Page`: with a cursor, the entries
  after it in commit order, at most `limit`; without one (None), a bootstrap: the
  current tree (the `path` subtree of the actor's view, `Shared/...` included) as
  `created` entries, parents before members, in pages, whose last page's cursor then
  continues with the log from the moment the bootstrap began. `Page.cursor` is where
  to continue; `has_more` says whether more is there now. Every `FeedEntry` carries
  its own `cursor`, the position right after it: reading from any entry's cursor gives
  exactly the entries after that one (an SSE stream's `id:`; `Last-Event-ID` resumes).
- `Feed.has_changes_after(actor, cursor, path="/") -> bool`: whether `read` would
  return at least one entry now (what a waiter re-checks on every wake-up and tick).
- `Feed.interest(actor)` and `Feed.watch(mark)`: for waking waiters without reading
  every feed: the ids of the users whose rows can reach `actor`'s feed, and (the
  newest seq, the ids of the users with rows after `mark`); a waiter whose interest
  meets those ids re-checks `has_changes_after` (the push branch's `FeedSource`).
- Errors: `BadCursor` (400) for a cursor this store did not make or made for another
  `path`; `Forbidden` (403) for another user's cursor or a link actor; `CursorExpired`
  (410, "reset") for a cursor older than the log keeps (`compact`): start again
  without a cursor; `NotFound` for a `path` the actor does not see.

Exactly once, in order: entries come from the log (design invariant 15: seq order is
commit order), one position per entry, so the pages of a reader, or a stream resumed
at any entry's cursor, neither skip nor repeat. Applying the entries in order to a copy
made by the bootstrap reproduces the server's tree (created = make it or replace it,
modified = update it, deleted = remove it with what is below, moved = rename it with
what is below, replacing what is at the target). A change made while the bootstrap
pages are read is in the log after the bootstrap's start, so it is applied on top.

A cursor is `v1.<payload>.<signature>`, base64url, HMAC-SHA-256 over the payload with
a key kept in the catalog (`ChangeLog.key`): user id, path, and the position, either
in the log (the first seq still to read, entries of that row already given) or in a
bootstrap (its log start, and the path of the last node of the listing given: pages
are read by keyset, `providers.operations.feed_listing`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from providers.catalog import Catalog, NodeRecord
from providers.catalog.changes import (
    CREATED,
    DELETED,
    GRANTED,
    RESTORED,
    REVOKED,
    folder_etag,
)
from providers.errors import BadCursor, CursorExpired, Forbidden, NotFound
from providers.names import split_path
from providers.operations.access import SHARED
from providers.operations.actor import Actor
from providers.operations.feed_listing import Members, Names, listing_page, to_names
from providers.operations.feed_view import (
    FOLDER_KIND,
    FeedEntry,
    FeedView,
    api_kind,
    below,
)

Member = tuple[str, NodeRecord | None]  # (name, node; None for `Shared`)
MAX_LIMIT = 1000
_ROW_BATCH = 2000
_LOG, _BOOT = "l", "b"


@dataclass(frozen=True)
class Page:
    """Entries of the feed, where to continue (`cursor`) and whether more is there."""

    entries: list[FeedEntry]
    cursor: str
    has_more: bool


@dataclass(frozen=True)
class _Position:
    """Where a reader is: in the log (`start` is the first seq to read, `skip` the
    entries of that row already given) or in a bootstrap (the listing given up to
    the path `after`, None at its start; the log then continues at `start`)."""

    user_id: int
    path: str
    phase: str
    start: int
    skip: int
    after: Names | None = None


class Feed:
    """See the module docstring. `compact` is the maintenance step (`davserver gc`)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._hmac: hmac.HMAC | None = None  # keyed once: the key never changes

    def latest(self, actor: Actor, path: str = "/") -> str:
        user_id = _account(actor)
        start = self._catalog.changes.last_seq() + 1
        return self._sign(_Position(user_id, _norm(path), _LOG, start, 0))

    def read(self, actor: Actor, cursor: str | None, limit: int, path: str = "/") -> Page:
        limit = max(1, min(limit, MAX_LIMIT))
        floor = self._catalog.changes.floor()
        if cursor is None:
            start = self._catalog.changes.last_seq() + 1
            position = _Position(_account(actor), _norm(path), _BOOT, start, 0)
        else:
            position = self._open(actor, cursor, path, floor)
        if position.phase == _BOOT:
            return self._bootstrap(actor, position, limit)
        return self._read_log(position, limit, floor)

    def has_changes_after(self, actor: Actor, cursor: str, path: str = "/") -> bool:
        return bool(self.read(actor, cursor, 1, path).entries)

    def interest(self, actor: Actor) -> frozenset[int]:
        """The users whose rows can reach `actor`'s feed: itself (its tree, and rows
        for it alone) and everyone who ever shared with it (`watch` names users so)."""
        user_id = _account(actor)
        granted = self._catalog.changes.user_rows(user_id, (GRANTED,))
        return frozenset({user_id, *(row.owner_id for row in granted)})

    def watch(self, mark: int | None) -> tuple[int, set[int]]:
        """For one watcher of the whole log: (the newest seq, the users, as `interest`
        names them, with rows after `mark`); no users for None (the first look)."""
        if mark is None:
            return self._catalog.changes.last_seq(), set()
        return self._catalog.changes.touched_after(mark)

    # -- cursors -------------------------------------------------------------------

    def _sign(self, position: _Position) -> str:
        p = position
        after = "" if p.after is None else _b64("/".join(p.after).encode())
        payload = f"{p.user_id}:{p.phase}:{p.start}:{p.skip}:{after}:{p.path}".encode()
        mac = self._mac(payload)
        return "v1." + _b64(payload) + "." + _b64(mac)

    def _mac(self, payload: bytes) -> bytes:
        """The signature of `payload` (every entry gets a cursor: the keyed HMAC state
        is made once and copied)."""
        if self._hmac is None:
            self._hmac = hmac.new(self._catalog.changes.key(), digestmod=hashlib.sha256)
        mac = self._hmac.copy()
        mac.update(payload)
        return mac.digest()[:16]

    def _open(self, actor: Actor, cursor: str, path: str, floor: int) -> _Position:
        """The position of a cursor made for `actor` and `path`; see the module
        docstring for the errors."""
        user_id = _account(actor)
        try:
            version, payload_text, mac_text = cursor.split(".")
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except ValueError as e:
            raise BadCursor("not a cursor of this server") from e
        good = self._mac(payload)
        if version != "v1" or not hmac.compare_digest(mac, good):
            raise BadCursor("not a cursor of this server")
        try:
            owner, phase, start, skip, after, made_for = payload.decode("utf-8").split(":", 5)
            listed = to_names(_unb64(after).decode("utf-8")) if after else None
            position = _Position(int(owner), made_for, phase, int(start), int(skip), listed)
        except ValueError as e:  # UnicodeDecodeError is one
            raise BadCursor("not a cursor of this server") from e
        if position.user_id != user_id:
            raise Forbidden("this cursor belongs to another user")
        if made_for != _norm(path):
            raise BadCursor(f"this cursor was made for path {made_for}")
        if position.start <= floor:
            raise CursorExpired("reset")
        return position

    # -- the log -------------------------------------------------------------------

    def _read_log(self, position: _Position, limit: int, floor: int) -> Page:
        changes = self._catalog.changes
        user_id, start = position.user_id, position.start
        grants = changes.user_rows(user_id, (GRANTED, REVOKED))  # one read for both
        view = FeedView.at(self._catalog, user_id, start, floor, grants)
        sharers = sorted({r.owner_id for r in grants if r.kind == GRANTED})
        entries: list[FeedEntry] = []
        batch = min(_ROW_BATCH, 2 * limit + 50)  # rows, some of which may be others'

        def cursor(seq: int, skip: int) -> str:
            return self._sign(_Position(user_id, position.path, _LOG, seq, skip))

        while True:
            rows = changes.rows(user_id, sharers, start, batch)
            for row in rows:
                made = _under(view.translate(row), position.path, self._moved_in)
                if row.kind == RESTORED:  # one row for a whole subtree put back
                    made = [x for e in made for x in (e, *self._moved_in(e))]
                given = position.skip if row.seq == position.start else 0
                for index, entry in enumerate(made[given:], start=given + 1):
                    if len(entries) == limit:
                        return Page(entries, cursor(row.seq, index - 1), True)
                    after = cursor(row.seq, index) if index < len(made) else cursor(row.seq + 1, 0)
                    entries.append(replace(entry, cursor=after))
                start = row.seq + 1
            if len(rows) < batch:
                at = position if start == position.start else replace(position, start=start, skip=0)
                return Page(entries, self._sign(at), False)

    def _moved_in(self, entry: FeedEntry) -> list[FeedEntry]:
        """What a folder that moved into a `path` feed's subtree from outside holds now,
        as `created` entries below `entry.path`: the reader never saw it. Later rows
        about its members follow in the log and apply on top (they set what they
        name, so the replay still ends at the server's tree)."""
        node = self._catalog.tree.get(int(entry.id))
        if node is None or not node.is_dir:
            return []
        walked = _walk(self._catalog, node, entry.path)
        return self._with_sha256([(_node_entry(n, p), n.content_id) for n, p in walked])

    # -- the bootstrap -------------------------------------------------------------

    def _bootstrap(self, actor: Actor, position: _Position, limit: int) -> Page:
        """A page of the listing of the actor's view below `position.path`, read now,
        after the last path the previous page gave; the last page hands over to the
        log at the bootstrap's start."""
        within = to_names(position.path)
        members = self._members(actor, position)
        listed, more = listing_page(members, within, position.after, limit)
        if position.after is None and within and not listed:
            raise NotFound(f"{position.path}: nothing there")
        page = self._with_sha256([(_node_entry(x.node, x.path), x.node.content_id) for x in listed])
        entries = []
        for n, (entry, item) in enumerate(zip(page, listed, strict=True), start=1):
            last = n == len(page) and not more
            at = (
                replace(position, phase=_LOG, after=None)
                if last
                else replace(position, after=item.names)
            )
            entries.append(replace(entry, cursor=self._sign(at)))
        if not more:
            return Page(entries, self._sign(replace(position, phase=_LOG, after=None)), False)
        return Page(entries, self._sign(replace(position, after=listed[-1].names)), True)

    def _with_sha256(self, listed: list[tuple[FeedEntry, int | None]]) -> list[FeedEntry]:
        """The page's entries, files with the SHA-256 of their content (one query)."""
        sums = self._catalog.checksums.of(c for _entry, c in listed if c is not None)
        return [
            replace(entry, sha256=sums[content].sha256) if content in sums else entry
            for entry, content in listed
        ]

    def _members(self, actor: Actor, position: _Position) -> Members:
        """How `listing_page` reads the actor's view: a folder's members by name (in
        Python's order of names, which the keyset compares with, not the database's
        collation); at the top, the home's members and `Shared` (virtual), whose
        members are the nodes received, named as the log names them at the
        bootstrap's start."""
        tree = self._catalog.tree
        home = tree.get(actor.user.home_id)
        if home is None:
            raise NotFound("no home")
        floor = self._catalog.changes.floor()
        view = FeedView.at(self._catalog, position.user_id, position.start, floor)
        received = [(s.name, tree.get(s.via_id)) for s in view.shares.values()]
        shares = sorted(((name, n) for name, n in received if n is not None), key=_by_name)

        def members(names: Names, folder: NodeRecord | None) -> list[Member]:
            if folder is not None:
                return sorted(((n.name, n) for n in tree.children(folder.id)), key=_by_name)
            if names:  # `Shared`
                return list(shares)
            top: list[Member] = [(n.name, n) for n in tree.children(home.id)]
            return sorted([*top, (SHARED, None)] if shares else top, key=_by_name)

        return members


def _by_name(member: Member) -> str:
    return member[0]


def _walk(catalog: Catalog, root: NodeRecord, path: str) -> list[tuple[NodeRecord, str]]:
    """Every node below folder `root` (at `path`), parents first, members by name."""
    out: list[tuple[NodeRecord, str]] = []
    pending = deque([(root, path)] if root.is_dir else [])
    while pending:
        folder, folder_path = pending.popleft()  # a queue: list.pop(0) is O(n)
        for node in catalog.tree.children(folder.id):
            node_path = f"{folder_path}/{node.name}"
            out.append((node, node_path))
            if node.is_dir:
                pending.append((node, node_path))
    return out


def _node_entry(node: NodeRecord, path: str) -> FeedEntry:
    """A bootstrap entry: `node` as it is now, `created` at `path`."""
    return FeedEntry(
        op=CREATED,
        path=path,
        kind=api_kind(node.kind),
        id=str(node.id),
        size=None if node.is_dir else node.size,
        etag=folder_etag(node.id, node.rev) if node.is_dir else node.digest,
        sha256=None,
        mtime=node.mtime,
        at=node.mtime,
    )


def _under(
    entries: list[FeedEntry], path: str, moved_in: Callable[[FeedEntry], list[FeedEntry]]
) -> list[FeedEntry]:
    """The entries about `path` and below (all for '/'): a move across its edge is a
    `created` inside (followed by what a folder holds, `moved_in`) or a `deleted` of
    what left."""
    if path == "/":
        return entries
    kept = []
    for entry in entries:
        inside = below(entry.path, path) is not None
        was = entry.old_path is not None and below(entry.old_path, path) is not None
        if inside and (entry.old_path is None or was):
            kept.append(entry)
        elif inside:
            arrived = replace(entry, op=CREATED, old_path=None)
            kept.append(arrived)
            if arrived.kind == FOLDER_KIND:
                kept.extend(moved_in(arrived))
        elif was and entry.old_path is not None:
            kept.append(replace(entry, op=DELETED, path=entry.old_path, old_path=None))
    return kept


def _account(actor: Actor) -> int:
    """The user id of an account actor; `Forbidden` for a share link."""
    if actor.link is not None:
        raise Forbidden("the change feed is for accounts")
    return actor.user.id


def _norm(path: str) -> str:
    """`path` as '/a/b' (validated names; '/' for the root)."""
    names = split_path(path or "/")
    return "/" + "/".join(names)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as e:
        raise ValueError("bad base64") from e


__all__ = ["MAX_LIMIT", "Feed", "FeedEntry", "Page"]
