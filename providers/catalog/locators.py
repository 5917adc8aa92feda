"""How each chunk is stored: reading and recording its `Locator` (codec, key id, size).

A writer records a chunk's locator after its object is put (`record`), in the same
`FileStore.store_chunks` call that claimed it and before any content naming it can be
committed, so a committed chunk's row always names an object that was written
(invariant 25). Rows are created "raw" by the claim: a writer whose object is the
plaintext records nothing. Two writers racing on one chunk may store it in two forms;
each records only after its own put, so whichever form the row ends up naming exists,
and GC sweeps the other (`providers.gc`). `reseal` moves a chunk to a new form with
a conditional update, so a concurrent reseal or writer never loses a row's change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from sqlalchemy import and_, bindparam, func, select, update
from sqlmodel import col

from providers.catalog.checksums import from_columns
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.direct import DirectRead
from providers.catalog.records import RAW_LOCATOR, ContentView, ExtentRecord, Locator
from providers.catalog.schema import CHUNK_DELETING, Chunk, Content, Extent

_LOCATOR = (col(Chunk.codec), col(Chunk.key_id), col(Chunk.stored_size))
_BY_HASH = select(col(Chunk.hash), *_LOCATOR).where(
    col(Chunk.hash).in_(bindparam("hashes", expanding=True))
)

_CONTENT_VIEW = DirectRead(  # prebuilt: every GET of a small file asks
    select(
        col(Content.sha1),
        col(Content.md5),
        col(Content.sha256),
        col(Extent.offset),
        col(Extent.size),
        col(Extent.chunk_hash),
        *_LOCATOR,
    )
    .select_from(Content)
    .outerjoin(Extent, col(Extent.content_id) == col(Content.id))
    .outerjoin(Chunk, col(Chunk.hash) == col(Extent.chunk_hash))
    .where(col(Content.id) == bindparam("content"))
    .order_by(col(Extent.seq))
)


class ChunkLocators:
    """The `codec`, `key_id` and `stored_size` columns of `chunk`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._record = (
            update(Chunk)
            .where(
                col(Chunk.hash) == bindparam("h"),
                col(Chunk.state) != CHUNK_DELETING,
            )
            .values(codec=bindparam("c"), key_id=bindparam("k"), stored_size=bindparam("s"))
        )

    def record(self, locators: Mapping[str, Locator]) -> None:
        """Record how each chunk (hash -> locator) was just stored: one statement,
        executed for every chunk, in one transaction."""
        if not locators:
            return
        rows = [
            {"h": h, "c": loc.codec, "k": loc.key_id, "s": loc.stored_size}
            for h, loc in sorted(locators.items())
        ]
        with self._db.connection(write=True) as conn:
            conn.execute(self._record, rows)

    def get(self, hashes: Iterable[str]) -> dict[str, Locator]:
        """The locator of each of `hashes` that has a chunk row."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, Locator] = {}
        with self._db.connection() as conn:
            for start in range(0, len(wanted), IN_BATCH):
                batch = wanted[start : start + IN_BATCH]
                for h, codec, key_id, stored in conn.execute(_BY_HASH, {"hashes": batch}):
                    found[h] = Locator(codec, key_id, stored)
        return found

    def content_view(self, content_id: int) -> ContentView:
        """The content's checksums, extents in file order and their chunks' locators,
        in one query (a small file's GET needs all three before its first byte; apart
        they were three round trips to the database)."""
        extents: list[ExtentRecord] = []
        locators: dict[str, Locator] = {}
        with self._db.connection() as conn:
            rows = _CONTENT_VIEW.rows(conn, {"content": content_id})
        # every row repeats the content's columns; an empty content has one row, no extent
        checksums = from_columns(*rows[0][:3]) if rows else None
        for *_sums, offset, size, chunk_hash, codec, key_id, stored in rows:
            if chunk_hash is not None:
                extents.append(ExtentRecord(offset, size, chunk_hash))
                locators[chunk_hash] = Locator(codec, key_id, stored) if codec else RAW_LOCATOR
        return ContentView(checksums, extents, locators)

    def describe(self, chunk_hash: str) -> tuple[int, Locator] | None:
        """The chunk's size and locator, or None if it has no row."""
        query = select(col(Chunk.size), *_LOCATOR).where(col(Chunk.hash) == chunk_hash)
        with self._db.connection() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row[0], Locator(row[1], row[2], row[3]))

    def page(self, *, after: str = "", limit: int = 500) -> list[tuple[str, int, Locator]]:
        """Chunk rows in hash order after `after`, in any state: (hash, size, locator),
        at most `limit` (for `reseal` and GC's sweep of sealed objects)."""
        query = (
            select(col(Chunk.hash), col(Chunk.size), *_LOCATOR)
            .where(col(Chunk.hash) > after)
            .order_by(col(Chunk.hash))
            .limit(limit)
        )
        with self._db.connection() as conn:
            rows = conn.execute(query).all()
        return [(h, n, Locator(c, k, z)) for h, n, c, k, z in rows]

    def all_rows(self) -> Iterator[tuple[str, int, Locator]]:
        """Every chunk row, a page at a time (see `page`)."""
        after = ""
        while page := self.page(after=after):
            yield from page
            after = page[-1][0]

    def reseal(self, chunk_hash: str, old: Locator, new: Locator) -> bool:
        """Set the chunk's locator to `new` if it is still `old` and the chunk is not
        being deleted; True if it changed."""
        same_key = (
            col(Chunk.key_id).is_(None) if old.key_id is None else col(Chunk.key_id) == old.key_id
        )
        statement = (
            update(Chunk)
            .where(
                and_(
                    col(Chunk.hash) == chunk_hash,
                    col(Chunk.codec) == old.codec,
                    same_key,
                    col(Chunk.state) != CHUNK_DELETING,
                )
            )
            .values(codec=new.codec, key_id=new.key_id, stored_size=new.stored_size)
        )
        with self._db.connection(write=True) as conn:
            return conn.execute(statement).rowcount == 1

    def census(self) -> list[tuple[str, str | None, int, int, int]]:
        """How the store's chunks are stored, per (codec, key id), in any state:
        (codec, key_id, chunks, bytes of plaintext, bytes stored), sorted."""
        stored = func.coalesce(col(Chunk.stored_size), col(Chunk.size))
        query = (
            select(
                col(Chunk.codec),
                col(Chunk.key_id),
                func.count(),
                func.coalesce(func.sum(col(Chunk.size)), 0),
                func.coalesce(func.sum(stored), 0),
            )
            .group_by(col(Chunk.codec), col(Chunk.key_id))
            .order_by(col(Chunk.codec), col(Chunk.key_id))
        )
        with self._db.connection() as conn:
            rows = conn.execute(query).all()
        return [(c, k, int(n), int(size), int(z)) for c, k, n, size, z in rows]

    def key_ids(self) -> set[str]:
        """Every master key id some chunk row is sealed under."""
        query = select(col(Chunk.key_id)).where(col(Chunk.key_id).is_not(None)).distinct()
        with self._db.connection() as conn:
            return {k for k in conn.execute(query).scalars() if k is not None}
