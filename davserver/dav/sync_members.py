"""Which members a sync-collection REPORT (`davserver.dav.sync_collection`) answers
with. Paths are the account's own (`/a/b`, `Shared/...` included), as the change feed
(`providers.operations.feed`) names them; `root` is the synchronized collection's.

Every member is answered as it is *now* (RFC 6578 3.5: a member removed and mapped
again is reported changed, never removed), so the work here is choosing paths:

- `listing`: an initial sync: the members below `root` (direct ones for sync-level 1),
  in preorder with each folder's members by name, which is the order of their names'
  tuples; so a listing cut by `DAV:limit` resumes after the last path given.
- `ChangeSet`: an incremental sync: the paths the feed's entries touch. An entry
  touches its path and its old path (a move), and every folder between them and
  `root`, whose ETag moved with it (design invariant 16). For sync-level 1 that is the
  direct member they lie in. For infinite, a folder created or moved in brings
  everything below it now (the feed gives a move one entry, and a move across
  `root`'s edge one `created`), and a folder removed is one path: a client drops what
  it held below it. What it held cannot be known here, so if such a folder's path
  holds something again now, the token cannot be brought up to date (`TokenInvalid`:
  the client syncs again from empty); so too if `root` itself was removed or
  replaced since the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from providers.catalog.changes import CREATED, DELETED, MODIFIED, MOVED
from providers.operations.feed import FeedEntry
from providers.operations.feed_listing import Names
from providers.operations.feed_view import FOLDER_KIND


class TokenInvalid(Exception):
    """The token cannot be brought up to date: the client must sync from empty."""


class Snapshot(Protocol):
    """The tree as it is now, as one request sees it (`LiveTree`)."""

    def get(self, path: str) -> Any:
        """The resource at exactly `path` (stored spelling), or None."""

    def members(self, path: str) -> list[Any]:
        """The members of the folder at `path`, sorted by name ([] if none there)."""


def join(root: str, names: Names) -> str:
    """The path of `names` below `root`."""
    return ("" if root == "/" else root) + "/" + "/".join(names)


def parent_of(path: str) -> str:
    """The folder `path` is in."""
    return path.rsplit("/", 1)[0] or "/"


def names_below(path: str, root: str) -> Names | None:
    """The names of `path` below `root` (() for `root` itself), None if outside it."""
    prefix = "" if root == "/" else root
    if path in (root, prefix):
        return ()
    if not path.startswith(prefix + "/"):
        return None
    return tuple(path[len(prefix) + 1 :].split("/"))


class LiveTree:
    """`Snapshot` over a WebDAV provider: lookups of the request's view, each path
    looked up once (members found by a listing are kept too). A path found under
    another spelling (names match normalised) is not the one asked for: a rename
    that only changes the spelling removes the old path."""

    def __init__(self, provider: Any, environ: dict[str, Any]) -> None:
        self._provider = provider
        self._environ = environ
        self._known: dict[str, Any] = {}

    def get(self, path: str) -> Any:
        if path not in self._known:
            found = self._provider.get_resource_inst(path, self._environ)
            if found is not None and (found.path.rstrip("/") or "/") != path:
                found = None
            self._known[path] = found
        return self._known[path]

    def members(self, path: str) -> list[Any]:
        folder = self.get(path)
        if folder is None or not folder.is_collection:
            return []
        found = sorted(folder.get_member_list(), key=lambda member: member.name)
        for member in found:
            self._known[join(path, (member.name,))] = member
        return found


def listing(
    tree: Snapshot, root: str, *, infinite: bool, after: Names | None, limit: int | None
) -> tuple[list[tuple[str, Any]], bool]:
    """(path, resource) of the members below `root` after the names `after` (all
    for None), at most `limit`, and whether more are left (module docstring)."""
    found: list[tuple[str, Any]] = []
    for names, member in _preorder(tree, root, infinite=infinite, after=after):
        if limit is not None and len(found) == limit:
            return found, True
        found.append((join(root, names), member))
    return found, False


def _preorder(
    tree: Snapshot, root: str, *, infinite: bool, after: Names | None
) -> Iterator[tuple[Names, Any]]:
    """The members below `root` in the order of their names, those after `after`
    only; a subtree wholly before it is not listed at all (a loop, not recursion:
    paths may be deep)."""
    stack: list[tuple[Names, Iterator[Any]]] = [((), iter(tree.members(root)))]
    while stack:
        parent, members = stack[-1]
        member = next(members, None)
        if member is None:
            stack.pop()
            continue
        names = (*parent, member.name)
        if after is None or names > after:
            yield names, member
        elif after[: len(names)] != names:
            continue  # given before, with everything below it
        if infinite and member.is_collection:
            stack.append((names, iter(tree.members(join(root, names)))))


class ChangeSet:
    """The members the feed's entries touch (module docstring), in `members`: path ->
    whether it was a folder when first touched (the client's idea of it, which the
    href of a removed one follows)."""

    def __init__(self, tree: Snapshot, root: str, *, infinite: bool) -> None:
        self.members: dict[str, bool] = {}
        self._tree = tree
        self._root = root
        self._infinite = infinite
        self._removed: set[str] = set()  # folders a client held members of
        self._walked: set[str] = set()

    def touched(self, entry: FeedEntry) -> dict[str, bool]:
        """The members `entry` touches that are not in `members` yet; `TokenInvalid`
        if it removes or replaces `root` itself."""
        if names_below(entry.path, self._root) == () and entry.op != MODIFIED:
            raise TokenInvalid("the collection itself was removed or replaced")
        is_dir = entry.kind == FOLDER_KIND
        found: dict[str, bool] = {}
        for path in (entry.path, entry.old_path):
            names = None if path is None else names_below(path, self._root)
            if names:
                found.update(self._with_folders_above(names, is_dir))
        if self._infinite and is_dir and entry.op in (CREATED, MOVED):
            found.update(self._walk(entry.path))
        return {path: kind for path, kind in found.items() if path not in self.members}

    def add(self, entry: FeedEntry, touched: dict[str, bool]) -> None:
        """Take in `entry`, whose `touched` members `touched` gave."""
        self.members.update(touched)
        if not self._infinite or entry.kind != FOLDER_KIND:
            return
        removed = {DELETED: entry.path, MOVED: entry.old_path}.get(entry.op)
        if removed is not None and names_below(removed, self._root):
            self._removed.add(removed)

    def check(self) -> None:
        """`TokenInvalid` if a removed folder's path holds something again now."""
        if any(self._tree.get(path) is not None for path in self._removed):
            raise TokenInvalid("a folder was replaced: what it held is not known here")

    def ordered(self) -> list[tuple[str, bool]]:
        """`members` in the order of their names (parents before members)."""
        return sorted(self.members.items(), key=lambda item: item[0].split("/"))

    def _with_folders_above(self, names: Names, is_dir: bool) -> dict[str, bool]:
        """The member at `names` and the folders above it (the direct member only for
        sync-level 1); each of those is a folder."""
        depth = len(names) if self._infinite else 1
        return {
            join(self._root, names[:n]): is_dir if n == len(names) else True
            for n in range(1, depth + 1)
        }

    def _walk(self, path: str) -> dict[str, bool]:
        """Everything below the folder at `path` now; nothing if it or a folder above
        it was walked already (this request sees one tree)."""
        names = names_below(path, self._root) or ()
        if any(join(self._root, names[:n]) in self._walked for n in range(1, len(names) + 1)):
            return {}
        self._walked.add(path)
        found, _more = listing(self._tree, path, infinite=True, after=None, limit=None)
        return {member_path: member.is_collection for member_path, member in found}
