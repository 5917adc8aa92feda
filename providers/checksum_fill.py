"""Checksums for contents written before they were kept (`davserver checksums`).

Every upload computes its content's checksums while it streams (`providers.filestore`).
Contents committed by a release before that have NULL checksums: `fill_checksums`
reads each such content in use once, from its chunks, computes them and stores them
(`ContentChecksums.fill`, which writes only NULL columns, so a GET that filled one
meanwhile, or a second run, changes nothing). Without `apply` it only counts what it
would read. A content whose bytes cannot be read (a chunk missing or of the wrong size:
`davserver fsck` says which) is reported and skipped; the others go on.

The alternative, computing them lazily at the first PROPFIND that asks, would make a
listing read every file it lists; a full GET does fill them (`davserver.http.content`),
since the bytes pass anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from providers.catalog import Catalog
from providers.checksums import checksums_of
from providers.errors import StorageError
from providers.filestore import FileStore
from providers.gc import Progress

T = TypeVar("T")
log = logging.getLogger(__name__)
PAGE = 1000  # contents listed per query


def _quiet(items: Sequence[T], label: str) -> Iterable[T]:
    return items


@dataclass
class FillReport:
    """What a run found (`missing`, `missing_bytes`) and, with `applied`, did."""

    applied: bool
    missing: int = 0
    missing_bytes: int = 0
    filled: int = 0
    failed: list[int] = field(default_factory=list)  # content ids that could not be read

    @property
    def ok(self) -> bool:
        return not self.failed


def fill_checksums(
    catalog: Catalog, files: FileStore, *, apply: bool, progress: Progress = _quiet
) -> FillReport:
    """Compute and store the checksums of every content in use that has none (with
    `apply`; else only count them). See the module docstring."""
    todo: list[tuple[int, int]] = []
    after = 0
    while page := catalog.checksums.missing(after, PAGE):
        todo += page
        after = page[-1][0]
    report = FillReport(apply, len(todo), sum(size for _id, size in todo))
    if not apply:
        return report
    for content_id, size in progress(todo, "contents"):
        reader = files.reader(content_id, size)
        try:
            checksums = checksums_of(iter(reader.read, b""))
        except StorageError as e:
            log.warning("content %s: reading it failed: %s", content_id, e)
            report.failed.append(content_id)
            continue
        finally:
            reader.close()
        if catalog.checksums.fill(content_id, checksums):
            report.filled += 1
    return report
