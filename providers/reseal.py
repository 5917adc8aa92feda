"""`davserver reseal`: move chunks to the form the current settings want, online.

A chunk's wanted form (`wants_change`): with encryption on, sealed under the current
master key, so raw and zstd chunks of a store that was plain and chunks sealed under
a retired key (a rotation) are all moved; with `recompress` also, on a store without
encryption, raw chunks when compression is on and zstd ones when it is off. Sealed
chunks under the current key are left as they are (their payload's compression is
inside the ciphertext, and a sealed object is never rewritten under its own name).

For each such chunk `reseal_chunks` reads it verified (`ChunkVault.get`), encodes it
again, puts the new object, and only then switches the row with the conditional
`ChunkLocators.reseal`, so the row always names an object that exists (invariant 25)
and a writer or a second reseal that changed the row meanwhile wins (the object put
here is then an unnamed form GC sweeps). The old object is never deleted here: only GC
deletes chunk objects, after its grace period (invariant 3), so readers that looked up
the old locator a moment ago still find it. A chunk that fails verification is counted
and left alone (`davserver fsck` names the files it damages). Progress is the set of
rows: a run that stops anywhere is resumed by running it again, and a finished store
gives a run with nothing to do (under `recompress`, raw chunks that do not compress
are read again each run, and left unchanged). A chunk kept in the catalog (invariant
27) has no object: its body is rewritten in place by the same conditional update, and
a reader that looked it up a moment ago holds the old bytes already.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from providers.catalog import Catalog, Locator
from providers.codec import RAW, SEALED, ZSTD, ChunkVault
from providers.errors import BlobNotFound, CorruptChunk

PAGE = 500  # chunk rows read at once
log = logging.getLogger(__name__)

RESEALED, UNCHANGED, RACED, CORRUPT, MISSING = (
    "resealed",
    "unchanged",
    "raced",
    "corrupt",
    "missing",
)


@dataclass
class ResealReport:
    """What a run found and (unless `dry_run`) did; sizes are bytes of stored objects."""

    dry_run: bool
    examined: int = 0  # chunk rows looked at
    candidates: int = 0  # rows whose form is not the wanted one
    candidate_bytes: int = 0
    resealed: int = 0
    bytes_before: int = 0  # of the resealed chunks' old objects (left to GC)
    bytes_after: int = 0  # of their new objects
    unchanged: int = 0  # encoded again to the same form (did not compress)
    raced: int = 0  # a writer or another run changed the row first
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every candidate was read (none corrupt or missing)."""
        return not (self.corrupt or self.missing)


def wants_change(vault: ChunkVault, locator: Locator, *, recompress: bool) -> bool:
    """Whether a chunk stored as `locator` is not in the form `vault` wants (see the
    module docstring)."""
    if vault.keys is not None:
        return locator.codec != SEALED or locator.key_id != vault.keys.current.key_id
    if not recompress or locator.codec == SEALED:
        return False
    return locator.codec == (RAW if vault.compressor is not None else ZSTD)


def reseal_chunks(
    catalog: Catalog,
    vault: ChunkVault,
    *,
    recompress: bool = False,
    dry_run: bool = False,
    workers: int = 4,
    progress: Callable[[int], object] | None = None,
) -> ResealReport:
    """Move every chunk whose form `wants_change` to the wanted one (see the module
    docstring), `workers` chunks at a time; with `dry_run` only count them.
    `progress(n)` is called after each page of `n` rows."""
    report = ResealReport(dry_run=dry_run)
    after = ""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="reseal") as pool:
        while page := catalog.locators.page(after=after, limit=PAGE):
            after = page[-1][0]
            todo = [row for row in page if wants_change(vault, row[2], recompress=recompress)]
            report.examined += len(page)
            report.candidates += len(todo)
            report.candidate_bytes += sum(loc.at_rest(size) for _h, size, loc in todo)
            if not dry_run:
                moves = pool.map(lambda row: _move(catalog, vault, *row), todo)
                for (digest, size, old), (outcome, new) in zip(todo, moves, strict=True):
                    after_size = None if new is None else new.at_rest(size)
                    _tally(report, digest, outcome, old.at_rest(size), after_size)
            if progress is not None:
                progress(len(page))
    return report


def _move(
    catalog: Catalog, vault: ChunkVault, digest: str, size: int, old: Locator
) -> tuple[str, Locator | None]:
    """Move one chunk; its outcome and, if moved, its new locator."""
    try:
        data = vault.get(digest, size, old)
    except BlobNotFound:
        return MISSING, None
    except CorruptChunk as e:
        log.error("reseal: chunk %s is corrupt, left as it is: %s", digest, e)
        return CORRUPT, None
    new, stored = vault.encode(digest, data)
    if (new.codec, new.key_id) == (old.codec, old.key_id):
        return UNCHANGED, None
    if old.inline is not None:  # kept in the catalog, where it stays (invariant 27)
        new = new.carrying(stored)
    else:
        vault.blobs.put(vault.object_key(digest, new), stored)
    return (RESEALED, new) if catalog.locators.reseal(digest, old, new) else (RACED, None)


def _tally(report: ResealReport, digest: str, outcome: str, before: int, after: int | None) -> None:
    if outcome == RESEALED and after is not None:
        report.resealed += 1
        report.bytes_before += before
        report.bytes_after += after
    elif outcome == CORRUPT:
        report.corrupt.append(digest)
    elif outcome == MISSING:
        report.missing.append(digest)
    elif outcome == RACED:
        report.raced += 1
    else:
        report.unchanged += 1
