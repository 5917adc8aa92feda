"""Catalog statements that differ by dialect, run on the test PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.catalog import Catalog
from tests.services.postgres import PostgresService
from tests.unit.test_catalog import check_claim_many


@pytest.fixture
def pg_catalog(postgres_service: PostgresService) -> Iterator[Catalog]:
    catalog = Catalog(postgres_service.create_database())
    catalog.create_schema()
    yield catalog
    catalog.close()


def test_claim_many_on_postgres(pg_catalog: Catalog) -> None:
    check_claim_many(pg_catalog)
