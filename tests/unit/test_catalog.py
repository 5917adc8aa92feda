"""The SQL catalog on SQLite: users, tree operations, file commits, chunk states, quota."""

from __future__ import annotations

import hashlib
import time
import unicodedata

import pytest
from sqlalchemy import select, text, update

from providers.catalog import (
    CLAIM_BUSY,
    CLAIM_DEDUP,
    CLAIM_UPLOAD,
    Catalog,
    ExtentRecord,
    NewContent,
    UserRecord,
)
from providers.catalog.records import NodeRecord
from providers.catalog.rows import NODE_BY_ID, child_record
from providers.catalog.schema import Chunk, User
from providers.errors import ChunkGone, Conflict, NotFound, QuotaExceeded


@pytest.fixture
def alice(catalog: Catalog) -> UserRecord:
    return catalog.users.create("alice", "hash")


def stored_content(catalog: Catalog, *pieces: bytes) -> NewContent:
    """Claim every piece (as a writer would before storing it); return the content."""
    extents, offset = [], 0
    for piece in pieces:
        digest = hashlib.sha256(piece).hexdigest()
        catalog.contents.claim(digest, len(piece))
        extents.append(ExtentRecord(offset=offset, size=len(piece), chunk_hash=digest))
        offset += len(piece)
    sha = hashlib.sha256(b"".join(pieces)).hexdigest()
    return NewContent(size=offset, digest=sha, extents=extents)


def commit(catalog: Catalog, user: UserRecord, parent_id: int, name: str, content: NewContent):
    return catalog.contents.commit_file(
        parent_id, name, user.id, content, mtime=1.0, content_type=None, path=name, author_id=None
    )


def used(catalog: Catalog, name: str) -> int:
    user = catalog.users.get(name)
    assert user is not None
    return user.used_bytes


def chunk_state(catalog: Catalog, digest: str) -> str | None:
    with catalog.db.session() as s:
        return s.exec(select(Chunk.state).where(Chunk.hash == digest)).scalar()


def test_users(catalog: Catalog) -> None:
    assert catalog.users.count() == 0
    bob = catalog.users.create("bob", "h1")
    assert catalog.users.get("bob") == bob
    assert catalog.users.by_id(bob.id) == bob
    assert catalog.users.get("nobody") is None
    home = catalog.tree.get(bob.home_id)
    assert home is not None and home.is_dir and home.owner_id == bob.id
    with pytest.raises(Conflict):
        catalog.users.create("bob", "h2")
    catalog.users.create("amy", "h3")
    assert catalog.users.names() == ["amy", "bob"]
    catalog.users.set_password("bob", "h4")
    assert catalog.users.get("bob").password_hash == "h4"  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        catalog.users.set_password("nobody", "h")


def test_settings_are_fixed_at_first_write(catalog: Catalog) -> None:
    assert catalog.users.get_setting("chunker") is None
    assert catalog.users.ensure_setting("chunker", "a") == "a"
    assert catalog.users.ensure_setting("chunker", "b") == "a"
    assert catalog.users.get_setting("chunker") == "a"


def test_mkdir_resolve_children(catalog: Catalog, alice: UserRecord) -> None:
    tree, home = catalog.tree, alice.home_id
    docs = tree.mkdir(home, "docs", alice.id, "/docs")
    sub = tree.mkdir(docs.id, "sub", alice.id, "/docs/sub")
    tree.mkdir(home, "b", alice.id, "/b")
    with pytest.raises(Conflict):
        tree.mkdir(home, "docs", alice.id, "/docs")
    assert tree.resolve(home, []).id == home  # type: ignore[union-attr]
    assert tree.resolve(home, ["docs", "sub"]) == sub
    assert tree.resolve(home, ["docs", "nope"]) is None
    assert [c.name for c in tree.children(home)] == ["b", "docs"]
    commit(catalog, alice, sub.id, "f", stored_content(catalog, b"x"))
    assert tree.resolve(home, ["docs", "sub", "f", "deeper"]) is None
    with pytest.raises(Conflict):
        tree.mkdir(tree.resolve(home, ["docs", "sub", "f"]).id, "x", alice.id, "/x")  # type: ignore[union-attr]


def test_no_node_gets_a_file_as_parent_and_sums_walk_the_folders(
    catalog: Catalog, alice: UserRecord
) -> None:
    """Design invariant 28: every way of giving a node a parent refuses a file, so the
    subtree sums, which look up children of folders only, miss nothing."""
    tree, home = catalog.tree, alice.home_id
    docs = tree.mkdir(home, "docs", alice.id, "/docs")
    sub = tree.mkdir(docs.id, "sub", alice.id, "/docs/sub")
    top_file, _ = commit(catalog, alice, home, "f", stored_content(catalog, b"12345"))
    commit(catalog, alice, docs.id, "h", stored_content(catalog, b"xy"))
    commit(catalog, alice, sub.id, "g", stored_content(catalog, b"abc"))
    assert tree.folder_bytes([home, docs.id, sub.id]) == {home: 10, docs.id: 5, sub.id: 3}
    with pytest.raises(Conflict):
        tree.mkdir(top_file.id, "x", alice.id, "/f/x")
    with pytest.raises(Conflict):
        commit(catalog, alice, top_file.id, "x", stored_content(catalog, b"x"))
    with pytest.raises(Conflict):
        tree.move(sub.id, top_file.id, "x", "/f/x")
    with pytest.raises(Conflict):
        tree.copy(sub.id, top_file.id, "x", "/f/x")
    catalog.trash.put(sub.id, "/docs/sub", alice.id)
    (item,) = catalog.trash.items(alice.id)
    with pytest.raises(Conflict):
        catalog.trash.restore(alice.id, item.id, top_file.id, "sub", "/f/sub")
    assert tree.children(top_file.id) == []
    assert tree.folder_bytes([home, docs.id]) == {home: 7, docs.id: 2}


def test_move(catalog: Catalog, alice: UserRecord) -> None:
    tree, home = catalog.tree, alice.home_id
    a = tree.mkdir(home, "a", alice.id, "/a")
    b = tree.mkdir(a.id, "b", alice.id, "/a/b")
    commit(catalog, alice, b.id, "f", stored_content(catalog, b"hello"))
    moved = tree.move(b.id, home, "b2", "/b2")
    assert (moved.id, moved.parent_id, moved.name) == (b.id, home, "b2")
    assert tree.resolve(home, ["b2", "f"]) is not None
    assert tree.children(a.id) == []
    with pytest.raises(Conflict):
        tree.move(home_child(catalog, home, "b2"), b.id, "self", "/b2/self")
    c = tree.mkdir(b.id, "c", alice.id, "/b2/c")
    with pytest.raises(Conflict):
        tree.move(b.id, c.id, "inside", "/b2/c/inside")
    # Moving over an existing file replaces it; the replaced one is in the trash,
    # charged until purged.
    commit(catalog, alice, home, "g", stored_content(catalog, b"world!"))
    assert used(catalog, "alice") == 11
    tree.move(tree.resolve(home, ["b2", "f"]).id, home, "g", "/g")  # type: ignore[union-attr]
    assert tree.resolve(home, ["g"]).size == 5  # type: ignore[union-attr]
    assert used(catalog, "alice") == 11
    (item,) = catalog.trash.items(alice.id)
    catalog.trash.purge(alice.id, item.id)
    assert used(catalog, "alice") == 5


def home_child(catalog: Catalog, home: int, name: str) -> int:
    node = catalog.tree.resolve(home, [name])
    assert node is not None
    return node.id


def test_copy_shares_contents_and_charges_quota(catalog: Catalog, alice: UserRecord) -> None:
    tree, home = catalog.tree, alice.home_id
    src = tree.mkdir(home, "src", alice.id, "/src")
    sub = tree.mkdir(src.id, "sub", alice.id, "/src/sub")
    f1, _ = commit(catalog, alice, src.id, "f1", stored_content(catalog, b"abc"))
    f2, _ = commit(catalog, alice, sub.id, "f2", stored_content(catalog, b"defgh"))
    tree.set_prop(f1.id, "{ns:}color", "<color>red</color>", "/src/f1")
    assert used(catalog, "alice") == 8

    copy = tree.copy(src.id, home, "dst", "/dst")
    assert copy.id != src.id and copy.is_dir
    c1 = tree.resolve(home, ["dst", "f1"])
    c2 = tree.resolve(home, ["dst", "sub", "f2"])
    assert c1 is not None and c2 is not None
    assert (c1.content_id, c1.digest, c1.size) == (f1.content_id, f1.digest, 3)
    assert (c2.content_id, c2.digest) == (f2.content_id, f2.digest)
    assert c1.id != f1.id
    assert tree.props([c1.id]) == {c1.id: {"{ns:}color": "<color>red</color>"}}
    assert used(catalog, "alice") == 16
    with pytest.raises(Conflict):
        tree.copy(src.id, sub.id, "loop", "/src/sub/loop")

    tree.delete(src.id, "/src")
    tree.delete(copy.id, "/dst")
    assert tree.children(home) == []
    assert used(catalog, "alice") == 0
    with pytest.raises(NotFound):
        tree.delete(copy.id, "/dst")


def test_commit_replaces_content_and_keeps_the_old_as_a_version(
    catalog: Catalog, alice: UserRecord
) -> None:
    home = alice.home_id
    first, created = commit(catalog, alice, home, "f", stored_content(catalog, b"one", b"two"))
    assert created and first.size == 6 and first.digest == hashlib.sha256(b"onetwo").hexdigest()
    second, created = commit(catalog, alice, home, "f", stored_content(catalog, b"three"))
    assert not created and second.id == first.id
    assert (second.size, second.digest) == (5, hashlib.sha256(b"three").hexdigest())
    assert second.content_id != first.content_id
    assert catalog.tree.resolve(home, ["f"]) == second
    assert [e.size for e in catalog.contents.extents(second.content_id)] == [5]  # type: ignore[arg-type]
    history = catalog.versions.history(first.id)  # the old content stays, as a version
    assert [v.content_id for v in history] == [second.content_id, first.content_id]
    assert used(catalog, "alice") == 5
    catalog.tree.mkdir(home, "d", alice.id, "/d")
    with pytest.raises(Conflict):
        commit(catalog, alice, home, "d", stored_content(catalog, b"x"))


def test_a_commit_adds_its_version_logs_and_bumps_the_folders(
    catalog: Catalog, alice: UserRecord
) -> None:
    check_commit_rows(catalog, alice)


def check_commit_rows(catalog: Catalog, alice: UserRecord) -> None:
    """A new file and an overwrite, two folders down: each adds its version row, logs
    `created` then `modified` at the file's path, and sets the `rev` of the file and of
    every folder up to the home to the seq of its row (shared with the PostgreSQL run
    in tests/integration/test_catalog_postgres.py, where each pair is one statement).
    A commit into a file or a deleted folder is refused."""
    home = alice.home_id
    top = catalog.tree.mkdir(home, "top", alice.id, "/top")
    sub = catalog.tree.mkdir(top.id, "sub", alice.id, "/top/sub")
    other = catalog.tree.mkdir(home, "other", alice.id, "/other")
    last_change = text(
        "SELECT seq, kind, path, size FROM change WHERE node_id = :n ORDER BY seq DESC LIMIT 1"
    )
    versions_of = text("SELECT content_id, size FROM version WHERE node_id = :n ORDER BY id")
    for data, kind in ((b"first", "created"), (b"second!", "modified")):
        node, _ = commit(catalog, alice, sub.id, "f", stored_content(catalog, data))
        with catalog.db.connection() as conn:
            seq, logged_kind, path, size = conn.execute(last_change, {"n": node.id}).one()
            revs = dict(conn.execute(text("SELECT id, rev FROM node")).all())
            versions = conn.execute(versions_of, {"n": node.id}).all()
        assert (logged_kind, path, size) == (kind, "f", len(data))
        assert node.rev == seq
        assert [revs[n] for n in (node.id, sub.id, top.id, home)] == [seq] * 4
        assert revs[other.id] < seq  # a folder beside the path keeps its rev
        assert versions[-1] == (node.content_id, len(data))
    assert len(versions) == 2
    with pytest.raises(Conflict):  # into a file
        commit(catalog, alice, node.id, "g", stored_content(catalog, b"g"))
    catalog.tree.delete(other.id, "/other")
    with pytest.raises(Conflict):  # into a folder deleted meanwhile
        commit(catalog, alice, other.id, "g", stored_content(catalog, b"g"))
    assert catalog.tree.children(sub.id) == [node._replace(rev=seq)]


CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")


def test_names_keep_their_spelling_and_match_normalised(
    catalog: Catalog, alice: UserRecord
) -> None:
    tree, home = catalog.tree, alice.home_id
    node, created = commit(catalog, alice, home, CAFE_NFD, stored_content(catalog, b"nfd"))
    assert created and node.name == CAFE_NFD
    assert [c.name for c in tree.children(home)] == [CAFE_NFD]
    assert [n.name for n in tree.listing(home)[0]] == [CAFE_NFD]
    assert tree.resolve(home, [CAFE_NFC]) == node
    assert tree.resolve_path(home, [CAFE_NFC]) == (node, [CAFE_NFD])
    assert tree.resolve_path(home, []) == (tree.get(home), [])
    assert tree.resolve_path(home, ["nope"]) is None


def test_put_through_other_spelling_overwrites_the_same_file(
    catalog: Catalog, alice: UserRecord
) -> None:
    home = alice.home_id
    first, _ = commit(catalog, alice, home, CAFE_NFC, stored_content(catalog, b"first"))
    second, created = commit(catalog, alice, home, CAFE_NFD, stored_content(catalog, b"2nd"))
    assert not created and second.id == first.id
    assert second.name == CAFE_NFC  # the stored spelling stays, as on a case-preserving fs
    assert [c.name for c in catalog.tree.children(home)] == [CAFE_NFC]
    assert used(catalog, "alice") == 3


def test_mkdir_of_other_spelling_conflicts(catalog: Catalog, alice: UserRecord) -> None:
    tree, home = catalog.tree, alice.home_id
    tree.mkdir(home, CAFE_NFC, alice.id, "/" + CAFE_NFC)
    with pytest.raises(Conflict):
        tree.mkdir(home, CAFE_NFD, alice.id, "/" + CAFE_NFD)
    with pytest.raises(Conflict):
        commit(catalog, alice, home, CAFE_NFD, stored_content(catalog, b"x"))
    assert [c.name for c in tree.children(home)] == [CAFE_NFC]


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_rename_changing_only_the_spelling(catalog: Catalog, alice: UserRecord, kind: str) -> None:
    tree, home = catalog.tree, alice.home_id
    if kind == "dir":
        node = tree.mkdir(home, CAFE_NFC, alice.id, "/" + CAFE_NFC)
    else:
        node, _ = commit(catalog, alice, home, CAFE_NFC, stored_content(catalog, b"abc"))
    moved = tree.move(node.id, home, CAFE_NFD, "/" + CAFE_NFD)
    assert (moved.id, moved.name) == (node.id, CAFE_NFD)
    assert [c.name for c in tree.children(home)] == [CAFE_NFD]
    assert tree.resolve(home, [CAFE_NFC]) == moved


def test_move_and_copy_onto_other_spelling(catalog: Catalog, alice: UserRecord) -> None:
    """The destination is replaced and takes the spelling the client gave."""
    tree, home = catalog.tree, alice.home_id
    commit(catalog, alice, home, CAFE_NFC, stored_content(catalog, b"old"))
    a, _ = commit(catalog, alice, home, "a", stored_content(catalog, b"a-bytes"))
    moved = tree.move(a.id, home, CAFE_NFD, "/" + CAFE_NFD)
    assert [c.name for c in tree.children(home)] == [CAFE_NFD]
    assert tree.resolve(home, [CAFE_NFC]) == moved and moved.size == 7
    with pytest.raises(Conflict):
        tree.copy(moved.id, home, CAFE_NFC, "/" + CAFE_NFC)  # the source itself
    d = tree.mkdir(home, "d", alice.id, "/d")
    commit(catalog, alice, d.id, CAFE_NFD, stored_content(catalog, b"inner"))
    tree.copy(d.id, home, "e", "/e")
    assert [c.name for c in tree.children(tree.resolve(home, ["e"]).id)] == [CAFE_NFD]  # type: ignore[union-attr]
    assert tree.resolve(home, ["e", CAFE_NFC]) is not None


def test_commit_needs_claimed_chunks_and_marks_them_stored(
    catalog: Catalog, alice: UserRecord
) -> None:
    data = b"never claimed"
    digest = hashlib.sha256(data).hexdigest()
    content = NewContent(len(data), digest, [ExtentRecord(0, len(data), digest)])
    with pytest.raises(ChunkGone):
        commit(catalog, alice, alice.home_id, "f", content)
    assert catalog.tree.children(alice.home_id) == []
    assert catalog.contents.claim(digest, len(data)) == CLAIM_UPLOAD  # now 'uploading'
    node, created = commit(catalog, alice, alice.home_id, "f", content)
    assert created and node.size == len(data)
    assert chunk_state(catalog, digest) == "stored"
    assert catalog.contents.claim(digest, len(data)) == CLAIM_DEDUP


def test_commit_refuses_a_chunk_gc_is_deleting(catalog: Catalog, alice: UserRecord) -> None:
    content = stored_content(catalog, b"doomed")
    digest = content.extents[0].chunk_hash
    assert catalog.contents.condemn(digest, time.time() + 1)
    with pytest.raises(ChunkGone):
        commit(catalog, alice, alice.home_id, "f", content)
    assert catalog.tree.children(alice.home_id) == []
    assert chunk_state(catalog, digest) == "deleting"


def test_claim_state_machine(catalog: Catalog) -> None:
    contents, digest = catalog.contents, hashlib.sha256(b"chunk").hexdigest()
    assert contents.claim(digest, 5) == CLAIM_UPLOAD
    assert chunk_state(catalog, digest) == "uploading"
    assert contents.claim(digest, 5) == CLAIM_UPLOAD  # a concurrent writer uploads too
    assert set(catalog.locators.get([digest, "0" * 64])) == {digest}

    cutoff = time.time() + 1
    assert [c.hash for c in contents.collectable(cutoff)] == [digest]
    assert contents.condemn(digest, cutoff)
    assert chunk_state(catalog, digest) == "deleting"
    assert contents.claim(digest, 5) == CLAIM_BUSY
    assert chunk_state(catalog, digest) == "deleting"
    assert [c.hash for c in contents.deleting()] == [digest]
    assert contents.collectable(cutoff) == []
    contents.forget(digest)
    assert chunk_state(catalog, digest) is None
    assert contents.claim(digest, 5) == CLAIM_UPLOAD


def test_claim_many_decides_each_chunk_of_a_batch(catalog: Catalog) -> None:
    check_claim_many(catalog)


def check_claim_many(catalog: Catalog) -> None:
    """One batch holding a stored, an uploading, a deleting and a new chunk (shared with
    the PostgreSQL run in tests/integration/test_catalog_postgres.py)."""
    contents = catalog.contents
    stored, uploading, deleting, new = (hashlib.sha256(b"%d" % i).hexdigest() for i in range(4))
    contents.claim_many({stored: 1, uploading: 2, deleting: 3})
    with catalog.db.session(write=True) as s:
        s.exec(update(Chunk).where(Chunk.hash == stored).values(state="stored", touched_at=0.0))  # type: ignore[arg-type]
    assert contents.condemn(deleting, time.time() + 1)

    claims = contents.claim_many({new: 4, deleting: 3, uploading: 2, stored: 1})
    assert claims == {
        stored: CLAIM_DEDUP,
        uploading: CLAIM_UPLOAD,
        deleting: CLAIM_BUSY,
        new: CLAIM_UPLOAD,
    }
    assert [chunk_state(catalog, h) for h in (stored, uploading, deleting, new)] == [
        "stored",
        "uploading",
        "deleting",
        "uploading",
    ]
    with catalog.db.session() as s:
        touched = dict(s.exec(select(Chunk.hash, Chunk.touched_at)).all())  # type: ignore[call-overload]
    assert touched[stored] > 0.0  # a dedup protects the chunk from GC's grace cutoff
    assert contents.claim_many({}) == {}


def test_condemn_refuses_touched_or_referenced_chunks(catalog: Catalog, alice: UserRecord) -> None:
    contents = catalog.contents
    loose = stored_content(catalog, b"loose").extents[0].chunk_hash
    used_chunk = stored_content(catalog, b"used")
    commit(catalog, alice, alice.home_id, "f", used_chunk)

    cutoff = time.time() - 3600  # everything was touched after the cutoff
    assert contents.collectable(cutoff) == []
    assert not contents.condemn(loose, cutoff)

    cutoff = time.time() + 1
    assert [c.hash for c in contents.collectable(cutoff)] == [loose]
    assert not contents.condemn(used_chunk.extents[0].chunk_hash, cutoff)
    assert chunk_state(catalog, used_chunk.extents[0].chunk_hash) == "stored"
    assert contents.condemn(loose, cutoff)


def test_condemn_orphan(catalog: Catalog) -> None:
    known = stored_content(catalog, b"known").extents[0].chunk_hash
    assert not catalog.contents.condemn_orphan(known, 5)
    orphan = "ab" * 32
    assert catalog.contents.condemn_orphan(orphan, 7)
    assert chunk_state(catalog, orphan) == "deleting"
    assert catalog.contents.claim(orphan, 7) == CLAIM_BUSY


def test_quota(catalog: Catalog, alice: UserRecord) -> None:
    with catalog.db.session(write=True) as s:
        s.exec(update(User).where(User.id == alice.id).values(quota_bytes=10))
    home = alice.home_id
    commit(catalog, alice, home, "a", stored_content(catalog, b"123456"))
    with pytest.raises(QuotaExceeded):
        commit(catalog, alice, home, "b", stored_content(catalog, b"12345"))
    assert catalog.tree.resolve(home, ["b"]) is None
    assert used(catalog, "alice") == 6
    commit(catalog, alice, home, "a", stored_content(catalog, b"1234567890"))  # replace: +4
    assert used(catalog, "alice") == 10
    commit(catalog, alice, home, "a", stored_content(catalog, b"1"))  # shrinking is fine
    assert used(catalog, "alice") == 1
    with pytest.raises(QuotaExceeded):
        catalog.contents.commit_file(
            home,
            "big",
            alice.id,
            stored_content(catalog, b"x" * 10),
            mtime=0.0,
            content_type="text/plain",
            path="/big",
            author_id=alice.id,
        )


def test_create_schema_is_idempotent(catalog: Catalog) -> None:
    catalog.create_schema()
    assert catalog.users.count() == 0


def _level_by_level(catalog: Catalog, root_id: int, names: list[str]) -> NodeRecord | None:
    with catalog.db.connection() as conn:
        node = conn.execute(NODE_BY_ID, {"id": root_id}).first()
        found = NodeRecord._make(node) if node else None
        for name in names:
            found = child_record(conn, found.id, name) if found else None
    return found


def test_a_path_resolves_in_one_query_at_any_depth_as_level_by_level(
    catalog: Catalog, alice: UserRecord
) -> None:
    tree, folder = catalog.tree, alice.home_id
    spelled = []
    for level in range(30):  # deeper than one join takes (`rows.JOINED_DEPTH`)
        name = CAFE_NFD + f" {level}"
        folder = tree.mkdir(folder, name, alice.id, "/" + "/".join([*spelled, name])).id
        spelled.append(name)
    node, _ = commit(catalog, alice, folder, "Leaf.txt", stored_content(catalog, b"leaf"))
    asked = [unicodedata.normalize("NFC", name) for name in spelled]
    for depth in (1, 2, 12, 13, 25, 30):
        found = tree.resolve_path(alice.home_id, asked[:depth])
        assert found is not None and found[1] == spelled[:depth]
        assert found[0] == _level_by_level(catalog, alice.home_id, asked[:depth])
    assert tree.resolve_path(alice.home_id, [*asked, "Leaf.txt"]) == (node, [*spelled, "Leaf.txt"])
    assert tree.resolve_path(alice.home_id, [*asked, "Leaf.txt", "below a file"]) is None
    assert tree.resolve_path(alice.home_id, [*asked[:12], "missing", *asked[13:]]) is None
    assert tree.resolve_path(alice.home_id, [*asked[:20], "missing"]) is None
