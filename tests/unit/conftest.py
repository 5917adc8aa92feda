"""Fixtures shared by the unit tests: a SQLite catalog and an in-memory blob store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    cat.create_schema()
    yield cat
    cat.close()


@pytest.fixture
def blobs() -> MemoryBlobStore:
    return MemoryBlobStore()
