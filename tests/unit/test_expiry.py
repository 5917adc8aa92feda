"""Expiring history (`providers.operations.expiry`): one run thins versions and
purges old trash (with a fake clock), tolerates an item purged under it; keepers
take turns under the `history` lease; the background thread logs its counts,
survives errors and stops promptly."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from providers.catalog import Catalog, UserRecord
from providers.operations import Actor, Operations
from providers.operations.expiry import (
    HISTORY_LEASE,
    Expired,
    HistoryKeeper,
    HistoryRules,
    expire_history,
)
from providers.operations.retention import DAY, RetentionPolicy
from tests.unit.test_versions import write

RULES = HistoryRules(RetentionPolicy(max_age=180 * DAY), trash_retention=30 * DAY)


def trash_file(ops: Operations, user: UserRecord, name: str) -> None:
    actor = Actor(user)
    target = ops.view(actor).locate([name])
    assert target is not None
    ops.delete(actor, target)


@pytest.fixture
def history(ops: Operations, alice: UserRecord) -> int:
    """alice's doc.txt with 4 old versions, and gone.txt in her trash; doc's node id."""
    for n in range(5):
        node_id = write(ops, alice, "doc.txt", bytes([n]) * (3000 + n), mtime=1.0)
    write(ops, alice, "gone.txt", b"deleted", mtime=1.0)
    trash_file(ops, alice, "gone.txt")
    return node_id


def test_one_run_thins_versions_and_purges_old_trash(
    catalog: Catalog, alice: UserRecord, history: int
) -> None:
    now = time.time()
    assert expire_history(catalog, RULES, now) == Expired(0, 0)
    assert expire_history(catalog, RULES, now + 31 * DAY) == Expired(3, 1)  # one per day kept
    assert catalog.trash.items(alice.id) == []
    assert expire_history(catalog, RULES, now + 181 * DAY) == Expired(1, 0)
    assert [v.size for v in catalog.versions.history(history)] == [3004]
    assert expire_history(catalog, RULES, now + 181 * DAY) == Expired(0, 0)


def test_an_item_purged_meanwhile_is_skipped(
    catalog: Catalog, alice: UserRecord, history: int
) -> None:
    (item,) = catalog.trash.items(alice.id)
    purged: list[int] = []

    def keep() -> None:  # someone else (a gc --apply) purges it just before this run
        if not purged:
            catalog.trash.purge(alice.id, item.id)
            purged.append(item.id)

    assert expire_history(catalog, RULES, time.time() + 31 * DAY, keep).trash_items == 0
    assert purged == [item.id]


def test_keepers_take_turns_under_the_lease(catalog: Catalog, history: int) -> None:
    inside, go_on = threading.Event(), threading.Event()

    def slow_clock() -> float:  # read under the lease: hold it until told
        inside.set()
        assert go_on.wait(10)
        return time.time() + 181 * DAY

    first = HistoryKeeper(catalog, RULES, 3600, clock=slow_clock)
    second = HistoryKeeper(catalog, RULES, 3600, clock=lambda: time.time() + 181 * DAY)
    results: list[Expired | None] = []
    worker = threading.Thread(target=lambda: results.append(first.run_once()))
    worker.start()
    assert inside.wait(10)
    lease = catalog.leases.current(HISTORY_LEASE)
    assert lease is not None and lease.holder == first.holder
    assert second.run_once() is None  # its turn is skipped while the first works
    go_on.set()
    worker.join(10)
    assert results == [Expired(4, 1)]
    assert catalog.leases.current(HISTORY_LEASE) is None  # released after the run
    assert second.run_once() == Expired(0, 0)


def test_the_thread_logs_survives_errors_and_stops_promptly(
    catalog: Catalog, history: int, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def clock() -> float:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the database went away")
        return time.time() + 181 * DAY

    keeper = HistoryKeeper(catalog, RULES, 0.05, clock=clock)
    with caplog.at_level(logging.INFO, logger="providers.operations.expiry"):
        keeper.start()
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        keeper.close()
        assert time.monotonic() - started < 2
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("history expiry failed") for m in messages)
    assert "history expiry: dropped 4 old versions, purged 1 trash items" in messages
    assert catalog.leases.current(HISTORY_LEASE) is None


def test_interval_zero_starts_no_thread(catalog: Catalog) -> None:
    keeper = HistoryKeeper(catalog, RULES, 0)
    keeper.start()
    assert not any(t.name == "history" for t in threading.enumerate())
    keeper.close()
