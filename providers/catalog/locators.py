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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, join, outerjoin, select, update
from sqlmodel import col

from providers.catalog.checksums import from_columns
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.direct import DirectRead
from providers.catalog.records import RAW_LOCATOR, ContentView, ExtentRecord, Locator
from providers.catalog.schema import CHUNK_DELETING, Chunk, ChunkBody, Content, Extent

# a chunk's object form, then its body's (NULL when it has none): `_locator` reads them
_LOCATOR = (
    col(Chunk.codec),
    col(Chunk.key_id),
    col(Chunk.stored_size),
    col(ChunkBody.codec),
    col(ChunkBody.key_id),
    col(ChunkBody.data),
)
_WITH_BODY = outerjoin(Chunk, ChunkBody, col(ChunkBody.hash) == col(Chunk.hash))
_PAGE = 500  # chunk rows with their locators (bodies of up to 64 KiB) a query
# every chunk row with its locator, and the sealed objects rows name (no body)
_ROWS = select(col(Chunk.hash), col(Chunk.size), *_LOCATOR).select_from(_WITH_BODY)
_KEYED_OBJECTS = (
    select(col(Chunk.hash), col(Chunk.key_id))
    .select_from(_WITH_BODY)
    .where(col(Chunk.key_id).is_not(None), col(ChunkBody.hash).is_(None))
)
_BY_HASH = (
    select(col(Chunk.hash), *_LOCATOR)
    .select_from(_WITH_BODY)
    .where(col(Chunk.hash).in_(bindparam("hashes", expanding=True)))
)


def _locator(columns: Sequence[Any]) -> Locator:
    """The locator of a row of `_LOCATOR`: the body when the chunk has one (invariant
    27), else its object (raw when the row says nothing)."""
    codec, key_id, stored, body_codec, body_key_id, body = columns
    if body is not None:  # PostgreSQL's driver may give a memoryview: copied to bytes
        return Locator(body_codec, body_key_id).carrying(body)
    return Locator(codec, key_id, stored) if codec else RAW_LOCATOR


def _same_key(column: Any, key_id: str | None) -> ColumnElement[bool]:
    """`column` (a master key id) holds `key_id`, NULL included."""
    same: ColumnElement[bool] = column.is_(None) if key_id is None else column == key_id
    return same


def _census_of(codec: Any, key_id: Any, stored: Any) -> Select[Any]:
    """Chunks per (codec, key id): count, bytes of plaintext, bytes `stored`."""
    return select(
        codec,
        key_id,
        func.count(),
        func.coalesce(func.sum(col(Chunk.size)), 0),
        func.coalesce(func.sum(stored), 0),
    ).group_by(codec, key_id)


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
    .outerjoin(ChunkBody, col(ChunkBody.hash) == col(Extent.chunk_hash))
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
                for h, *columns in conn.execute(_BY_HASH, {"hashes": batch}):
                    found[h] = _locator(columns)
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
        for _sha1, _md5, _sha256, offset, size, chunk_hash, *columns in rows:
            if chunk_hash is not None:
                extents.append(ExtentRecord(offset, size, chunk_hash))
                locators[chunk_hash] = _locator(columns)
        return ContentView(checksums, extents, locators)

    def describe(self, chunk_hash: str) -> tuple[int, Locator] | None:
        """The chunk's size and locator, or None if it has no row."""
        query = (
            select(col(Chunk.size), *_LOCATOR)
            .select_from(_WITH_BODY)
            .where(col(Chunk.hash) == chunk_hash)
        )
        with self._db.connection() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row[0], _locator(row[1:]))

    def page(self, *, after: str = "", limit: int = _PAGE) -> list[tuple[str, int, Locator]]:
        """Chunk rows in hash order after `after`, in any state: (hash, size, locator),
        at most `limit` (for `reseal`)."""
        rows = self._page_of(_ROWS, after, limit)
        return [(h, n, _locator(columns)) for h, n, *columns in rows]

    def all_rows(self) -> Iterator[tuple[str, int, Locator]]:
        """Every chunk row, a page at a time (see `page`)."""
        for h, n, *columns in self._every(_ROWS, _PAGE):
            yield h, n, _locator(columns)

    def keyed_objects(self, *, limit: int = 5000) -> Iterator[tuple[str, str]]:
        """(hash, master key id) of every chunk row whose object is under a key (only
        sealed ones are) and that has no body, `limit` rows a query: the sealed objects
        the rows name, for GC's sweep of sealed objects (no body is read)."""
        yield from ((h, key_id) for h, key_id in self._every(_KEYED_OBJECTS, limit))

    def _page_of(self, query: Select[*tuple[Any, ...]], after: str, limit: int) -> Sequence[Any]:
        """The rows of `query` (its first column the chunk's hash) after `after`, in
        hash order, at most `limit`."""
        query = query.where(col(Chunk.hash) > after).order_by(col(Chunk.hash)).limit(limit)
        with self._db.connection() as conn:
            return conn.execute(query).all()

    def _every(self, query: Select[*tuple[Any, ...]], limit: int) -> Iterator[Any]:
        """Every row of `query` (see `_page_of`), one query per `limit` rows."""
        after = ""
        while rows := self._page_of(query, after, limit):
            yield from rows
            if len(rows) < limit:
                return
            after = rows[-1][0]

    def reseal(self, chunk_hash: str, old: Locator, new: Locator) -> bool:
        """Set the chunk's locator to `new` if it is still `old` and the chunk is not
        being deleted; True if it changed. A chunk kept in the catalog (`old.inline`)
        stays there: `new` carries its new at-rest bytes."""
        if old.inline is not None:
            return self._reseal_body(chunk_hash, old, new)
        statement = (
            update(Chunk)
            .where(
                and_(
                    col(Chunk.hash) == chunk_hash,
                    col(Chunk.codec) == old.codec,
                    _same_key(col(Chunk.key_id), old.key_id),
                    col(Chunk.state) != CHUNK_DELETING,
                )
            )
            .values(codec=new.codec, key_id=new.key_id, stored_size=new.stored_size)
        )
        with self._db.connection(write=True) as conn:
            return conn.execute(statement).rowcount == 1

    def _reseal_body(self, chunk_hash: str, old: Locator, new: Locator) -> bool:
        """`reseal` of a chunk kept in the catalog: its body rewritten in place."""
        assert new.inline is not None, "a chunk in the catalog stays in the catalog"
        statement = (
            update(ChunkBody)
            .where(
                col(ChunkBody.hash) == chunk_hash,
                col(ChunkBody.codec) == old.codec,
                _same_key(col(ChunkBody.key_id), old.key_id),
            )
            .values(codec=new.codec, key_id=new.key_id, data=new.inline)
        )
        with self._db.connection(write=True) as conn:
            return conn.execute(statement).rowcount == 1

    def census(self) -> list[tuple[str, str | None, int, int, int]]:
        """How the store's chunks are stored, per (codec, key id), in any state:
        (codec, key_id, chunks, bytes of plaintext, bytes stored), sorted; chunks kept
        in the catalog are counted apart, their codec prefixed "inline:"."""
        stored = func.coalesce(col(Chunk.stored_size), col(Chunk.size))
        objects = (
            _census_of(col(Chunk.codec), col(Chunk.key_id), stored)
            .select_from(_WITH_BODY)
            .where(col(ChunkBody.hash).is_(None))
        )
        body_size = func.length(col(ChunkBody.data))
        bodies = _census_of(col(ChunkBody.codec), col(ChunkBody.key_id), body_size).select_from(
            join(ChunkBody, Chunk, col(Chunk.hash) == col(ChunkBody.hash))
        )
        with self._db.connection() as conn:
            found = [(c, k, int(n), int(b), int(z)) for c, k, n, b, z in conn.execute(objects)]
            found += [
                (f"inline:{c}", k, int(n), int(b), int(z)) for c, k, n, b, z in conn.execute(bodies)
            ]
        return sorted(found, key=lambda row: (row[0], row[1] or ""))

    def key_ids(self) -> set[str]:
        """Every master key id some chunk is sealed under (its object or its body)."""
        found: set[str] = set()
        with self._db.connection() as conn:
            for column in (col(Chunk.key_id), col(ChunkBody.key_id)):
                query = select(column).where(column.is_not(None)).distinct()
                found |= {k for k in conn.execute(query).scalars() if k is not None}
        return found
