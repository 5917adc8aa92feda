"""What history costs under a quota (`providers.catalog.history_usage`,
`providers.operations.room`, design invariant 19): old versions are charged the
chunks only they keep, the trash its files' sizes, and a write that would not fit
expires the oldest history before it is refused."""

from __future__ import annotations

import logging
import random

import pytest

from providers.catalog import Catalog, UserRecord
from providers.errors import QuotaExceeded
from providers.operations import Actor, Operations
from tests.unit.test_versions import write

KIB = 1024


def _usage(catalog: Catalog, user: UserRecord) -> tuple[int, int, int]:
    usage = catalog.history_usage.usage(user.id)
    return usage.current, usage.versions, usage.trash


def _fresh(catalog: Catalog, user: UserRecord) -> UserRecord:
    """The user as stored now (an actor's record is read at login)."""
    found = catalog.users.by_id(user.id)
    assert found is not None
    return found


def test_small_edits_of_a_big_file_cost_only_their_chunks(
    ops: Operations, catalog: Catalog, alice: UserRecord
) -> None:
    body = bytearray(random.Random(7).randbytes(256 * KIB))
    for edit in range(10):
        body[edit * 20 * KIB : edit * 20 * KIB + 8] = b"edited%02d" % edit
        write(ops, alice, "big.bin", bytes(body), mtime=1.0)
    current, versions, trash = _usage(catalog, alice)
    assert (current, trash) == (256 * KIB, 0)
    # nine old versions of 256 KiB, each differing in about one 1-16 KiB chunk
    assert 0 < versions < 9 * 32 * KIB
    kept = catalog.history_usage.refresh(alice.id)
    assert kept <= versions  # the running figure is an upper bound, made exact here


def test_a_version_equal_to_the_current_content_costs_nothing(
    ops: Operations, catalog: Catalog, alice: UserRecord
) -> None:
    first = random.Random(1).randbytes(40 * KIB)
    write(ops, alice, "doc.bin", first, mtime=1.0)
    write(ops, alice, "doc.bin", random.Random(2).randbytes(40 * KIB), mtime=2.0)
    write(ops, alice, "doc.bin", first, mtime=3.0)
    assert catalog.history_usage.refresh(alice.id) == 40 * KIB  # only the middle one


def test_the_trash_is_reported_apart_and_charged(
    ops: Operations, catalog: Catalog, alice: UserRecord
) -> None:
    write(ops, alice, "keep.bin", b"k" * 3000, mtime=1.0)
    write(ops, alice, "gone.bin", b"g" * 5000, mtime=1.0)
    actor = Actor(alice)
    target = ops.view(actor).locate(["gone.bin"])
    assert target is not None
    ops.delete(actor, target)
    assert _usage(catalog, alice) == (3000, 0, 5000)
    assert _fresh(catalog, alice).charged_bytes == 8000


def test_a_write_past_the_quota_expires_the_oldest_history_first(
    ops: Operations, catalog: Catalog, alice: UserRecord, caplog: pytest.LogCaptureFixture
) -> None:
    catalog.users.set_quota(alice.name, 100 * KIB)
    for seed in range(3):  # two old versions of 30 KiB each
        write(ops, alice, "doc.bin", random.Random(seed).randbytes(30 * KIB), mtime=1.0)
    node_id = write(ops, alice, "old.bin", random.Random(9).randbytes(10 * KIB), mtime=1.0)
    assert len(catalog.versions.old(node_id)) == 0
    assert _usage(catalog, alice)[:2] == (40 * KIB, 60 * KIB)
    user = _fresh(catalog, alice)
    with caplog.at_level(logging.WARNING, logger="providers.operations.room"):
        write(ops, user, "new.bin", random.Random(5).randbytes(25 * KIB), mtime=1.0)
    assert _usage(catalog, alice)[:2] == (65 * KIB, 30 * KIB)  # the oldest version went
    assert sum("expired version" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(QuotaExceeded):  # even without any history it would not fit
        write(ops, _fresh(catalog, alice), "huge.bin", b"h" * 40 * KIB, mtime=1.0)
    assert _usage(catalog, alice)[:2] == (65 * KIB, 0)


def test_the_trash_is_expired_oldest_first_to_make_room(
    ops: Operations, catalog: Catalog, alice: UserRecord
) -> None:
    catalog.users.set_quota(alice.name, 50 * KIB)
    actor = Actor(alice)
    for name in ("first.bin", "second.bin"):
        write(ops, alice, name, random.Random(name).randbytes(20 * KIB), mtime=1.0)
        target = ops.view(actor).locate([name])
        assert target is not None
        ops.delete(actor, target)
    write(ops, _fresh(catalog, alice), "new.bin", b"n" * 25 * KIB, mtime=1.0)
    assert [item.path for item in catalog.trash.items(alice.id)] == ["/second.bin"]
    assert _usage(catalog, alice) == (25 * KIB, 0, 20 * KIB)
