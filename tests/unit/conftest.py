"""Fixtures shared by the unit tests: a SQLite catalog, an in-memory blob store, a
filestore over both with small chunks, and a user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog, UserRecord
from providers.chunker import FastCDCChunker
from providers.filestore import FileStore

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
def user(catalog: Catalog) -> UserRecord:
    return catalog.users.create("u", "h")
