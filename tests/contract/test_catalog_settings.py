"""The catalog's settings (`Users.ensure_setting`), on SQLite and on PostgreSQL: keys such
as the digest nonce key are created by whichever process starts first, so processes
starting together on a fresh store must all end up with the one value stored."""

from __future__ import annotations

import threading
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from providers.catalog import Catalog
from tests.support.catalogs import DATABASES, catalog_url, open_catalog

RACERS = 6
ROUNDS = 8  # one race loses only now and then: run several


@pytest.mark.parametrize("database", DATABASES)
def test_racing_first_starts_agree_on_one_value(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    url = catalog_url(request, tmp_path, database)
    with ExitStack() as stack:
        stack.enter_context(open_catalog(url))
        # one catalog object each: other processes' connections
        catalogs = [stack.enter_context(closing(Catalog(url))) for _ in range(RACERS)]
        for round_ in range(ROUNDS):
            _race(catalogs, f"race_key_{round_}")


def _race(catalogs: list[Catalog], key: str) -> None:
    start = threading.Barrier(len(catalogs))
    got: dict[int, str] = {}
    failed: list[BaseException] = []

    def first_start(index: int) -> None:
        start.wait()
        try:
            got[index] = catalogs[index].users.ensure_setting(key, f"value-{index}")
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            failed.append(e)

    threads = [threading.Thread(target=first_start, args=(i,)) for i in range(len(catalogs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed, failed
    assert len(set(got.values())) == 1, got
    assert catalogs[0].users.get_setting(key) == got[0]
    assert catalogs[0].users.ensure_setting(key, "later") == got[0]
