"""What an actor sees: paths resolved to nodes and `Place`s (`providers.operations.access`).

Every door names things by path in the actor's own view and asks its `View` for the
`Located` node; the operations act on `Located`s, so the rights of a place are always
the ones the view gave it:

- `HomeView` (an account): its home, plus the virtual `Shared/` listing what others
  granted it (`SharedSpace`); `Shared/<entry>/...` reaches the owner's node with the
  granted rights.
- `LinkView` (a share link): the link's node and what is below it, with the link's
  rights (`edit`: write, `upload`: add new files and folders, others: read); the node
  itself is `fixed` (the link cannot delete, move or rename it), and there is no way
  up.

Lookups go through `Tree.resolve_path`: one indexed query per path level, names
matched normalised, stored spellings returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from providers.catalog import NodeRecord, ShareLinkRecord, UserRecord
from providers.catalog.tree import Tree
from providers.names import name_key
from providers.operations.access import (
    LOCK_KEY_PREFIX,
    SHARED,
    SHARED_KEY,
    Access,
    Place,
    SharedSpace,
    home_place,
)

_LINK_ACCESS = {"edit": Access.WRITE, "upload": Access.ADD}


@dataclass(frozen=True)
class Located:
    """A node as an actor reached it: `node` (None only for the virtual `Shared/`),
    the names of its path in the actor's view (`shown`, stored spellings) and its
    `place` (rights, and where it sits in its owner's tree)."""

    node: NodeRecord | None
    shown: tuple[str, ...]
    place: Place

    @property
    def is_dir(self) -> bool:
        return self.node is None or self.node.is_dir

    def child(self, node: NodeRecord) -> Located:
        """A member of this folder, from a listing of it."""
        return Located(node, (*self.shown, node.name), self.place.child(node.name))


class View(Protocol):
    """Resolves paths for one actor (see the module docstring)."""

    def locate(self, names: Sequence[str]) -> Located | None:
        """The node at `names` (validated names, any spelling), or None if the actor
        has nothing there."""

    def path_of_lock(self, lock_path: str) -> str:
        """The actor's own path (`/a/b`) for a lock key (`Place.lock_path`); a lock
        rooted where the actor sees nothing shows as the nearest visible folder."""


def path_of(names: Sequence[str], *, trailing_slash: bool = False) -> str:
    """`/a/b` for names `a`, `b` ('/' for none), optionally ending in '/'."""
    joined = "/" + "/".join(names)
    return joined + "/" if names and trailing_slash else joined


def _split_lock_path(lock_path: str) -> tuple[str, list[str]]:
    """(owner id as text, names) of a lock key."""
    owner, _, rest = lock_path[len(LOCK_KEY_PREFIX) :].partition("/")
    return owner, [n for n in rest.split("/") if n]


class HomeView:
    """An account's home and its `Shared/` (see the module docstring)."""

    def __init__(self, tree: Tree, shares: SharedSpace, user: UserRecord) -> None:
        self._tree = tree
        self._shares = shares
        self._user = user

    def locate(self, names: Sequence[str]) -> Located | None:
        if names and name_key(names[0]) == SHARED_KEY:
            found = self._shares.locate(self._user.id, names[1:])
            if found is None:
                return None
            node, shown, place = found
            return Located(node, tuple(shown), place)
        resolved = self._tree.resolve_path(self._user.home_id, list(names))
        if resolved is None:
            return None
        node, stored = resolved
        return Located(node, tuple(stored), home_place(self._user.id, stored))

    def path_of_lock(self, lock_path: str) -> str:
        owner, names = _split_lock_path(lock_path)
        shown = []
        if owner.isdigit():
            shown = self._shares.view_names(self._user.id, int(owner), names)
        return path_of(shown or [SHARED])


class LinkView:
    """What a share link reaches (see the module docstring)."""

    def __init__(self, tree: Tree, link: ShareLinkRecord) -> None:
        self._tree = tree
        self._link = link
        self._root = tuple(name for name in link.path.split("/") if name)

    def locate(self, names: Sequence[str]) -> Located | None:
        resolved = self._tree.resolve_path(self._link.node.id, list(names))
        if resolved is None:
            return None
        node, stored = resolved
        access = _LINK_ACCESS.get(self._link.perm, Access.READ)
        place = Place(node.owner_id, (*self._root, *stored), access, fixed=not stored)
        return Located(node, tuple(stored), place)

    def path_of_lock(self, lock_path: str) -> str:
        owner, names = _split_lock_path(lock_path)
        root = [name_key(n) for n in self._root]
        inside = [name_key(n) for n in names[: len(root)]] == root
        if owner == str(self._link.node.owner_id) and inside:
            return path_of(names[len(root) :])
        return "/"
