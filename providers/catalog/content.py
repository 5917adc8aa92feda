"""File contents and chunks: committing uploads, reading manifests, and GC's queries.

Read and write ordering (the full argument is in `docs/gc.md`):

- A writer `claim`s each chunk before relying on it. A `stored` chunk is touched
  (`touched_at = now`) and not uploaded again; a missing one gets an `uploading` row
  first, then its bytes. A chunk in state `deleting` is being removed by GC: the
  writer waits until the row is gone, then claims again. A small chunk a writer would
  upload may instead get its body (`chunk_body`) in the claim's own transaction: it is
  then kept in the catalog, has no object, and is removed with its row (invariant 27).
- `commit_file` re-checks, inside the commit transaction, that no chunk of the new
  content is missing or `deleting`, touching them again and marking them `stored`;
  only then does the content become visible (DESIGN invariant 2). The writer made
  its `uploading` chunks durable before committing, so the commit is where they
  become `stored` (one transaction per chunk fewer than marking each after its put);
  until then a concurrent writer of the same bytes uploads its own copy, which is
  harmless (equal bytes, atomic puts).
- GC only condemns a chunk (`stored`/`uploading` -> `deleting`) when no extent names it
  and it was not touched for a grace period, in one conditional UPDATE; only after
  that does it delete the object, then the row. Because the condemn is conditional on
  the row's own `touched_at`, a writer's touch and GC's condemn cannot both win.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Update, bindparam, delete, exists, func, update
from sqlmodel import Session, col, select

from providers.catalog.changes import lock_log
from providers.catalog.chunk_users import FileUse, chunk_users
from providers.catalog.commit import (
    FileCommit,
    add_content,
    chunks_locked_in_order,
    commit_file,
)
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.direct import DirectWrite, insert_values, unindexed
from providers.catalog.records import ChunkRecord, ExtentRecord, Locator, NewContent, NodeRecord
from providers.catalog.schema import (
    CHUNK_DELETING,
    CHUNK_STORED,
    CHUNK_UPLOADING,
    Chunk,
    ChunkBody,
    Content,
    Extent,
    Node,
    StagedBlock,
    UploadExtent,
    User,
    Version,
)

_EXTENTS = (  # prebuilt: every read of a file asks
    select(col(Extent.offset), col(Extent.size), col(Extent.chunk_hash))
    .where(col(Extent.content_id) == bindparam("content"))
    .order_by(col(Extent.seq))
)
_CHUNK_COLUMNS = ("hash", "size", "state", "touched_at", "created_at")
CLAIM_DEDUP = "dedup"  # the chunk is stored: do not upload it
CLAIM_UPLOAD = "upload"  # upload it (durably) before committing content that names it
Transaction = Connection  # an open catalog transaction, opaque above the catalog
# A step a caller runs first inside a commit's transaction (`Contents.commit_file`)
CommitStep = Callable[[Transaction], None]
CLAIM_BUSY = "busy"  # GC is deleting it: wait and claim again
# claimed for upload and its body written by the claim itself: nothing to upload
CLAIM_INLINE = "inline"
_BODY_COLUMNS = ("hash", "codec", "key_id", "data")
# a chunk row's body (invariant 27), for GC: such a chunk was stored with no object
_HAS_BODY = exists().where(col(ChunkBody.hash) == col(Chunk.hash)).label("in_catalog")


def in_order(steps: Sequence[CommitStep]) -> CommitStep | None:
    """One step running `steps` in turn; None when there are none."""
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def run(transaction: Transaction) -> None:
        for step in steps:
            step(transaction)

    return run


def session_step(step: Callable[[Session], None]) -> CommitStep:
    """`step`, written for an ORM session, as a `CommitStep`: it runs on a session
    joined to the commit's transaction, which closing the session neither commits nor
    rolls back."""

    def run(conn: Connection) -> None:
        with Session(conn, expire_on_commit=False) as s:
            step(s)

    return run


def _touching(chunks: ColumnElement[bool]) -> Update:
    """The update touching those of `chunks` that are stored; their hashes returned
    (the state a filter only: `unindexed`)."""
    return (
        update(Chunk)
        .where(chunks, unindexed(col(Chunk.state)) == CHUNK_STORED)
        .values(touched_at=bindparam("now"))
        .returning(col(Chunk.hash))
    )


def _uploading(chunk_hash: str, size: int, now: float) -> dict[str, Any]:
    """The row claiming a chunk for its upload (`_CHUNK_COLUMNS`)."""
    return dict(hash=chunk_hash, size=size, state=CHUNK_UPLOADING, touched_at=now, created_at=now)


def _body(chunk_hash: str, locator: Locator) -> dict[str, Any]:
    """The `chunk_body` row of a chunk kept in the catalog (`_BODY_COLUMNS`)."""
    return dict(hash=chunk_hash, codec=locator.codec, key_id=locator.key_id, data=locator.inline)


def _unless_there(new: Any) -> Any:
    """`new` (an INSERT of chunk bodies in the database's dialect) skipping a chunk
    that has one: it holds the same plaintext, in a form its row names itself."""
    return new.on_conflict_do_nothing(index_elements=["hash"])


def _claiming(new: Any) -> Any:
    """`new` (an INSERT of chunk rows in the database's dialect) claiming each chunk:
    a new row, or an upload's row touched again; the hashes claimed returned."""
    return new.on_conflict_do_update(
        index_elements=["hash"],
        set_={"touched_at": new.excluded.touched_at},
        where=col(Chunk.state) == CHUNK_UPLOADING,
    ).returning(col(Chunk.hash))


class Contents:
    """Content manifests and the chunk state machine."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._touch_stored = _touching(chunks_locked_in_order("hs"))
        self._claim_new = _claiming(self._db.insert(Chunk))
        # a small file's one chunk: the same two statements, run on the driver
        self._touch_one = DirectWrite(_touching(col(Chunk.hash) == bindparam("hash")))
        one = insert_values(Chunk, _CHUNK_COLUMNS, using=self._db.insert)
        self._claim_one = DirectWrite(_claiming(one))
        body = insert_values(ChunkBody, _BODY_COLUMNS, using=self._db.insert)
        self._add_body = DirectWrite(_unless_there(body))

    # --- writers -------------------------------------------------------------------

    def claim(self, chunk_hash: str, size: int) -> str:
        """`claim_many` for one chunk."""
        return self.claim_many({chunk_hash: size})[chunk_hash]

    def claim_many(
        self, sizes: Mapping[str, int], inline: Mapping[str, Locator] | None = None
    ) -> dict[str, str]:
        """Decide, for each chunk (hash -> size), what a writer does with it:
        CLAIM_DEDUP, CLAIM_UPLOAD, CLAIM_INLINE or CLAIM_BUSY (see the module docstring).

        `inline`: hash -> locator carrying the at-rest bytes (`ChunkVault.inline`) of
        the chunks to keep in the catalog (invariant 27). Each of them this claim would
        have the writer upload gets its body in the same transaction instead, and is
        answered CLAIM_INLINE: it is as durable as the commit that will name it, which
        comes later on the same database.

        One write transaction of two or three statements whatever the number of chunks:
        a writer claims a batch of chunks at a time, since a transaction per chunk cost
        more than hashing it (and its statements are built once, since building and
        cache-keying SQLAlchemy expressions cost more than SQLite running them).
        Rows are locked in the order of their hashes, so concurrent batches never
        deadlock (`chunks_locked_in_order`; new rows are inserted in that order too,
        then their bodies).
        """
        now, hashes, inline = time.time(), sorted(sizes), inline or {}
        if len(hashes) == 1:
            only = hashes[0]
            return {only: self._claim_one_chunk(only, sizes[only], inline.get(only), now)}
        with self._db.connection(write=True) as conn:
            touched = {"hs": hashes, "now": now}
            dedup = set(conn.execute(self._touch_stored, touched).scalars())
            rows = [_uploading(h, sizes[h], now) for h in hashes if h not in dedup]
            upload = set(conn.execute(self._claim_new, rows).scalars()) if rows else set()
            bodies = [_body(h, inline[h]) for h in hashes if h in upload and h in inline]
            if bodies:
                self._add_body.run_many(conn, bodies)
        answers = {h: CLAIM_INLINE if h in inline else CLAIM_UPLOAD for h in upload}
        return {h: CLAIM_DEDUP if h in dedup else answers.get(h, CLAIM_BUSY) for h in hashes}

    def _claim_one_chunk(
        self, chunk_hash: str, size: int, inline: Locator | None, now: float
    ) -> str:
        """`claim_many`'s answer for a batch of one chunk."""
        with self._db.connection(write=True) as conn:
            if self._touch_one.run(conn, {"hash": chunk_hash, "now": now}).rows:
                return CLAIM_DEDUP
            if not self._claim_one.run(conn, _uploading(chunk_hash, size, now)).rows:
                return CLAIM_BUSY
            if inline is None:
                return CLAIM_UPLOAD
            self._add_body.run(conn, _body(chunk_hash, inline))
        return CLAIM_INLINE

    def commit_file(
        self,
        parent_id: int,
        name: str,
        owner_id: int,
        content: NewContent,
        *,
        mtime: float,
        content_type: str | None,
        path: str,
        author_id: int | None,
        rename_on_clash: bool = False,
        before: CommitStep | None = None,
    ) -> tuple[NodeRecord, bool]:
        """Make `content` the current content of file `name` in one transaction.

        `name` is matched normalised (`providers.names.name_key`): an existing file
        with another spelling of it is overwritten and keeps its stored spelling, as on
        a case-preserving filesystem. Returns the node and whether it was created.
        Raises `Conflict` if the parent is gone or the name is a directory,
        `ChunkGone` (a 503: retrying uploads it again) if a chunk is no longer stored,
        `QuotaExceeded` if the owner would pass their quota. The owner charged is the
        file's (`node.owner_id`), for a new file `owner_id` (the parent folder's owner,
        whoever uploads); only the growth over the replaced content counts, and the
        check runs under a lock on the owner's row, so concurrent commits never take
        the owner's committed bytes past the quota.

        With `rename_on_clash` nothing is ever replaced: if the name is taken (by a
        file or a folder) the new file is created as "stem (2).ext", "stem (3).ext"...,
        the first name free, chosen under the parent's lock in this same transaction
        (no check-then-write race); the returned node carries the name used, and the
        change log the path with it. `before` runs first inside the transaction (e.g. to
        retire a resumable upload together with its commit), before the log's order
        lock: it must lock no row a logged mutation locks (a folder's, a file's, a
        user's); whatever it raises aborts the commit.
        """

        commit = FileCommit(
            parent_id,
            name,
            owner_id,
            content,
            mtime,
            content_type,
            path,
            author_id,
            rename_on_clash,
        )

        def work(conn: Connection) -> tuple[NodeRecord, bool]:
            # before the log's order lock, which every other writer waits for: no
            # holder of it waits for what these lock (design invariant 15)
            if before is not None:
                before(conn)
            content_id = add_content(conn, content)
            lock_log(conn)
            return commit_file(conn, commit, content_id)

        return self._db.run_core(work)

    def extents(self, content_id: int) -> list[ExtentRecord]:
        """The content's extents in file order."""
        with self._db.connection() as conn:
            rows = conn.execute(_EXTENTS, {"content": content_id}).all()
        return [ExtentRecord(offset=o, size=n, chunk_hash=h) for o, n, h in rows]

    # --- garbage collection and checks ---------------------------------------------

    def purge_unreferenced_contents(self, *, dry_run: bool) -> int:
        """Drop contents no node or version uses (with their extents); return how many."""

        def work(s: Session) -> int:
            unused = select(col(Content.id)).where(
                ~exists().where(col(Node.content_id) == col(Content.id)),
                ~exists().where(col(Version.content_id) == col(Content.id)),
            )
            ids = list(s.exec(unused))
            if not dry_run:
                for start in range(0, len(ids), IN_BATCH):
                    batch = ids[start : start + IN_BATCH]
                    s.exec(delete(Extent).where(col(Extent.content_id).in_(batch)))
                    s.exec(delete(Content).where(col(Content.id).in_(batch)))
            return len(ids)

        return self._db.run(work)

    def collectable(self, cutoff: float, *, live_only: bool = False) -> list[ChunkRecord]:
        """Chunks no extent names, untouched since `cutoff` (GC candidates). The parts
        of resumable uploads (`UploadExtent`) and the blocks staged through the delta
        API (`StagedBlock`) count as extents: an upload in progress keeps its chunks
        until it is committed, cancelled or expired, a staged block until it is
        committed or its row expires.

        With `live_only`, extents of contents no node or version uses do not count: the
        answer `purge_unreferenced_contents` would lead to (for dry runs). Uploads a run
        would expire still count (a dry run expires nothing).
        """
        named = exists().where(col(Extent.chunk_hash) == col(Chunk.hash))
        if live_only:
            named = named.where(
                exists().where(col(Node.content_id) == col(Extent.content_id))
                | exists().where(col(Version.content_id) == col(Extent.content_id))
            )
        in_upload = exists().where(col(UploadExtent.chunk_hash) == col(Chunk.hash))
        staged = exists().where(col(StagedBlock.chunk_hash) == col(Chunk.hash))
        with self._db.session() as s:
            rows = s.exec(
                select(Chunk, _HAS_BODY).where(
                    col(Chunk.state) != CHUNK_DELETING,
                    col(Chunk.touched_at) < cutoff,
                    ~named,
                    ~in_upload,
                    ~staged,
                )
            )
            return [_chunk_record(c, body) for c, body in rows]

    def condemn(self, chunk_hash: str, cutoff: float) -> bool:
        """Atomically move a still-collectable chunk to `deleting`; True if it moved.
        A chunk a file's or an unfinished upload's extent names, or a staged block
        row, never moves."""

        def work(s: Session) -> bool:
            result = s.exec(
                update(Chunk)
                .where(
                    col(Chunk.hash) == chunk_hash,
                    col(Chunk.state) != CHUNK_DELETING,
                    col(Chunk.touched_at) < cutoff,
                    ~exists().where(col(Extent.chunk_hash) == chunk_hash),
                    ~exists().where(col(UploadExtent.chunk_hash) == chunk_hash),
                    ~exists().where(col(StagedBlock.chunk_hash) == chunk_hash),
                )
                .values(state=CHUNK_DELETING, touched_at=time.time())
            )
            return bool(result.rowcount)

        return self._db.run(work)

    def condemn_orphan(self, chunk_hash: str, size: int) -> bool:
        """Insert a `deleting` row for an object the catalog does not know; True if done."""

        def work(s: Session) -> bool:
            now = time.time()
            stmt = self._db.insert(Chunk).values(
                hash=chunk_hash, size=size, state=CHUNK_DELETING, touched_at=now, created_at=now
            )
            return bool(s.exec(stmt.on_conflict_do_nothing(index_elements=["hash"])).rowcount)

        return self._db.run(work)

    def forget(self, chunk_hash: str) -> None:
        """Remove a `deleting` row once its object is gone."""

        def work(s: Session) -> None:
            s.exec(
                delete(Chunk).where(
                    col(Chunk.hash) == chunk_hash, col(Chunk.state) == CHUNK_DELETING
                )
            )

        self._db.run(work)

    def deleting(self) -> list[ChunkRecord]:
        """Rows left in `deleting` (a GC run that stopped half-way)."""
        with self._db.session() as s:
            rows = s.exec(select(Chunk, _HAS_BODY).where(col(Chunk.state) == CHUNK_DELETING))
            return [_chunk_record(c, body) for c, body in rows]

    def referenced(self) -> Iterator[tuple[str, int]]:
        """Every chunk some extent names (a file's or an unfinished upload's), with its
        size (for fsck)."""
        both = select(col(Extent.chunk_hash), col(Extent.size)).union(
            select(col(UploadExtent.chunk_hash), col(UploadExtent.size))
        )
        with self._db.session() as s:
            # a UNION of plain columns: the session's connection runs it (`Session.exec`
            # takes single SELECTs)
            rows = s.connection().execute(both).all()
        yield from ((h, n) for h, n in rows)

    def usage(self) -> tuple[int, int, int]:
        """(logical bytes: every user's files counted as often as they appear, stored
        bytes at rest (compressed or sealed) and count of stored chunks): two
        aggregate queries, cheap enough to run at every metrics scrape."""
        with self._db.session() as s:
            logical = s.exec(select(func.coalesce(func.sum(col(User.used_bytes)), 0))).one()
            at_rest = func.coalesce(col(Chunk.stored_size), col(Chunk.size))
            stored = select(func.coalesce(func.sum(at_rest), 0), func.count())
            size, count = s.exec(stored.where(col(Chunk.state) == CHUNK_STORED)).one()
        return int(logical), int(size), int(count)

    def files_using(self, hashes: list[str]) -> dict[str, list[FileUse]]:
        """For each of `hashes` that anything names: every file, old version and trash
        item using it (`providers.catalog.chunk_users`), sorted; for fsck to say what a
        bad chunk damages."""
        with self._db.session() as s:
            return chunk_users(s, hashes)


def _chunk_record(c: Chunk, in_catalog: bool) -> ChunkRecord:
    return ChunkRecord(c.hash, c.size, c.state, c.touched_at, in_catalog=bool(in_catalog))
