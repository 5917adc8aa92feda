"""Catalog accounts: name rules, Digest secrets, quotas, removal, groups, app passwords."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

from providers.catalog import Catalog, DigestSecret, ExtentRecord, NewContent
from providers.catalog.schema import Change, Node
from providers.errors import Conflict, InvalidName, NotFound


def put_file(catalog: Catalog, user: str, name: str, data: bytes) -> None:
    record = catalog.users.get(user)
    assert record is not None
    digest = hashlib.sha256(data).hexdigest()
    catalog.contents.claim(digest, len(data))
    content = NewContent(len(data), digest, [ExtentRecord(0, len(data), digest)])
    catalog.contents.commit_file(
        record.home_id,
        name,
        record.id,
        content,
        mtime=1.0,
        content_type=None,
        path=name,
        author_id=None,
    )


@pytest.mark.parametrize(
    "name", ["", " bob", "bob ", "a:b", "a/b", "a\\b", "@team", "x\x00", "x" * 65]
)
def test_bad_names_are_refused(catalog: Catalog, name: str) -> None:
    with pytest.raises(InvalidName):
        catalog.users.create(name, "h")
    with pytest.raises(InvalidName):
        catalog.groups.create(name)


def test_good_names(catalog: Catalog) -> None:
    for name in ("admin", "anna.b@example.org", "Jürgen", "x" * 64, "a-b_c"):
        catalog.users.create(name, "h")
    assert len(catalog.users.all()) == 5


def test_digest_secret_is_stored_and_replaced_with_the_password(catalog: Catalog) -> None:
    secret = DigestSecret("davserver", "0" * 32)
    bob = catalog.users.create("bob", "h1", secret)
    assert bob.digest == secret and catalog.users.get("bob") == bob
    assert catalog.users.create("amy", "h2").digest is None
    catalog.users.set_password("bob", "h3")  # no new secret: the old one must go
    after = catalog.users.get("bob")
    assert after is not None and after.password_hash == "h3" and after.digest is None
    catalog.users.set_password("bob", "h4", DigestSecret("davserver", "1" * 32))
    assert catalog.users.get("bob").digest.ha1 == "1" * 32  # type: ignore[union-attr]


def test_quota(catalog: Catalog) -> None:
    catalog.users.create("bob", "h")
    catalog.users.set_quota("bob", 10 << 30)
    assert catalog.users.get("bob").quota_bytes == 10 << 30  # type: ignore[union-attr]
    catalog.users.set_quota("bob", None)
    assert catalog.users.get("bob").quota_bytes is None  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        catalog.users.set_quota("nobody", 1)
    with pytest.raises(ValueError):
        catalog.users.set_quota("bob", -1)


def test_remove_refuses_a_user_with_files_unless_purged(catalog: Catalog) -> None:
    bob = catalog.users.create("bob", "h")
    catalog.users.create("amy", "h")
    catalog.groups.create("team")
    catalog.groups.add_member("team", "bob")
    catalog.app_passwords.add("bob", "abcde", "hash", "phone")
    put_file(catalog, "bob", "a.txt", b"hello")
    put_file(catalog, "amy", "b.txt", b"world")
    with pytest.raises(Conflict, match="--purge"):
        catalog.users.remove("bob")
    assert catalog.users.get("bob") is not None

    assert catalog.users.remove("bob", purge=True) == 1
    assert catalog.users.get("bob") is None
    assert catalog.groups.members("team") == []
    with catalog.db.session() as s:
        assert s.exec(select(func.count()).where(Node.owner_id == bob.id)).one()[0] == 0
        assert s.exec(select(func.count()).where(Change.owner_id == bob.id)).one()[0] == 0
    assert catalog.tree.resolve(catalog.users.get("amy").home_id, ["b.txt"])  # type: ignore[union-attr]
    # The content is unreferenced now: the next gc drops it.
    assert catalog.contents.purge_unreferenced_contents(dry_run=True) == 1
    with pytest.raises(NotFound):
        catalog.users.remove("bob")


def test_remove_an_empty_user_needs_no_purge(catalog: Catalog) -> None:
    catalog.users.create("bob", "h")
    assert catalog.users.remove("bob") == 0
    catalog.users.create("bob", "h")  # the name is free again


def test_groups(catalog: Catalog) -> None:
    for name in ("ann", "bob"):
        catalog.users.create(name, "h")
    catalog.groups.create("team")
    catalog.groups.create("ops")
    with pytest.raises(Conflict):
        catalog.groups.create("team")
    assert catalog.groups.names() == ["ops", "team"]
    assert catalog.groups.add_member("team", "bob")
    assert catalog.groups.add_member("team", "ann")
    assert not catalog.groups.add_member("team", "ann")
    assert catalog.groups.members("team") == ["ann", "bob"]
    ann = catalog.users.get("ann")
    assert ann is not None
    catalog.groups.add_member("ops", "ann")
    assert catalog.groups.of_user(ann.id) == ["ops", "team"]
    assert catalog.groups.remove_member("team", "ann")
    assert not catalog.groups.remove_member("team", "ann")
    assert catalog.groups.members("team") == ["bob"]
    for bad in (("nope", "ann"), ("team", "nobody")):
        with pytest.raises(NotFound):
            catalog.groups.add_member(*bad)
    catalog.groups.remove("team")
    assert catalog.groups.names() == ["ops"]
    assert catalog.users.get("bob") is not None
    with pytest.raises(NotFound):
        catalog.groups.members("team")
    with pytest.raises(NotFound):
        catalog.groups.remove("team")


def test_app_passwords(catalog: Catalog) -> None:
    bob = catalog.users.create("bob", "h")
    amy = catalog.users.create("amy", "h")
    phone = catalog.app_passwords.add("bob", "abcde", "hash1", "phone")
    laptop = catalog.app_passwords.add("bob", "fghij", "hash2", "")
    catalog.app_passwords.add("amy", "abcde", "hash3", "")  # key ids are per user
    with pytest.raises(Conflict):
        catalog.app_passwords.add("bob", "abcde", "hash4", "")
    with pytest.raises(NotFound):
        catalog.app_passwords.add("nobody", "abcde", "hash", "")
    assert [a.label for a in catalog.app_passwords.of_user("bob")] == ["phone", ""]
    assert catalog.app_passwords.find(bob.id, "abcde") == phone
    assert catalog.app_passwords.find(amy.id, "abcde").hash == "hash3"  # type: ignore[union-attr]
    assert catalog.app_passwords.find(bob.id, "zzzzz") is None

    catalog.app_passwords.touch(laptop.id, 1234.0)
    assert catalog.app_passwords.find(bob.id, "fghij").last_used_at == 1234.0  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        catalog.app_passwords.revoke("amy", phone.id)  # not hers
    catalog.app_passwords.revoke("bob", phone.id)
    assert catalog.app_passwords.find(bob.id, "abcde") is None
    assert [a.revoked for a in catalog.app_passwords.of_user("bob")] == [True, False]
    with pytest.raises(NotFound):
        catalog.app_passwords.revoke("bob", phone.id)  # already revoked


def test_an_older_catalog_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            'CREATE TABLE "user" (id INTEGER PRIMARY KEY, name VARCHAR(64) UNIQUE NOT NULL, '
            "password_hash VARCHAR NOT NULL, home_id INTEGER, quota_bytes BIGINT, "
            "used_bytes BIGINT NOT NULL DEFAULT 0, created_at FLOAT NOT NULL)"
        )
    catalog = Catalog(f"sqlite:///{path}")
    try:
        catalog.create_schema()
        catalog.create_schema()
        bob = catalog.users.create("bob", "h", DigestSecret("r", "f" * 32))
        assert catalog.users.get("bob") == bob
    finally:
        catalog.close()
