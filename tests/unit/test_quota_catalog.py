"""Quota in the catalog: who is charged (the owner, never the writer), the available
bytes hint, COPY charging the destination's owner, and the refusals leaving no trace."""

from __future__ import annotations

import pytest

from providers.catalog import Catalog, NodeRecord, UserRecord
from providers.errors import NotFound, QuotaExceeded
from tests.unit.test_catalog import stored_content, used


@pytest.fixture
def alice(catalog: Catalog) -> UserRecord:
    return catalog.users.create("alice", "hash")


@pytest.fixture
def bob(catalog: Catalog) -> UserRecord:
    return catalog.users.create("bob", "hash")


def put(
    catalog: Catalog, parent_id: int, name: str, owner_id: int, data: bytes, author_id: int
) -> NodeRecord:
    """Commit `data` as the provider does: `owner_id` is the parent folder's owner."""
    node, _created = catalog.contents.commit_file(
        parent_id,
        name,
        owner_id,
        stored_content(catalog, data),
        mtime=1.0,
        content_type=None,
        path=f"/{name}",
        author_id=author_id,
    )
    return node


def test_available_bytes(catalog: Catalog, alice: UserRecord) -> None:
    assert catalog.users.available_bytes(alice.id) is None
    catalog.users.set_quota("alice", 10)
    assert catalog.users.available_bytes(alice.id) == 10
    put(catalog, alice.home_id, "a", alice.id, b"123456", alice.id)
    assert catalog.users.available_bytes(alice.id) == 4
    catalog.users.set_quota("alice", 2)  # lowered below the usage: nothing left, not < 0
    assert catalog.users.available_bytes(alice.id) == 0
    with pytest.raises(NotFound):
        catalog.users.available_bytes(alice.id + 1000)


def test_a_file_written_into_a_folder_counts_against_the_folders_owner(
    catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    shared = catalog.tree.mkdir(alice.home_id, "shared", alice.id, "/shared")
    node = put(catalog, shared.id, "f", shared.owner_id, b"x" * 7, author_id=bob.id)
    assert node.owner_id == alice.id
    assert (used(catalog, "alice"), used(catalog, "bob")) == (7, 0)
    # overwriting charges the file's owner, whatever owner the caller names
    put(catalog, shared.id, "f", bob.id, b"x" * 9, author_id=bob.id)
    assert (used(catalog, "alice"), used(catalog, "bob")) == (9, 0)
    catalog.users.set_quota("alice", 10)
    with pytest.raises(QuotaExceeded):
        put(catalog, shared.id, "g", shared.owner_id, b"y" * 2, author_id=bob.id)
    assert catalog.tree.resolve(shared.id, ["g"]) is None
    assert (used(catalog, "alice"), used(catalog, "bob")) == (9, 0)


def test_shrinking_is_allowed_over_quota(catalog: Catalog, alice: UserRecord) -> None:
    put(catalog, alice.home_id, "a", alice.id, b"x" * 8, alice.id)
    catalog.users.set_quota("alice", 5)
    with pytest.raises(QuotaExceeded):
        put(catalog, alice.home_id, "a", alice.id, b"x" * 9, alice.id)
    put(catalog, alice.home_id, "a", alice.id, b"x" * 6, alice.id)  # still over, but less
    assert used(catalog, "alice") == 6


def test_copy_belongs_to_and_is_charged_to_the_destination_owner(
    catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    tree = catalog.tree
    src = tree.mkdir(alice.home_id, "src", alice.id, "/src")
    sub = tree.mkdir(src.id, "sub", alice.id, "/src/sub")
    put(catalog, src.id, "f1", alice.id, b"abc", alice.id)
    put(catalog, sub.id, "f2", alice.id, b"defgh", alice.id)
    copy = tree.copy(src.id, bob.home_id, "got", "/got")
    assert (used(catalog, "alice"), used(catalog, "bob")) == (8, 8)
    members = [copy, *tree.children(copy.id)]
    members += tree.children(next(m for m in members if m.name == "sub").id)
    assert len(members) == 4 and {m.owner_id for m in members} == {bob.id}
    tree.delete(copy.id, "/got")
    assert (used(catalog, "alice"), used(catalog, "bob")) == (8, 0)


def test_copy_over_quota_is_refused_and_leaves_nothing(
    catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    tree = catalog.tree
    src = tree.mkdir(alice.home_id, "src", alice.id, "/src")
    put(catalog, src.id, "f1", alice.id, b"x" * 6, alice.id)
    put(catalog, src.id, "f2", alice.id, b"y" * 6, alice.id)
    catalog.users.set_quota("bob", 11)
    with pytest.raises(QuotaExceeded):
        tree.copy(src.id, bob.home_id, "got", "/got")
    assert tree.children(bob.home_id) == []
    assert (used(catalog, "alice"), used(catalog, "bob")) == (12, 0)
    catalog.users.set_quota("bob", 12)  # exactly enough
    tree.copy(src.id, bob.home_id, "got", "/got")
    assert used(catalog, "bob") == 12


def test_copy_onto_a_file_charges_the_copy(catalog: Catalog, alice: UserRecord) -> None:
    home = alice.home_id
    put(catalog, home, "small", alice.id, b"s" * 4, alice.id)
    big = put(catalog, home, "big", alice.id, b"b" * 5, alice.id)
    catalog.users.set_quota("alice", 10)  # 9 used: only 1 byte left
    with pytest.raises(QuotaExceeded):  # the 4 bytes replaced would stay in the trash
        catalog.tree.copy(big.id, home, "small", "/small")
    catalog.users.set_quota("alice", 14)
    catalog.tree.copy(big.id, home, "small", "/small")
    assert used(catalog, "alice") == 14  # the replaced 4 bytes are in the trash
    (item,) = catalog.trash.items(alice.id)
    catalog.trash.purge(alice.id, item.id)
    assert used(catalog, "alice") == 10
    with pytest.raises(QuotaExceeded):
        catalog.tree.copy(big.id, home, "third", "/third")
    assert catalog.tree.resolve(home, ["third"]) is None
    assert used(catalog, "alice") == 10


def test_a_refused_charge_takes_nothing_even_in_a_transaction_that_goes_on(
    catalog: Catalog, alice: UserRecord
) -> None:
    from providers.catalog.rows import charge_used_bytes

    catalog.users.set_quota("alice", 10)
    with catalog.db.connection(write=True) as conn:
        charge_used_bytes(conn, alice.id, 6)
        with pytest.raises(QuotaExceeded, match="5 more bytes, 4 left"):
            charge_used_bytes(conn, alice.id, 5)
        charge_used_bytes(conn, alice.id, 4)  # exactly the quota
        charge_used_bytes(conn, alice.id, -3)  # shrinking always passes
    assert used(catalog, "alice") == 7
