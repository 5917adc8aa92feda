"""Garbage collection and consistency checks over the catalog and the blob store.

`collect_garbage` is mark-and-sweep with a grace period (DESIGN invariant 3): it drops
resumable uploads abandoned for their time to live (`providers.catalog.uploads`; the
chunks of uploads in progress count as referenced) and blocks staged through the delta
API as long ago (`providers.catalog.blocks`; staged ones count as referenced too) and
contents no file uses, then
deletes chunks no content names and nobody touched for `grace` seconds, then objects
the catalog does not know at all (left by crashed uploads) that are older than
`grace`. Every deletion goes through the `deleting`
state (see `providers.catalog.content`), so it never races an upload in flight on any
instance, and an applying run holds the catalog's `gc` lease, so it never races another
run (`docs/gc.md`). With `apply=False` it only reports. `check_store` (fsck) verifies that
every chunk a file needs exists with the right size, and with `deep` re-hashes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from providers.blobstore.base import BlobStore, chunk_key, hash_from_chunk_key
from providers.catalog import Catalog
from providers.errors import BlobNotFound, LeaseHeld, LeaseLost, StorageError

T = TypeVar("T")
log = logging.getLogger(__name__)
LAST_GC = "last_gc_report"  # catalog settings: the last reports, for /metrics
LAST_FSCK = "last_fsck_report"


class Progress(Protocol):
    """Wraps a sequence being worked through, e.g. to draw a progress bar."""

    def __call__(self, items: Sequence[T], label: str) -> Iterable[T]: ...


def _no_progress(items: Sequence[T], label: str) -> Iterable[T]:
    return items


@dataclass
class GcReport:
    """What a GC run found (and, with `applied`, deleted)."""

    applied: bool
    uploads: int = 0  # abandoned resumable uploads dropped (their chunks become garbage)
    staged: int = 0  # staged delta-API blocks expired (the same)
    contents: int = 0
    chunks: int = 0
    chunk_bytes: int = 0
    orphans: int = 0
    orphan_bytes: int = 0
    skipped: int = 0  # candidates a writer touched while we ran

    @property
    def freed_bytes(self) -> int:
        return self.chunk_bytes + self.orphan_bytes


@dataclass
class FsckReport:
    """Problems found by `check_store`; `ok` when there are none."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    # chunk hash -> (owner, path) of each current file that names it, for every bad chunk
    affected: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupt)


GC_LEASE = "gc"
DEFAULT_LEASE_TTL = 600.0  # a crashed run blocks the next one for at most this long


class _Lease:
    """This run's hold on the catalog's GC lease (see `docs/gc.md`).

    `keep` is called before every condemn and every delete: it renews the lease once a
    quarter of its length has passed, so each of those steps starts with at least three
    quarters of the lease ahead of it, and raises `LeaseLost` (stopping the run before
    it touches anything more) if another run took the lease over.
    """

    def __init__(self, catalog: Catalog, ttl: float) -> None:
        self._leases, self._ttl = catalog.leases, ttl
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        held = self._leases.acquire(GC_LEASE, self.holder, ttl)
        if held.holder != self.holder:
            until = datetime.fromtimestamp(held.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            raise LeaseHeld(f"another gc is running (holder {held.holder}, lease until {until})")
        self._renew_at = time.time() + ttl / 4

    def keep(self) -> None:
        if time.time() < self._renew_at:
            return
        if self._leases.renew(GC_LEASE, self.holder, self._ttl) is None:
            raise LeaseLost(f"gc lease of {self.holder} expired and was taken over; stopped")
        self._renew_at = time.time() + self._ttl / 4

    def release(self) -> None:
        self._leases.release(GC_LEASE, self.holder)


@dataclass
class _Run:
    """One GC pass: what it works on, what it found, and the lease it deletes under
    (None for a dry run, which changes no chunk)."""

    catalog: Catalog
    blobs: BlobStore
    report: GcReport
    cutoff: float
    key_prefix: str
    progress: Progress
    lease: _Lease | None

    def keep(self) -> None:
        if self.lease is not None:
            self.lease.keep()

    def delete(self, digest: str) -> None:
        """Delete a `deleting` chunk's object, then its row; only under a live lease."""
        assert self.lease is not None, "a dry run deletes nothing"
        self.lease.keep()
        self.blobs.delete(chunk_key(digest, self.key_prefix))
        self.catalog.contents.forget(digest)


def collect_garbage(
    catalog: Catalog,
    blobs: BlobStore,
    *,
    grace: float,
    apply: bool,
    key_prefix: str = "",
    progress: Progress = _no_progress,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    upload_ttl: float | None = None,
) -> GcReport:
    """Find (and with `apply`, delete) what nothing references (see the module docstring).
    Uploads idle for `upload_ttl` seconds (default: the catalog's, 24 h) are dropped first,
    and blocks staged as long ago.

    With `apply` the run holds the catalog's GC lease throughout: raises `LeaseHeld` at
    once if another run holds it, `LeaseLost` (having stopped) if it lost it midway. A
    dry run takes no lease: it deletes nothing, so it cannot race a run that does.
    """
    report = GcReport(applied=apply)
    lease = _Lease(catalog, lease_ttl) if apply else None
    run = _Run(catalog, blobs, report, time.time() - grace, key_prefix, progress, lease)
    try:
        ttl = catalog.uploads.ttl if upload_ttl is None else upload_ttl
        report.uploads = catalog.uploads.expire(time.time() - ttl, dry_run=not apply)
        report.staged = catalog.blocks.expire(time.time() - ttl, dry_run=not apply)
        report.contents = catalog.contents.purge_unreferenced_contents(dry_run=not apply)
        if apply:
            # Rows a crashed or lease-less run left `deleting`. We hold the lease, so no
            # other run can still be about to delete their objects: finishing them here
            # cannot delete bytes a writer stores after we drop the row.
            for stale in catalog.contents.deleting():
                run.delete(stale.hash)
        _sweep_chunks(run)
        _sweep_orphans(run)
    finally:
        if lease is not None:
            lease.release()
    fields = {k: v for k, v in vars(report).items() if k != "applied"}
    _record(catalog, LAST_GC, {**fields, "applied": int(apply), "freed_bytes": report.freed_bytes})
    return report


def _record(catalog: Catalog, key: str, report: dict[str, int]) -> None:
    """Keep `report` (numbers) with its time in the catalog's settings under `key`;
    a catalog that fails now only loses the record (logged), not the run's result."""
    try:
        catalog.users.set_setting(key, json.dumps({**report, "timestamp": int(time.time())}))
    except StorageError as e:
        log.warning("could not record the %s: %s", key, e)


def _sweep_chunks(run: _Run) -> None:
    """Chunks no extent names, untouched since the cutoff: condemn each, then delete it."""
    report, contents = run.report, run.catalog.contents
    candidates = contents.collectable(run.cutoff, live_only=not report.applied)
    for chunk in run.progress(candidates, "chunks"):
        if report.applied:
            run.keep()
            if not contents.condemn(chunk.hash, run.cutoff):
                report.skipped += 1
                continue
            run.delete(chunk.hash)
        report.chunks += 1
        report.chunk_bytes += chunk.size


def _sweep_orphans(run: _Run) -> None:
    """Objects with no chunk row, older than the cutoff: left by crashed uploads."""
    old: dict[str, int] = {}
    for info in run.blobs.iter_keys(f"{run.key_prefix}chunks/"):
        run.keep()  # listing a large store can outlast a lease renewal period
        digest = hash_from_chunk_key(info.key)
        if digest and info.mtime < run.cutoff:
            old[digest] = info.size
    known = run.catalog.contents.known(list(old))
    orphans = [(h, size) for h, size in old.items() if h not in known]
    for digest, size in run.progress(orphans, "orphans"):
        if run.report.applied:
            current = run.blobs.stat(chunk_key(digest, run.key_prefix))
            if current is None or current.mtime >= run.cutoff:
                continue  # rewritten since we listed it: an upload is using it
            run.keep()
            if not run.catalog.contents.condemn_orphan(digest, size):
                continue  # a writer claimed it meanwhile
            run.delete(digest)
        run.report.orphans += 1
        run.report.orphan_bytes += size


def check_store(
    catalog: Catalog,
    blobs: BlobStore,
    *,
    deep: bool,
    key_prefix: str = "",
    progress: Progress = _no_progress,
) -> FsckReport:
    """Verify every referenced chunk exists (and with `deep`, hashes to its name)."""
    report = FsckReport()
    referenced = list(catalog.contents.referenced())
    for digest, size in progress(referenced, "chunks"):
        report.checked += 1
        key = chunk_key(digest, key_prefix)
        if not deep:
            info = blobs.stat(key)
            if info is None:
                report.missing.append(digest)
            elif info.size != size:
                report.wrong_size.append(digest)
            continue
        try:
            data = blobs.get(key)
        except BlobNotFound:
            report.missing.append(digest)
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            report.corrupt.append(digest)
    bad = [*report.missing, *report.wrong_size, *report.corrupt]
    report.affected = catalog.contents.files_using(bad) if bad else {}
    problems = {
        "missing": report.missing,
        "wrong_size": report.wrong_size,
        "corrupt": report.corrupt,
    }
    counts = {name: len(found) for name, found in problems.items()}
    _record(catalog, LAST_FSCK, {"checked": report.checked, "ok": int(report.ok), **counts})
    return report
