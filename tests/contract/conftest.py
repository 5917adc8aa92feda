"""Fixtures for the contract suites: one BlobStore of each kind per test, and an empty
catalog on each database (`catalog`: SQLite, then PostgreSQL).

The S3 store talks to a real SeaweedFS server (`tests.services.s3.S3Service`), started
once per session and only if an S3 case runs. A missing `weed` binary fails the S3
cases; it never skips them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from davserver.metrics import Metrics, TimedBlobStore
from providers.blobstore.base import BlobStore
from providers.blobstore.localdir import LocalDirBlobStore
from providers.blobstore.memory import MemoryBlobStore
from providers.blobstore.s3 import S3BlobStore
from providers.catalog import Catalog
from tests.services.s3 import S3Service

# timed: the metrics decorator the server wraps every store in, over a local directory
BLOBSTORE_KINDS = ["memory", "localdir", "timed", "s3"]


def fresh_bucket_name() -> str:
    """A bucket name no other test uses (lowercase, valid for S3)."""
    return f"dav-test-{uuid.uuid4().hex[:20]}"


def make_s3_store(service: S3Service) -> S3BlobStore:
    """An `S3BlobStore` on `service` in a fresh bucket (created on first use)."""
    return S3BlobStore(
        service.endpoint,
        service.access_key,
        service.secret_key,
        fresh_bucket_name(),
        secure=service.secure,
    )


@pytest.fixture
def s3_store_factory(s3_service: S3Service) -> Iterator[Callable[[], S3BlobStore]]:
    """Makes `S3BlobStore`s on the session server, each in a fresh bucket; closes them."""
    made: list[S3BlobStore] = []

    def make() -> S3BlobStore:
        made.append(make_s3_store(s3_service))
        return made[-1]

    yield make
    for store in made:
        store.close()


@pytest.fixture(params=BLOBSTORE_KINDS)
def blobstore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """An empty store of each kind: memory, a local directory (bare and timed), a
    fresh S3 bucket."""
    store: BlobStore
    if request.param == "memory":
        store = MemoryBlobStore()
    elif request.param == "localdir":
        store = LocalDirBlobStore(tmp_path / "blobs")
    elif request.param == "timed":
        store = TimedBlobStore(LocalDirBlobStore(tmp_path / "blobs"), Metrics())
    else:
        store = make_s3_store(request.getfixturevalue("s3_service"))
    with store:
        yield store


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """An empty catalog (schema made, no users) on SQLite, then on a fresh PostgreSQL
    database of the session's server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_service").create_database()
    made = Catalog(url)
    made.create_schema()
    yield made
    made.close()
