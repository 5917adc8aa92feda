"""The bootstrap listing's keyset pages (`providers.operations.feed_listing`) over a
tree in memory: path order, parents first, pages that neither skip nor repeat when
the tree changes before the boundary, `within` a subtree, and subtrees before the
boundary never read."""

from __future__ import annotations

from providers.catalog import NodeRecord
from providers.catalog.records import DIR, FILE
from providers.operations.feed_listing import Listed, Names, listing_page, to_names

Tree = dict[Names, NodeRecord]


def tree_of(*paths: str) -> Tree:
    """Nodes at `paths` ('/' at the end: a folder)."""
    tree: Tree = {}
    for n, path in enumerate(paths, start=1):
        names = to_names(path)
        kind = DIR if path.endswith("/") else FILE
        tree[names] = NodeRecord(n, None, names[-1], kind, 1, 0, 0.0, 0.0, None, None, None)
    return tree


class Members:
    """`members` over a `Tree`, counting the folders read."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.read: list[Names] = []

    def __call__(
        self, names: Names, folder: NodeRecord | None
    ) -> list[tuple[str, NodeRecord | None]]:
        self.read.append(names)
        found = [(k[-1], v) for k, v in self.tree.items() if k[:-1] == names]
        return sorted(found, key=lambda member: member[0])


def paths(listed: list[Listed]) -> list[str]:
    return [item.path for item in listed]


def read_pages(members: Members, within: Names, limit: int) -> list[str]:
    after: Names | None = None
    got: list[str] = []
    while True:
        page, more = listing_page(members, within, after, limit)
        got += paths(page)
        if not more:
            return got
        after = page[-1].names


TREE = ("/a/", "/a/x", "/a/b/", "/a/b/y", "/a-z", "/c/", "/c/z", "/d")


def test_path_order_puts_each_folder_right_before_its_members() -> None:
    members = Members(tree_of(*TREE))
    whole, more = listing_page(members, (), None, 100)
    assert not more
    assert paths(whole) == ["/a", "/a/b", "/a/b/y", "/a/x", "/a-z", "/c", "/c/z", "/d"]
    assert read_pages(members, (), 3) == paths(whole)
    assert read_pages(members, (), 1) == paths(whole)


def test_a_change_before_the_boundary_shifts_nothing() -> None:
    tree = tree_of(*TREE)
    members = Members(tree)
    first, _ = listing_page(members, (), None, 3)
    assert paths(first) == ["/a", "/a/b", "/a/b/y"]
    del tree[("a", "b", "y")]  # gone before the boundary: an offset would skip /a/x
    tree.update(tree_of("/0/"))  # new before it: the log tells it
    rest, more = listing_page(members, (), first[-1].names, 100)
    assert paths(rest) == ["/a/x", "/a-z", "/c", "/c/z", "/d"] and not more


def test_within_lists_that_subtree_only() -> None:
    members = Members(tree_of(*TREE))
    assert read_pages(members, ("a",), 2) == ["/a", "/a/b", "/a/b/y", "/a/x"]
    assert read_pages(members, ("a", "b", "y"), 2) == ["/a/b/y"]
    assert read_pages(members, ("nothing",), 2) == []


def test_subtrees_before_the_boundary_are_never_read() -> None:
    members = Members(tree_of(*TREE))
    listing_page(members, (), ("c",), 100)
    assert members.read == [(), ("c",)]  # /a and its folders are skipped whole


def test_a_virtual_folder_is_descended_but_not_listed() -> None:
    shared = ("Shared",)

    def members(names: Names, folder: NodeRecord | None) -> list[tuple[str, NodeRecord | None]]:
        if names == ():
            return [("Shared", None), ("z", tree_of("/z")[("z",)])]
        return [("q", tree_of("/Shared/q")[(*shared, "q")])] if names == shared else []

    listed, _ = listing_page(members, (), None, 10)
    assert paths(listed) == ["/Shared/q", "/z"]
