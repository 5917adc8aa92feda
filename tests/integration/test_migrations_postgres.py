"""Migrations on PostgreSQL: `upgrade head` gives exactly the models' schema (the guard
that every schema change ships a migration, design invariant 14), a store made before
migrations is adopted, and instances starting at once migrate it once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import make_url

from providers.catalog import Catalog, SchemaChange
from providers.catalog.migrate import head_revision, metadata_differences
from providers.errors import SchemaMismatch, StoreMissing
from tests.services.postgres import PostgresService
from tests.support.migrations import BASELINE, make_unversioned


def opened(url: str, *, create: bool, upgrade: bool) -> SchemaChange:
    catalog = Catalog(url)
    try:
        return catalog.prepare_schema(create=create, upgrade=upgrade)
    finally:
        catalog.close()


def test_upgrade_head_gives_exactly_the_models_schema(postgres_service: PostgresService) -> None:
    url = postgres_service.create_database()
    with pytest.raises(StoreMissing, match="no davserver store in postgresql") as missing:
        opened(url, create=False, upgrade=True)
    password = make_url(url).password
    assert password and password not in str(missing.value)
    assert "***" in str(missing.value)  # the URL is named, without its password

    change = opened(url, create=True, upgrade=False)
    assert change.created and change.after == head_revision()
    catalog = Catalog(url)
    try:
        assert catalog.schema_state().current
        assert metadata_differences(catalog.db) == []
    finally:
        catalog.close()


def test_a_store_made_before_migrations_is_adopted(postgres_service: PostgresService) -> None:
    url = postgres_service.create_database()
    make_unversioned(url)
    with pytest.raises(SchemaMismatch, match="unversioned"):
        opened(url, create=False, upgrade=False)
    change = opened(url, create=False, upgrade=True)
    assert (change.before, change.after, change.created) == ("unversioned", head_revision(), False)
    catalog = Catalog(url)
    try:
        assert metadata_differences(catalog.db) == []
    finally:
        catalog.close()


@pytest.mark.parametrize("start", ["empty", "unversioned"])
def test_instances_starting_at_once_migrate_once(
    postgres_service: PostgresService, start: str
) -> None:
    url = postgres_service.create_database()
    if start == "unversioned":
        make_unversioned(url)
    ready = threading.Barrier(4)
    changes: list[SchemaChange] = []
    errors: list[BaseException] = []

    def start_instance() -> None:
        ready.wait()
        try:
            changes.append(opened(url, create=True, upgrade=True))
        except BaseException as e:  # reported below: a thread cannot fail the test itself
            errors.append(e)

    threads = [threading.Thread(target=start_instance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # one instance applied every revision, from the baseline to the head; the others none
    applied = sorted((change.applied for change in changes), key=len)
    assert [len(revisions) for revisions in applied[:3]] == [0, 0, 0]
    assert applied[3][0] == BASELINE and applied[3][-1] == head_revision()
    assert all(change.after == head_revision() for change in changes)
