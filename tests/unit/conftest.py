"""Fixtures shared by the unit tests: a SQLite catalog, an in-memory blob store, a
filestore over both with small chunks, the operations layer over them (with WsgiDAV's
lock manager on in-process storage, and in-process events), a user, its actor and
the place of its home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog, UserRecord
from providers.chunker import FastCDCChunker
from providers.dav.locks import MemberTokenLockManager, WsgiDavLocks, lock_storage
from providers.filestore import FileStore
from providers.operations import Actor, InProcessEvents, Located, Operations, SharedSpace

KIB = 1024


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    cat.create_schema()
    yield cat
    cat.close()


@pytest.fixture
def blobs() -> MemoryBlobStore:
    return MemoryBlobStore()


@pytest.fixture
def files(catalog: Catalog, blobs: MemoryBlobStore) -> Iterator[FileStore]:
    """A filestore with chunks of 1-16 KiB, so small test files still have several."""
    store = FileStore(catalog, blobs, FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB), workers=4)
    yield store
    store.close()


@pytest.fixture
def lock_manager(catalog: Catalog) -> MemberTokenLockManager:
    return MemberTokenLockManager(lock_storage("", catalog))


@pytest.fixture
def events() -> InProcessEvents:
    return InProcessEvents()


@pytest.fixture
def ops(
    catalog: Catalog,
    files: FileStore,
    lock_manager: MemberTokenLockManager,
    events: InProcessEvents,
) -> Operations:
    return Operations(catalog, files, WsgiDavLocks(lock_manager), events, SharedSpace(catalog))


@pytest.fixture
def user(catalog: Catalog) -> UserRecord:
    return catalog.users.create("u", "h")


@pytest.fixture
def actor(user: UserRecord) -> Actor:
    """`user` acting on its own (no share link, no lock tokens)."""
    return Actor(user)


@pytest.fixture
def home(ops: Operations, actor: Actor) -> Located:
    """The place of `actor`'s home in its view."""
    found = ops.view(actor).locate([])
    assert found is not None
    return found


@pytest.fixture
def alice(catalog: Catalog) -> UserRecord:
    """An account named alice in `catalog`."""
    return catalog.users.create("alice", "h")


@pytest.fixture
def bob(catalog: Catalog) -> UserRecord:
    """An account named bob in `catalog`."""
    return catalog.users.create("bob", "h")
