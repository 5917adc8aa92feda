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
every chunk a file needs exists with the right size, and with `deep` reads it through
the codec layer, which verifies its SHA-256 or its AEAD tag (invariant 24).

A chunk may have objects in several forms (raw, zstd, sealed: `providers.codec`) when
writers with other settings raced on it, or `davserver reseal` moved it: the
catalog's locator names the one that is read. Deleting a chunk deletes every form;
the orphan sweep also deletes forms the locator does not name, older than the grace.
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

from providers.blobstore.base import BlobStore
from providers.catalog import Catalog, Locator
from providers.catalog.chunk_users import FileUse
from providers.catalog.records import RAW_LOCATOR
from providers.codec import SEALED, ChunkVault
from providers.errors import BlobNotFound, CorruptChunk, LeaseHeld, LeaseLost, StorageError

T = TypeVar("T")
log = logging.getLogger(__name__)
LAST_GC = "last_gc_report"  # catalog settings: the last reports, for /metrics
LAST_FSCK = "last_fsck_report"
FSCK_PAGE = 500  # chunks whose locators fsck looks up at once


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
    # chunk hash -> each file, old version and trash item that uses it, for every bad chunk
    affected: dict[str, list[FileUse]] = field(default_factory=dict)

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
    vault: ChunkVault
    report: GcReport
    cutoff: float
    progress: Progress
    lease: _Lease | None

    @property
    def blobs(self) -> BlobStore:
        return self.vault.blobs

    def keep(self) -> None:
        if self.lease is not None:
            self.lease.keep()

    def delete(self, digest: str, *, in_catalog: bool = False) -> None:
        """Delete a `deleting` chunk's objects, then its row (and body); only under a
        live lease. A chunk kept in the catalog (`in_catalog`) was stored with no
        object, so none is asked for: one a racing writer stored anyway names no row
        once the row is gone, and the orphan sweep of a later run deletes it after the
        grace."""
        assert self.lease is not None, "a dry run deletes nothing"
        self.lease.keep()
        if not in_catalog:
            for key in self.vault.forms(digest):
                self.blobs.delete(key)
        self.catalog.contents.forget(digest)

    def still_old(self, key: str) -> bool:
        """The object is there and older than the cutoff (else a writer is storing it
        again since it was listed)."""
        current = self.blobs.stat(key)
        return current is not None and current.mtime < self.cutoff

    def delete_stale(self, key: str) -> bool:
        """Delete an object no chunk row names if it is `still_old`; True if deleted
        (or, in a dry run, would be)."""
        if not self.still_old(key):
            return False
        if self.lease is not None:
            self.lease.keep()
            self.blobs.delete(key)
        return True


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
    vault: ChunkVault | None = None,
) -> GcReport:
    """Find (and with `apply`, delete) what nothing references (see the module docstring).
    Uploads idle for `upload_ttl` seconds (default: the catalog's, 24 h) are dropped first,
    and blocks staged as long ago.

    With `apply` the run holds the catalog's GC lease throughout: raises `LeaseHeld` at
    once if another run holds it, `LeaseLost` (having stopped) if it lost it midway. A
    dry run takes no lease: it deletes nothing, so it cannot race a run that does.
    `vault`: the codec layer over `blobs` (default: raw chunks under `key_prefix`);
    it must hold every master key chunks are sealed under, or sealed forms are kept.
    """
    report = GcReport(applied=apply)
    lease = _Lease(catalog, lease_ttl) if apply else None
    vault = vault or ChunkVault(blobs, prefix=key_prefix)
    run = _Run(catalog, vault, report, time.time() - grace, progress, lease)
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
                run.delete(stale.hash, in_catalog=stale.in_catalog)
        _sweep_chunks(run)
        _sweep_orphans(run)
    finally:
        if lease is not None:
            lease.release()
    fields = {k: v for k, v in vars(report).items() if k != "applied"}
    _record(catalog, LAST_GC, {**fields, "applied": int(apply), "freed_bytes": report.freed_bytes})
    return report


def _stat_chunk(vault: ChunkVault, digest: str, size: int, locator: Locator) -> str | None:
    """What is wrong with one chunk's object by its size: "missing", "wrong_size" or None
    (a chunk kept in the catalog has its bytes in its locator: invariant 27)."""
    if locator.inline is not None:
        return None
    info = vault.blobs.stat(vault.object_key(digest, locator))
    expected = locator.at_rest(size)
    return "missing" if info is None else None if info.size == expected else "wrong_size"


def _read_chunk(vault: ChunkVault, digest: str, size: int, locator: Locator) -> str | None:
    """What is wrong with one chunk read in full: "missing", "corrupt" or None. The
    plaintext's SHA-256 is checked even where the vault trusts an AEAD tag."""
    try:
        data = vault.get(digest, size, locator)
    except BlobNotFound:
        return "missing"
    except CorruptChunk:
        return "corrupt"
    return None if hashlib.sha256(data).hexdigest() == digest else "corrupt"


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
            run.delete(chunk.hash, in_catalog=chunk.in_catalog)
        report.chunks += 1
        report.chunk_bytes += chunk.size


def _sweep_orphans(run: _Run) -> None:
    """Objects older than the cutoff that no chunk row names: left by crashed uploads
    (no row: condemned like a chunk), or forms a row no longer names (deleted alone)."""
    plain: dict[str, list[tuple[str, str, int]]] = {}  # hash -> (key, codec, size)
    sealed: dict[str, tuple[str, int]] = {}  # keyed name -> (key, size)
    for info in run.blobs.iter_keys(f"{run.vault.prefix}chunks/"):
        run.keep()  # listing a large store can outlast a lease renewal period
        parsed = run.vault.parse_key(info.key)
        if parsed is None or info.mtime >= run.cutoff:
            continue
        name, codec = parsed
        if codec == SEALED:
            sealed[name] = (info.key, info.size)
        else:
            plain.setdefault(name, []).append((info.key, codec, info.size))
    locators = run.catalog.locators.get(plain)
    orphans = [(h, sum(f[2] for f in forms)) for h, forms in plain.items() if h not in locators]
    for digest, size in run.progress(orphans, "orphans"):
        if run.report.applied and not _condemn_orphan(run, digest, plain[digest]):
            continue
        run.report.orphans += 1
        run.report.orphan_bytes += size
    stale = [  # a chunk kept in the catalog names no object at all (invariant 27)
        (key, n)
        for h, forms in plain.items()
        if h in locators
        for key, codec, n in forms
        if codec != locators[h].codec or locators[h].inline is not None
    ]
    stale += _stale_sealed(run, sealed)
    for key, size in run.progress(stale, "stale forms"):
        if run.report.applied and not run.delete_stale(key):
            continue
        run.report.orphans += 1
        run.report.orphan_bytes += size


def _condemn_orphan(run: _Run, digest: str, forms: list[tuple[str, str, int]]) -> bool:
    """Delete an unknown chunk's objects under a `deleting` row, so no writer stores it
    meanwhile; False if one is being written again or a writer claimed it."""
    if not all(run.still_old(key) for key, _codec, _size in forms):
        return False  # rewritten since we listed it: an upload is using it
    run.keep()
    if not run.catalog.contents.condemn_orphan(digest, forms[0][2]):
        return False  # a writer claimed it meanwhile
    run.delete(digest)
    return True


def _stale_sealed(run: _Run, sealed: dict[str, tuple[str, int]]) -> list[tuple[str, int]]:
    """Sealed objects whose keyed name no chunk row has under its key. Only decidable
    when the vault holds every key a row names; otherwise none are touched."""
    if not sealed:
        return []
    held = {key.key_id for key in run.vault.keys.keys} if run.vault.keys else set()
    missing = run.catalog.locators.key_ids() - held
    if missing:
        log.warning("gc: keeps sealed objects: master keys %s are not configured", missing)
        return []
    live = {run.vault.sealed_name(h, key_id) for h, key_id in run.catalog.locators.keyed_objects()}
    return [(key, size) for name, (key, size) in sealed.items() if name not in live]


def check_store(
    catalog: Catalog,
    blobs: BlobStore,
    *,
    deep: bool,
    key_prefix: str = "",
    progress: Progress = _no_progress,
    vault: ChunkVault | None = None,
) -> FsckReport:
    """Verify every referenced chunk's object exists with its stored size; with `deep`,
    read each through the codec layer, which verifies it (`ChunkVault.get`, as every
    GET does: invariant 24). The report names every file, old version and trash item
    each bad chunk damages (`Contents.files_using`)."""
    report = FsckReport()
    vault = vault or ChunkVault(blobs, prefix=key_prefix)
    referenced = list(catalog.contents.referenced())
    locators: dict[str, Locator] = {}
    for index, (digest, size) in enumerate(progress(referenced, "chunks")):
        if index % FSCK_PAGE == 0:  # one locator query per page of chunks
            locators = catalog.locators.get(h for h, _n in referenced[index : index + FSCK_PAGE])
        locator = locators.get(digest, RAW_LOCATOR)
        check = _read_chunk if deep else _stat_chunk
        problem = check(vault, digest, size, locator)
        if problem is not None:
            getattr(report, problem).append(digest)
        report.checked += 1
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
