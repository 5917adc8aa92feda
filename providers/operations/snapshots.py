"""Snapshots (issue 16): a user's home as it was at a moment, read-only.

How a snapshot at moment T is built (`SnapshotState`), from the catalog's rows
(`providers.catalog.snapshots`) only, since the tree keeps no past of its own:

1. Load the owner's nodes (id, parent, name, kind) as they are now: the home's
   subtree and the trash's. Trash items (subtrees re-parented under the trash root)
   start detached. Nodes a log row below names that belong elsewhere now (moved into
   another owner's share: logged as `deleted` for this owner) are loaded too, with
   what is below them.
2. Undo, newest first, every row of the owner's tree log (not the per-grantee rows)
   made at or after the cutoff: `created` and `restored` detach the node; `deleted`
   re-attaches it (when it still exists: a purged one is gone for good) at the row's
   path, i.e. under the node at that path's folder in the tree as undone so far, with
   the path's last name; `moved` re-attaches it at `old_path`; `modified` changes no
   place. A folder moved is one row, so its members follow it for free; a file
   deleted inside a folder later deleted too comes back inside it.
3. A file's content at T: its current one, unless a `modified` row since names it
   (a write, a version restore, an mtime or property change); then its newest version
   row written before the cutoff (the rows thinning kept: if it dropped the exact
   one, the newest older one it kept; if none is that old, its oldest kept one, the
   closest to T there is, rather than vanish; without any row, its current content).
   Version rows are not asked first: a file moved over another one takes over the
   other's rows and gets its own current row again, dated by the move, so before the
   move its rows would tell the other file's content. Sizes, mtimes and ETags are
   those contents'.

Moments have second resolution (`2026-12-01T10:00:00Z`, UTC) and mean the end of
that second: the cutoff is T + 1 s, exclusive. A moment is in the window while the
log still holds every row after it: compaction (`change_retention`) raises the floor
below which snapshots are refused, and moments in the future are refused too.

What a snapshot does not show: the virtual `Shared/` (it is the owner's home only),
dead properties, and what was permanently removed (purged from the trash, by hand
or by `trash_retention`, or to make room under a quota).

Built states are cached briefly per (owner, cutoff) (`Snapshots.state`): WebDAV
asks many questions per request, and a past moment's state only changes when the
trash is purged or versions are thinned.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence

from providers.catalog import Catalog, ChangeRecord, ContentThen, NodeRecord
from providers.catalog.changes import CREATED, DELETED, MODIFIED, MOVED, RESTORED
from providers.errors import InvalidName
from providers.names import name_key, split_path
from providers.operations.access import SHARED_KEY

MOMENT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
CACHE_SIZE = 8
CACHE_SECONDS = 10.0


def parse_moment(text: str) -> float | None:
    """The cutoff (epoch seconds, exclusive) of a moment written `2026-12-01T10:00:00Z`
    (UTC): the end of that second. None when `text` is not one."""
    try:
        parsed = time.strptime(text, MOMENT_FORMAT)
    except ValueError:
        return None
    return float(calendar.timegm(parsed) + 1)


def moment_name(at: float) -> str:
    """The moment (as `parse_moment` reads it) of the second holding time `at`."""
    return time.strftime(MOMENT_FORMAT, time.gmtime(int(at)))


class SnapshotState:
    """The owner's home as it was before `cutoff` (see the module docstring)."""

    def __init__(self, catalog: Catalog, owner_id: int, cutoff: float) -> None:
        self.owner_id, self.cutoff = owner_id, cutoff
        self._reads = catalog.snapshots
        source = self._reads.source(owner_id, cutoff)
        self.home_id = source.home_id if source else 0
        self._nodes = {node.id: node for node in (source.nodes if source else [])}
        self._parent: dict[int, int | None] = {}
        self._name: dict[int, str] = {}
        self._children: dict[int, dict[str, int]] = {}
        self._contents: dict[int, ContentThen] = {}
        roots = {n.id for n in self._nodes.values() if n.parent_id is None} - {self.home_id}
        for node in self._nodes.values():
            parent = None if node.parent_id in roots else node.parent_id
            self._attach(node.id, parent, node.name)
        rows = source.rows if source else []
        for row in reversed(rows):
            self._undo(row)
        # files whose content may have changed since: theirs is read from versions
        self._rewritten = {row.node_id for row in rows if row.kind == MODIFIED}

    def locate(self, names: Sequence[str]) -> NodeRecord | None:
        """The node at `names` below the home (the home for []), as it was."""
        found = self._find(names)
        return None if found is None else self.record(found)

    def members(self, folder_id: int) -> list[NodeRecord]:
        """The members of a folder as it was, by name (contents loaded at once)."""
        ids = list(self._children.get(folder_id, {}).values())
        if folder_id == self.home_id:
            ids = [i for i in ids if name_key(self._name[i]) != SHARED_KEY]
        self._load_contents(ids)
        return sorted((self.record(i) for i in ids), key=lambda n: n.name)

    def walk(self, root: NodeRecord) -> Iterator[tuple[NodeRecord, tuple[str, ...]]]:
        """`root` and everything below it as it was, parents first, each with its
        names relative to `root` (() for `root` itself)."""
        pending: list[tuple[NodeRecord, tuple[str, ...]]] = [(root, ())]
        while pending:
            node, names = pending.pop()
            yield node, names
            if node.is_dir:
                below = self.members(node.id)
                pending.extend((m, (*names, m.name)) for m in reversed(below))

    def record(self, node_id: int) -> NodeRecord:
        """Node `node_id` as it was: its place, and a file's content then."""
        node = self._nodes[node_id]
        node = node._replace(
            parent_id=self._parent.get(node_id),
            name=self._name.get(node_id, node.name),
            owner_id=self.owner_id,
            rev=0,
        )
        if node.is_dir:
            return node
        self._load_contents([node_id])
        then = self._contents.get(node_id)
        if then is None:
            return node
        return node._replace(
            content_id=then.content_id, digest=then.digest, size=then.size, mtime=then.mtime
        )

    def _load_contents(self, ids: Iterable[int]) -> None:
        missing = [
            i
            for i in ids
            if i in self._rewritten and i not in self._contents and not self._nodes[i].is_dir
        ]
        if missing:
            self._contents.update(self._reads.contents_at(missing, self.cutoff))

    def _find(self, names: Sequence[str]) -> int | None:
        current: int | None = self.home_id if self.home_id in self._nodes else None
        for depth, name in enumerate(names):
            if current is None:
                return None
            key = name_key(name)
            if depth == 0 and key == SHARED_KEY:
                return None
            current = self._children.get(current, {}).get(key)
        return current

    def _undo(self, row: ChangeRecord) -> None:
        if row.node_id not in self._nodes or row.node_id == self.home_id:
            return
        if row.kind in (CREATED, RESTORED):
            self._detach(row.node_id)
        elif row.kind == DELETED:
            self._put_back(row.node_id, row.path)
        elif row.kind == MOVED and row.old_path and row.old_owner_id in (None, self.owner_id):
            self._put_back(row.node_id, row.old_path)

    def _put_back(self, node_id: int, path: str) -> None:
        """Attach the node at `path` as the tree stands now in the undoing."""
        try:
            names = split_path(path)
        except InvalidName:
            return
        parent = self._find(names[:-1]) if names else None
        if parent is None or self._is_within(parent, node_id):
            return
        self._detach(node_id)
        taken = self._children.get(parent, {}).get(name_key(names[-1]))
        if taken is not None:
            self._detach(taken)
        self._attach(node_id, parent, names[-1])

    def _is_within(self, node_id: int, root_id: int) -> bool:
        current: int | None = node_id
        while current is not None:
            if current == root_id:
                return True
            current = self._parent.get(current)
        return False

    def _attach(self, node_id: int, parent: int | None, name: str) -> None:
        self._parent[node_id], self._name[node_id] = parent, name
        if parent is not None:
            self._children.setdefault(parent, {})[name_key(name)] = node_id

    def _detach(self, node_id: int) -> None:
        parent = self._parent.get(node_id)
        if parent is not None:
            members = self._children.get(parent, {})
            key = name_key(self._name[node_id])
            if members.get(key) == node_id:
                del members[key]
        self._parent[node_id] = None


class Snapshots:
    """Snapshot states of homes, the window of moments, and the days with changes."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, float], tuple[float, SnapshotState]] = OrderedDict()

    def available(self, cutoff: float, now: float | None = None) -> bool:
        """Whether the moment ending at `cutoff` is in the window: not in the future,
        and after every row compaction removed."""
        now = time.time() if now is None else now
        if cutoff - 1 > now:
            return False
        start = self._catalog.snapshots.window_start()
        return start is None or cutoff > start

    def state(self, owner_id: int, cutoff: float) -> SnapshotState:
        """`owner_id`'s home before `cutoff`, from the cache when built lately (a
        moment not over yet is never cached: its changes may still come)."""
        key, now = (owner_id, cutoff), time.time()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < CACHE_SECONDS:
                self._cache.move_to_end(key)
                return cached[1]
        state = SnapshotState(self._catalog, owner_id, cutoff)
        if cutoff <= now:
            with self._lock:
                self._cache[key] = (now, state)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return state

    def forget(self) -> None:
        """Drop every cached state (the next question builds its state again)."""
        with self._lock:
            self._cache.clear()

    def days(self, owner_id: int) -> list[float]:
        """For each UTC day with changes of `owner_id`'s tree in the window, the time
        of its last change, oldest day first."""
        last: dict[int, float] = {}
        for at in self._catalog.snapshots.change_times(owner_id):
            day = int(at // 86400)
            last[day] = max(at, last.get(day, at))
        return [last[day] for day in sorted(last)]
