"""The sync-collection REPORT's parts without a server: parsing the request body
(`davserver.dav.sync_collection.parse_request`), the sync-token's URI form
(`providers.dav.sync`), the 207 body, and which members an answer lists
(`davserver.dav.sync_members`: the initial listing and its resumption, the members
feed entries touch at each sync-level, and the tokens that cannot be brought up to
date)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree

import pytest
from wsgidav.dav_error import DAVError

from davserver.dav.sync_collection import (
    SUPPORTED_REPORT,
    multistatus,
    parse_request,
    removed_response,
)
from davserver.dav.sync_members import ChangeSet, TokenInvalid, listing, names_below
from providers.dav.sync import TOKEN_PREFIX, parse_token, token_uri
from providers.operations.feed import FeedEntry

D = "{DAV:}"


def body(*parts: str, root: str = "sync-collection") -> bytes:
    inner = "".join(parts)
    return f'<D:{root} xmlns:D="DAV:" xmlns:Z="urn:z">{inner}</D:{root}>'.encode()


PROP = "<D:prop><D:getetag/><Z:color/></D:prop>"


def test_a_request_gives_token_level_limit_and_names() -> None:
    parsed = parse_request(
        body(
            "<D:sync-token> http://davserver/ns/sync/v1.x.y </D:sync-token>",
            "<D:sync-level>infinite</D:sync-level>",
            "<D:limit><D:nresults>10</D:nresults></D:limit>",
            PROP,
        )
    )
    assert parsed.token == "http://davserver/ns/sync/v1.x.y"
    assert parsed.infinite is True
    assert parsed.limit == 10
    assert parsed.names == [f"{D}getetag", "{urn:z}color"]


def test_an_empty_token_is_an_initial_sync_and_defaults_are_level_1_and_allprop() -> None:
    parsed = parse_request(body("<D:sync-token/>", "<D:sync-level>1</D:sync-level>"))
    assert (parsed.token, parsed.infinite, parsed.limit, parsed.names) == (None, False, None, [])
    assert parse_request(body("<!-- a comment -->", "<D:allprop/>")).names == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"<D:sync-collection xmlns:D='DAV:'>",
        body("<D:sync-level>2</D:sync-level>"),
        body("<D:sync-level/>"),
        body("<D:limit><D:nresults>0</D:nresults></D:limit>"),
        body("<D:limit><D:nresults>-3</D:nresults></D:limit>"),
        body("<D:limit/>"),
        body("<D:prop/>"),
    ],
)
def test_a_malformed_request_is_400(raw: bytes) -> None:
    with pytest.raises(DAVError) as caught:
        parse_request(raw)
    assert caught.value.value == 400
    assert caught.value.err_condition is None


def test_another_report_is_403_supported_report() -> None:
    with pytest.raises(DAVError) as caught:
        parse_request(body(PROP, root="expand-property"))
    assert caught.value.value == 403
    assert caught.value.err_condition is not None
    assert caught.value.err_condition.condition_code == SUPPORTED_REPORT


def test_tokens_wrap_cursors_and_where_a_listing_stopped() -> None:
    assert token_uri("v1.a.b") == TOKEN_PREFIX + "v1.a.b"
    assert parse_token(token_uri("v1.a.b")) == ("v1.a.b", None)
    odd = ("a b", "x?after=y", "ü&<")
    made = token_uri("v1.a.b", odd)
    assert "&" not in made and "<" not in made and " " not in made
    assert parse_token(made) == ("v1.a.b", odd)
    for bad in (
        "",
        "v1.a.b",
        "http://other/ns/sync/v1.a.b",
        TOKEN_PREFIX,
        TOKEN_PREFIX + "c?after=",
    ):
        with pytest.raises(ValueError):
            parse_token(bad)


def test_the_body_lists_responses_then_the_truncation_then_the_token() -> None:
    token = TOKEN_PREFIX + "v1.a.b?after=x%26y"
    xml = multistatus([removed_response("/dav/gone.txt")], token, "/dav/d/")
    root = ElementTree.fromstring(xml)
    assert [child.tag for child in root] == [f"{D}response", f"{D}response", f"{D}sync-token"]
    gone, more = root.findall(f"{D}response")
    assert gone.findtext(f"{D}href") == "/dav/gone.txt"
    assert gone.findtext(f"{D}status") == "HTTP/1.1 404 Not Found"
    assert more.findtext(f"{D}href") == "/dav/d/"
    assert more.findtext(f"{D}status") == "HTTP/1.1 507 Insufficient Storage"
    assert more.find(f"{D}error/{D}number-of-matches-within-limits") is not None
    assert root.findtext(f"{D}sync-token") == token
    whole = ElementTree.fromstring(multistatus([], token, None))
    assert [child.tag for child in whole] == [f"{D}sync-token"]


# -- which members ---------------------------------------------------------------


@dataclass
class Member:
    name: str
    is_collection: bool
    path: str


class Tree:
    """A `Snapshot` over a set of paths (folders end in '/')."""

    def __init__(self, *paths: str) -> None:
        self.folders = {p.rstrip("/") for p in paths if p.endswith("/")} | {"/"}
        self.files = {p for p in paths if not p.endswith("/")}

    def get(self, path: str) -> Member | None:
        if path not in self.folders and path not in self.files:
            return None
        return Member(path.rsplit("/", 1)[-1], path in self.folders, path)

    def members(self, path: str) -> list[Member]:
        if path not in self.folders:
            return []
        prefix = "" if path == "/" else path
        found = [p for p in self.folders | self.files if p != "/" and p.rsplit("/", 1)[0] == prefix]
        return sorted((m for p in found if (m := self.get(p))), key=lambda m: m.name)


TREE = Tree("/a/", "/a/x.txt", "/a/b/", "/a/b/y.txt", "/a b/", "/c.txt", "/a/b/z/")


def paths(found: list[tuple[str, object]]) -> list[str]:
    return [path for path, _member in found]


def test_a_listing_is_in_preorder_by_names_and_resumes_after_any_member() -> None:
    everything, more = listing(TREE, "/", infinite=True, after=None, limit=None)
    order = ["/a", "/a/b", "/a/b/y.txt", "/a/b/z", "/a/x.txt", "/a b", "/c.txt"]
    assert (paths(everything), more) == (order, False)
    direct, _ = listing(TREE, "/", infinite=False, after=None, limit=None)
    assert paths(direct) == ["/a", "/a b", "/c.txt"]
    below, _ = listing(TREE, "/a", infinite=True, after=None, limit=None)
    assert paths(below) == ["/a/b", "/a/b/y.txt", "/a/b/z", "/a/x.txt"]
    for cut in range(1, len(order) + 1):
        pages: list[str] = []
        after = None
        while True:
            found, more = listing(TREE, "/", infinite=True, after=after, limit=cut)
            pages += paths(found)
            if not more:
                break
            after = names_below(found[-1][0], "/")
        assert pages == order, cut
    gone, _ = listing(TREE, "/", infinite=True, after=("a", "b", "yy"), limit=None)
    assert paths(gone) == ["/a/b/z", "/a/x.txt", "/a b", "/c.txt"]


def entry(op: str, path: str, kind: str = "file", old_path: str | None = None) -> FeedEntry:
    return FeedEntry(op, path, kind, "1", None, None, None, None, 0.0, old_path)


def take(changes: ChangeSet, *entries: FeedEntry) -> dict[str, bool]:
    for one in entries:
        changes.add(one, changes.touched(one))
    return changes.members


def test_a_change_touches_its_folders_and_at_level_1_only_the_direct_member() -> None:
    deep = entry("created", "/a/b/y.txt")
    assert take(ChangeSet(TREE, "/", infinite=True), deep) == {
        "/a": True,
        "/a/b": True,
        "/a/b/y.txt": False,
    }
    assert take(ChangeSet(TREE, "/", infinite=False), deep) == {"/a": True}
    assert take(ChangeSet(TREE, "/a", infinite=False), deep) == {"/a/b": True}
    elsewhere = entry("modified", "/c.txt")
    assert take(ChangeSet(TREE, "/a", infinite=True), elsewhere) == {}


def test_a_moved_folder_is_its_old_path_and_everything_below_its_new_one() -> None:
    moved = entry("moved", "/a/b", "folder", old_path="/old")
    changes = ChangeSet(TREE, "/", infinite=True)
    assert take(changes, moved) == {
        "/a": True,
        "/a/b": True,
        "/old": True,
        "/a/b/y.txt": False,
        "/a/b/z": True,
    }
    assert [path for path, _ in changes.ordered()] == [
        "/a",
        "/a/b",
        "/a/b/y.txt",
        "/a/b/z",
        "/old",
    ]
    changes.check()  # /old holds nothing now
    level_1 = ChangeSet(TREE, "/", infinite=False)
    assert take(level_1, moved) == {"/a": True, "/old": True}


def test_a_member_keeps_the_kind_it_had_first() -> None:
    changes = ChangeSet(Tree(), "/", infinite=True)
    take(changes, entry("deleted", "/n"), entry("created", "/n", "folder"))
    assert changes.members == {"/n": False}
    assert len(changes.touched(entry("deleted", "/n", "folder"))) == 0


def test_tokens_that_cannot_be_brought_up_to_date() -> None:
    replaced = ChangeSet(TREE, "/", infinite=True)
    take(replaced, entry("deleted", "/a/b", "folder"), entry("created", "/a/b", "folder"))
    with pytest.raises(TokenInvalid):
        replaced.check()
    moved_back = ChangeSet(TREE, "/", infinite=True)
    take(moved_back, entry("moved", "/q", "folder", "/a"), entry("moved", "/a", "folder", "/q"))
    with pytest.raises(TokenInvalid):
        moved_back.check()
    level_1 = ChangeSet(TREE, "/", infinite=False)
    take(level_1, entry("deleted", "/a/b", "folder"), entry("created", "/a/b", "folder"))
    level_1.check()  # a level-1 client holds no members of /a/b
    file_again = ChangeSet(TREE, "/", infinite=True)
    take(file_again, entry("deleted", "/c.txt"), entry("created", "/c.txt"))
    file_again.check()
    on_root = ChangeSet(TREE, "/a", infinite=True)
    take(on_root, entry("modified", "/a", "folder"))
    assert on_root.members == {}
    for op in ("deleted", "created", "moved"):
        with pytest.raises(TokenInvalid):
            on_root.touched(entry(op, "/a", "folder", "/elsewhere" if op == "moved" else None))
