"""Who may do what where: a request path becomes a node, a `Place` and an `Access`.

A user's WebDAV root is their home, plus one virtual collection `Shared/` (the name
is reserved at the home root; the collection exists while the user has received
something, so homes of people nobody shares with look exactly as they stored them)
listing what others granted them: `Shared/<entry>/...`
reaches the owner's node with the granted rights. Entry names are the shared nodes'
names; a clash is told apart by the owner (`report (alice)`), then by a number.

Every resource carries its `Place`: the access the user has there, and the node's path
in its owner's tree, which keys WebDAV locks. Lock keys must not depend on who looks:
alice's `/doc.txt` and bob's `/doc.txt` are different files (their locks must not
collide), and bob's `/Shared/proj/a.txt` is alice's `/proj/a.txt` (a lock taken by
either must bind the other).

What a user received is cached per process (`SharedSpace`) and reloaded when the
catalog's `acl` counter moves; the counter is read at most every `poll` seconds, so a
grant or revoke made anywhere (another instance, the CLI) applies within that delay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from providers.catalog import PERM_WRITE, Catalog, NodeRecord, ReceivedGrant
from providers.names import name_key

SHARED = "Shared"
SHARED_KEY = name_key(SHARED)
LOCK_KEY_PREFIX = "/\x00"  # see `Place.lock_path`; NUL never passes the request guard


class Access(IntEnum):
    """Rights at a place, ordered: READ < ADD < WRITE < OWNER. ADD (an upload link's)
    may add new files and folders, never change or remove what is there."""

    READ = 1
    ADD = 2
    WRITE = 3
    OWNER = 4


@dataclass(frozen=True)
class Place:
    """Where a resource sits for the requesting user.

    `tree_owner` and `owner_names` locate the node in its owner's home; `access` is
    the user's right there. `fixed` marks what the user may not delete, move or
    rename even with write access: their home, the virtual `Shared/` collection and
    the roots of received shares (only the owner revokes those). `virtual` is the
    `Shared/` collection itself, which holds nothing but entries.
    """

    tree_owner: int
    owner_names: tuple[str, ...]
    access: Access
    fixed: bool = False
    virtual: bool = False

    def child(self, name: str) -> Place:
        """The place of a member (nested grants only widen rights; writes re-resolve)."""
        # Built directly, not with dataclasses.replace: a listing makes one per member.
        return Place(self.tree_owner, (*self.owner_names, name), self.access)

    @property
    def can_add(self) -> bool:
        """May add new members here (a folder)."""
        return self.access >= Access.ADD and not self.virtual

    @property
    def can_write(self) -> bool:
        """May change the content or properties here, or add members to it."""
        return self.access >= Access.WRITE and not self.virtual

    @property
    def can_remove(self) -> bool:
        """May delete, move or rename this very resource."""
        return self.can_write and not self.fixed

    @property
    def lock_path(self) -> str:
        """The viewer-independent path locks are keyed by: `/\\0<owner id>/<names>`.

        A view maps it back to the viewer's own path (`View.path_of_lock`: WsgiDAV shows
        a lock's root that way). The NUL makes it a path no request can name.
        """
        return LOCK_KEY_PREFIX + "/".join((str(self.tree_owner), *self.owner_names))

    @property
    def owner_path(self) -> str:
        """The node's path in its owner's home (`/proj/a.txt`), as the change log
        records it whoever made the change."""
        return "/" + "/".join(self.owner_names)

    def parent(self) -> Place:
        """The place of the folder holding this one (same owner and access)."""
        return Place(self.tree_owner, self.owner_names[:-1], self.access)


def home_place(user_id: int, names: Sequence[str]) -> Place:
    return Place(user_id, tuple(names), Access.OWNER, fixed=not names)


def shared_place(user_id: int) -> Place:
    return Place(user_id, (SHARED,), Access.READ, fixed=True, virtual=True)


@dataclass(frozen=True)
class Entry:
    """One member of `Shared/`: its shown `name`, what was received, and the shared
    node's path in its owner's tree as name keys (`root_keys`, matched against paths
    on every request below `Shared/`, so normalised once)."""

    name: str
    grant: ReceivedGrant
    root_keys: tuple[str, ...]

    @property
    def node(self) -> NodeRecord:
        return self.grant.node

    def covers(self, owner_id: int, keys: tuple[str, ...]) -> bool:
        """Whether the owner's path `keys` lies at or below this entry's node."""
        return self.node.owner_id == owner_id and keys[: len(self.root_keys)] == self.root_keys


def entry_names(received: Sequence[ReceivedGrant]) -> list[Entry]:
    """Name the entries: the node's name; on a clash `name (owner)`; then numbered."""
    names = shown_names([(grant.node.name, grant.owner) for grant in received])
    return [
        Entry(name, grant, _keys(grant.owner_path))
        for name, grant in zip(names, received, strict=True)
    ]


def shown_names(items: Sequence[tuple[str, str]]) -> list[str]:
    """The names under `Shared/` of received nodes given as (node name, owner name),
    in grant order: the node's name; on a clash `name (owner)`; then numbered. The
    feed names entries with it too, so both agree."""
    counts: dict[str, int] = {}
    for name, _owner in items:
        counts[name_key(name)] = counts.get(name_key(name), 0) + 1
    shown: list[str] = []
    taken: set[str] = set()
    for name, owner in items:
        if counts[name_key(name)] > 1:
            name = f"{name} ({owner})"
        candidate, n = name, 2
        while name_key(candidate) in taken:
            candidate, n = f"{name} {n}", n + 1
        taken.add(name_key(candidate))
        shown.append(candidate)
    return shown


def _keys(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(name_key(n) for n in names)


@dataclass(frozen=True)
class _Cached:
    generation: int
    entries: dict[str, Entry]  # by name_key, in grant order


class SharedSpace:
    """What each user received, cached, and paths under `Shared/` resolved with it."""

    def __init__(self, catalog: Catalog, *, poll: float = 0.5) -> None:
        self._catalog = catalog
        self._poll = poll
        self._lock = threading.Lock()
        self._generation = -1
        self._checked_at = float("-inf")
        self._cache: dict[int, _Cached] = {}

    def entries(self, user_id: int) -> dict[str, Entry]:
        """The user's `Shared/` entries by `name_key` of their shown names."""
        generation = self._current_generation()
        cached = self._cache.get(user_id)
        if cached is None or cached.generation != generation:
            received = self._catalog.grants.received(user_id)
            entries = {name_key(e.name): e for e in entry_names(received)}
            cached = _Cached(generation, entries)
            self._cache[user_id] = cached
        return cached.entries

    def invalidate(self) -> None:
        """Forget everything now (after a change made through this process)."""
        with self._lock:
            self._checked_at = float("-inf")

    def _current_generation(self) -> int:
        now = time.monotonic()
        with self._lock:
            if now - self._checked_at < self._poll:
                return self._generation
            self._checked_at = now
        generation = self._catalog.grants.generation()
        with self._lock:
            if generation != self._generation:
                self._generation = generation
                self._cache = {}
        return generation

    def locate(
        self, user_id: int, names: Sequence[str]
    ) -> tuple[NodeRecord | None, list[str], Place] | None:
        """Resolve `names` below `Shared/`: (node, shown names from the home, place), with
        node None for `Shared/` itself; None when nothing is there for this user (and
        `Shared/` itself only exists while they have received something)."""
        if not names:
            return (None, [SHARED], shared_place(user_id)) if self.entries(user_id) else None
        entry = self.entries(user_id).get(name_key(names[0]))
        if entry is None:
            return None
        found = self._catalog.tree.resolve_path(entry.node.id, list(names[1:]))
        if found is None:
            return None
        node, stored = found
        owner_names = (*entry.grant.owner_path, *stored)
        access = self.access_at(user_id, node.owner_id, owner_names)
        place = Place(node.owner_id, owner_names, access, fixed=not stored)
        return node, [SHARED, entry.name, *stored], place

    def access_at(self, user_id: int, owner_id: int, owner_names: Sequence[str]) -> Access:
        """WRITE if any grant the user received covers this path read-write, else READ
        (grants inherit down the tree, so a nested read-write grant widens a read one)."""
        keys = _keys(owner_names)
        for entry in self.entries(user_id).values():
            if entry.grant.perm == PERM_WRITE and entry.covers(owner_id, keys):
                return Access.WRITE
        return Access.READ

    def view_names(self, user_id: int, owner_id: int, owner_names: Sequence[str]) -> list[str]:
        """The user's path to a node given by its owner's path: in their home if it is
        theirs, else through the `Shared/` entry covering it (the entry itself when the
        node lies above every entry); [] if nothing of it is visible."""
        if owner_id == user_id:
            return list(owner_names)
        keys = _keys(owner_names)
        for entry in self.entries(user_id).values():
            if entry.covers(owner_id, keys):
                return [SHARED, entry.name, *owner_names[len(entry.root_keys) :]]
            if entry.node.owner_id == owner_id and entry.root_keys[: len(keys)] == keys:
                return [SHARED, entry.name]
        return []
