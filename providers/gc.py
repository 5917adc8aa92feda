"""Garbage collection and consistency checks over the catalog and the blob store.

`collect_garbage` is mark-and-sweep with a grace period (DESIGN invariant 3): it drops
contents no file uses, then deletes chunks no content names and nobody touched for
`grace` seconds, then objects the catalog does not know at all (left by crashed
uploads) that are older than `grace`. Every deletion goes through the `deleting`
state (see `providers.catalog.content`), so it never races an upload in flight on any
instance. With `apply=False` it only reports. `check_store` (fsck) verifies that
every chunk a file needs exists with the right size, and with `deep` re-hashes it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from providers.blobstore.base import BlobStore, chunk_key, hash_from_chunk_key
from providers.catalog import Catalog
from providers.errors import BlobNotFound

T = TypeVar("T")


class Progress(Protocol):
    """Wraps a sequence being worked through, e.g. to draw a progress bar."""

    def __call__(self, items: Sequence[T], label: str) -> Iterable[T]: ...


def _no_progress(items: Sequence[T], label: str) -> Iterable[T]:
    return items


@dataclass
class GcReport:
    """What a GC run found (and, with `applied`, deleted)."""

    applied: bool
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

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupt)


def collect_garbage(
    catalog: Catalog,
    blobs: BlobStore,
    *,
    grace: float,
    apply: bool,
    key_prefix: str = "",
    progress: Progress = _no_progress,
) -> GcReport:
    """Find (and with `apply`, delete) what nothing references (see the module docstring)."""
    report = GcReport(applied=apply)
    contents = catalog.contents
    cutoff = time.time() - grace
    report.contents = contents.purge_unreferenced_contents(dry_run=not apply)
    if apply:
        for stale in contents.deleting():
            _delete(catalog, blobs, stale.hash, key_prefix)
    candidates = contents.collectable(cutoff, live_only=not apply)
    for chunk in progress(candidates, "chunks"):
        if apply and not contents.condemn(chunk.hash, cutoff):
            report.skipped += 1
            continue
        if apply:
            _delete(catalog, blobs, chunk.hash, key_prefix)
        report.chunks += 1
        report.chunk_bytes += chunk.size
    _sweep_orphans(catalog, blobs, report, cutoff, key_prefix, progress)
    return report


def _sweep_orphans(
    catalog: Catalog,
    blobs: BlobStore,
    report: GcReport,
    cutoff: float,
    key_prefix: str,
    progress: Progress,
) -> None:
    """Objects with no chunk row, older than the cutoff: left by crashed uploads."""
    old: dict[str, int] = {}
    for info in blobs.iter_keys(f"{key_prefix}chunks/"):
        digest = hash_from_chunk_key(info.key)
        if digest and info.mtime < cutoff:
            old[digest] = info.size
    known = catalog.contents.known(list(old))
    orphans = [(h, size) for h, size in old.items() if h not in known]
    for digest, size in progress(orphans, "orphans"):
        if report.applied:
            current = blobs.stat(chunk_key(digest, key_prefix))
            if current is None or current.mtime >= cutoff:
                continue  # rewritten since we listed it: an upload is using it
            if not catalog.contents.condemn_orphan(digest, size):
                continue  # a writer claimed it meanwhile
            _delete(catalog, blobs, digest, key_prefix)
        report.orphans += 1
        report.orphan_bytes += size


def _delete(catalog: Catalog, blobs: BlobStore, digest: str, key_prefix: str) -> None:
    blobs.delete(chunk_key(digest, key_prefix))
    catalog.contents.forget(digest)


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
    return report
