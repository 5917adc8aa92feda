"""A fresh catalog on either database, for contract suites that run on both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from providers.catalog import Catalog

DATABASES = ["sqlite", "postgres"]


def catalog_url(request: pytest.FixtureRequest, tmp_path: Path, database: str) -> str:
    """The URL of an empty database: a SQLite file under `tmp_path`, or a new database
    on the session's PostgreSQL server (started on first use)."""
    if database == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return str(request.getfixturevalue("postgres_service").create_database())


@contextmanager
def open_catalog(url: str) -> Iterator[Catalog]:
    """A `Catalog` on `url` with this release's schema; closed after the block."""
    catalog = Catalog(url)
    catalog.create_schema()
    try:
        yield catalog
    finally:
        catalog.close()
