"""The feed's bootstrap listing, read page by page by a keyset.

The listing is the user's view (their home, and each node they receive at
`Shared/<name>`) in path order: paths compare as tuples of names, so a folder comes
right before everything below it (parents before members, as the feed promises). A
page is the nodes strictly after the last path the previous page gave (`after`), so:

- nothing shifts between pages: an item removed or added before the boundary moves
  no other item across it (an offset would skip an unchanged item after a deletion);
  such a change is in the log after the bootstrap's start and applies on top;
- a page costs what it lists plus the folders on the way to `after` (one query each):
  subtrees wholly before `after` are never read, so reading a large tree in pages is
  linear in its size, not quadratic.

`Shared` itself is not listed (it is no node; clients make it with its first entry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from providers.catalog import NodeRecord

Names = tuple[str, ...]
Members = Callable[[Names, NodeRecord | None], list[tuple[str, NodeRecord | None]]]


@dataclass(frozen=True)
class Listed:
    """One node of the listing at its path in the user's view."""

    names: Names
    node: NodeRecord

    @property
    def path(self) -> str:
        return "/" + "/".join(self.names)


def listing_page(
    members: Members, within: Names, after: Names | None, limit: int
) -> tuple[list[Listed], bool]:
    """Up to `limit` nodes at or below `within`, in path order, strictly after `after`
    (None: from the start); and whether more follow. `members(names, folder)` gives
    the members of the folder at `names` as (name, node), sorted by name; a virtual
    folder (node None: the top of the view, `Shared`) is descended, never listed."""
    found: list[Listed] = []
    for listed in _walk(members, None, (), within, after):
        if len(found) == limit:
            return found, True
        found.append(listed)
    return found, False


def _walk(
    members: Members, folder: NodeRecord | None, prefix: Names, within: Names, after: Names | None
) -> Iterator[Listed]:
    """The nodes below `folder` (at `prefix`) that the page may hold, in path order,
    lazily: the caller stops once its page is full."""
    for name, node in members(prefix, folder):
        names = (*prefix, name)
        if not (_starts(within, names) or _starts(names, within)):
            continue  # neither on the way to `within` nor inside it
        if after is not None and names <= after and not _starts(after, names):
            continue  # this subtree lies wholly before `after`
        if node is not None and _starts(names, within) and (after is None or names > after):
            yield Listed(names, node)
        if node is None or node.is_dir:
            yield from _walk(members, node, names, within, after)


def _starts(names: Names, prefix: Names) -> bool:
    """Whether `names` is `prefix` or below it."""
    return names[: len(prefix)] == prefix


def to_names(path: str) -> Names:
    """'/a/b' as ('a', 'b'); '/' and '' as ()."""
    return tuple(name for name in path.split("/") if name)
