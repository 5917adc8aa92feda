"""File content in and out: the streaming write pipeline and the seekable reader.

Write path (DESIGN "Write path"): bytes go into the chunker as they arrive; final
chunks are copied into a batch buffer of `batch_bytes` (or the largest chunk's size),
each starting on a page boundary so a local blob store can write it to the disk
directly; a batch is what fills a buffer, and buffers come from a pool and go back to
it when their batch is stored. Each batch is handed to a bounded pool that hashes its
chunks, claims them in the catalog in one transaction and uploads those that are new.
A transaction per chunk cost more than hashing the chunk, and a hand-off per chunk
kept the threads trading the GIL. The request thread never waits for the pool unless
`max_in_flight` batches are already pending, so memory per upload is bounded by
`(max_in_flight + 1) x max(batch_bytes, max chunk size)` plus the chunker's window,
whatever the file size. The content's digest (its strong ETag) is derived from the
chunk hashes (`content_digest`). The whole-content checksums clients verify (SHA-1, MD5,
SHA-256: `providers.checksums`) need the bytes in order: each batch is also fed to
`ChecksumLanes`, which hash it on the pool, one lane per algorithm, in order; a
batch's buffer (and its slot) goes back once it is stored and every lane took it, so
the memory bound holds. The last batch stored by the request thread is hashed there
too, once the lanes are idle. Hashing in the request thread as the chunks were cut
made it the bottleneck (see `ChecksumLanes`).
`finish()` waits for the pool and returns the `NewContent` to commit; nothing is
visible until the caller commits it (invariant 2). `abort()` drops everything; the
chunks already stored become orphans for GC.

Read path: `ChunkReader` (`providers.chunk_reader`) is a seekable raw stream over a
content's extents.

Beneath both, the `ChunkVault` (`providers.codec`) decides what a chunk becomes at
rest (raw, zstd, sealed) and verifies every chunk it reads (invariant 24); the
chunk's `Locator` is recorded in the catalog right after its object is put, before
`store_chunks` returns (invariant 25), and a reader looks its chunks' locators up
a page of chunks at a time as it reads on.

A corrupt chunk (`CorruptChunk` from the vault) is reported once, by the thread that needed it (the
request's, so the log line carries its request id): one ERROR record naming the chunk
and the content, then the observers (`on_corrupt`: the metrics, which live outside
`providers`); then `CorruptChunk` goes on to the caller, which fails the request.
A chunk only fetched ahead and never needed is not reported.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple, ParamSpec, TypeVar

from providers.blobstore.base import BlobStore
from providers.buffers import PAGE, BufferPool
from providers.catalog import (
    CLAIM_BUSY,
    CLAIM_INLINE,
    CLAIM_UPLOAD,
    Catalog,
    ContentView,
    ExtentRecord,
    Locator,
    NewContent,
    NodeRecord,
)
from providers.checksums import ChecksumLanes, Hasher
from providers.chunk_reader import LOCATOR_PAGE, ChunkReader
from providers.chunker import BlockReader, Chunker, Reader
from providers.codec import RAW, ChunkVault
from providers.errors import (
    BlobNotFound,
    CorruptChunk,
    QuotaExceeded,
    StorageError,
    Unavailable,
)

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)

BUSY_WAIT_SECONDS = 30.0
MAX_BATCH = 64  # chunks claimed in one transaction, whatever their sizes


class StoredChunks(NamedTuple):
    """What `FileStore.store_chunks` did with a batch: the chunks' hashes in order,
    and whether each was written into the catalog by its claim (no object of the
    batch for the blob store's `sync` to make durable)."""

    hashes: list[str]
    in_catalog: bool


class FileStore:
    """Creates writers and readers over one catalog, blob store and chunker.

    `workers` bounds the process-wide parallelism toward the blob store; `vault` is
    the codec layer over `blobs` (default: every chunk raw, under `key_prefix`);
    `inline_max`: chunks of at most that many bytes are kept in the catalog, not as
    objects (design invariant 27; 0: none).
    """

    def __init__(
        self,
        catalog: Catalog,
        blobs: BlobStore,
        chunker: Chunker,
        *,
        key_prefix: str = "",
        workers: int = 8,
        max_in_flight: int = 3,
        batch_bytes: int = 4 * 1024 * 1024,
        read_ahead: int = 2,
        vault: ChunkVault | None = None,
        inline_max: int = 0,
    ) -> None:
        self.catalog = catalog
        self.inline_max = inline_max
        self.blobs = blobs
        self.vault = vault or ChunkVault(blobs, prefix=key_prefix)
        self.chunker = chunker
        self.max_in_flight = max_in_flight
        self.read_ahead = read_ahead
        # a batch fills one buffer, which must hold the largest chunk on its own
        self.buffers = BufferPool(max(batch_bytes, chunker.max_size), keep=max_in_flight + 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blob")
        self._corrupt_observers: list[Callable[[CorruptChunk], None]] = []

    @property
    def key_prefix(self) -> str:
        """The blob keys' prefix (the vault's)."""
        return self.vault.prefix

    def writer(
        self, limit: int | None = None, *, extra: Iterable[str] = (), resume: Hasher | None = None
    ) -> FileWriter:
        """A new upload; `limit` (bytes, None: none) makes it refuse a longer body;
        `extra`: checksum algorithms to compute besides the stored ones (to verify
        what a client announced, `FileWriter.hexdigests`); `resume`: the hasher of the
        bytes before these (`Hasher`), so the content's checksums cover both."""
        return FileWriter(self, limit, Hasher(extra, resume=resume))

    def reader(
        self,
        content_id: int | None,
        size: int,
        *,
        label: str = "",
        view: ContentView | None = None,
    ) -> ChunkReader:
        """A reader of the content; `label` says what it is in a log line (a file's id
        and name, say; default: the content's id); `view`: the content's extents and
        locators, already looked up (`content_view`)."""
        label = label or f"content {content_id}"
        if view is not None:
            return ChunkReader(self, view.extents, size, label, view.locators)
        if not content_id:
            return ChunkReader(self, [], size, label)
        return ChunkReader(self, self.catalog.contents.extents(content_id), size, label)

    def content_view(self, content_id: int | None, size: int) -> ContentView | None:
        """The content's checksums, extents and locators in one query, if it has at
        most one locator page of the smallest chunks (a larger one's reader looks its
        locators up page by page); else None."""
        if not content_id or size > LOCATOR_PAGE * self.chunker.min_size:
            return None
        return self.catalog.locators.content_view(content_id)

    def extents_reader(self, extents: list[ExtentRecord]) -> ChunkReader:
        """A reader over `extents` in order (e.g. a resumable upload's parts)."""
        return ChunkReader(self, extents, sum(e.size for e in extents))

    def submit(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Run `fn` in the process's upload pool."""
        return self._pool.submit(fn, *args, **kwargs)

    def store_chunks(self, chunks: list[memoryview]) -> StoredChunks:
        """Hash a batch of chunks, claim them in one transaction and store the new
        ones: those of at most `inline_max` bytes in the catalog by the claim itself,
        the others as objects (runs in the pool). Chunks GC is deleting are claimed
        again until GC is done with them (`Unavailable` after `BUSY_WAIT_SECONDS`)."""
        hashes = [hashlib.sha256(chunk).hexdigest() for chunk in chunks]
        data = dict(zip(hashes, chunks, strict=True))
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        in_catalog = True
        while True:
            inline = {
                h: self.vault.inline(h, c) for h, c in data.items() if len(c) <= self.inline_max
            }
            claims = self.catalog.contents.claim_many({h: len(c) for h, c in data.items()}, inline)
            in_catalog &= all(claim in (CLAIM_INLINE, CLAIM_BUSY) for claim in claims.values())
            stored: dict[str, Locator] = {}
            for chunk_hash, claim in claims.items():
                if claim == CLAIM_UPLOAD:
                    stored[chunk_hash] = self.vault.put(chunk_hash, data[chunk_hash])
            # claims create rows as raw: only other forms need recording (invariant 25)
            self.catalog.locators.record({h: a for h, a in stored.items() if a.codec != RAW})
            data = {h: data[h] for h, claim in claims.items() if claim == CLAIM_BUSY}
            if not data:
                return StoredChunks(hashes, in_catalog)
            if time.monotonic() > deadline:
                raise Unavailable("chunk is being garbage-collected; retry the upload")
            time.sleep(0.05)

    def load_chunk(
        self, chunk_hash: str, size: int | None = None, locator: Locator | None = None
    ) -> bytes:
        """The chunk's plaintext, verified (`ChunkVault.get`); its size and locator are
        looked up unless given (`BlobNotFound` if the catalog has no such chunk).
        `CorruptChunk` if its object is not what was written."""
        if size is None or locator is None:
            found = self.catalog.locators.describe(chunk_hash)
            if found is None:
                raise BlobNotFound(f"no chunk {chunk_hash}")
            size = found[0] if size is None else size
            locator = found[1] if locator is None else locator
        return self.vault.get(chunk_hash, size, locator)

    def on_corrupt(self, observer: Callable[[CorruptChunk], None]) -> None:
        """Call `observer(error)` for each corrupt chunk a read reports (see the module
        docstring), on the reading thread: it must be cheap and must not raise."""
        self._corrupt_observers.append(observer)

    def read_chunk(self, chunk_hash: str, size: int | None = None) -> bytes:
        """`load_chunk`, a corrupt chunk reported (`report_corrupt`) before it raises."""
        try:
            return self.load_chunk(chunk_hash, size)
        except CorruptChunk as e:
            self.report_corrupt(e)
            raise

    def report_corrupt(self, error: CorruptChunk, label: str = "") -> None:
        """Log `error` (the chunk, and what was being read when known: `label`) and
        tell the observers; the caller raises it. Once per read that needed the chunk."""
        log.error("%s%s: not served", error, f" (reading {label})" if label else "")
        for observer in self._corrupt_observers:
            observer(error)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def file_label(node: NodeRecord) -> str:
    """A file as a reader's `label` names it in the log: its node id and name."""
    return f"file {node.id} {node.name!r}"


def content_digest(chunk_hashes: Iterable[str]) -> str:
    """The digest of a content: SHA-256 of its chunks' binary SHA-256s, in order.

    Like Dropbox's content hash it identifies the bytes without hashing them a second
    time: equal bytes cut by the same chunker give equal digests, and any change to the
    bytes changes a chunk hash. An empty file's digest is SHA-256 of nothing.
    """
    digest = hashlib.sha256()
    for chunk_hash in chunk_hashes:
        digest.update(bytes.fromhex(chunk_hash))
    return digest.hexdigest()


class FileWriter:
    """One upload in progress; see the module docstring. Not thread-safe.

    With a `limit`, `write_from` raises `QuotaExceeded` on the first read that takes
    the bytes received past it, before those bytes reach the chunker: a doomed upload
    stops reading and storing at once (the chunks already stored are orphans
    for GC; `abort()` still has to be called).
    """

    def __init__(
        self, store: FileStore, limit: int | None = None, hasher: Hasher | None = None
    ) -> None:
        self._store = store
        self._limit = limit
        self._hasher = hasher or Hasher()
        self._buffer: memoryview | None = None  # holds the batch's chunks, page-aligned
        self._used = 0
        self._batch: list[memoryview] = []  # chunks cut but not yet handed to the pool
        # offset, chunk sizes, the batch's future and what returns its buffer
        self._pending: list[tuple[int, list[int], Future[StoredChunks], _Countdown]] = []
        self._extents: list[ExtentRecord] = []
        self._objects = False  # some chunk went to the blob store or was deduplicated
        self._slots = threading.BoundedSemaphore(store.max_in_flight)
        self._lanes = ChecksumLanes(self._hasher, store.submit)
        self._held = 0  # batches whose buffer is not back yet
        self._returned = threading.Condition()
        self.size = 0

    def writelines(self, blocks: Iterable[bytes]) -> None:
        """Consume the whole body given as blocks (call once, or `write_from`)."""
        self.write_from(BlockReader(blocks))

    def write_all(self, blocks: Iterable[bytes]) -> NewContent:
        """`writelines(blocks)` then `finish()`; on any failure `abort()` first (what
        was not stored yet is dropped) and the error goes on."""
        try:
            self.writelines(blocks)
            return self.finish()
        except BaseException:
            self.abort()
            raise

    def write_from(self, reader: Reader) -> None:
        """Consume the whole body read from `reader` (call once); chunks are stored as
        they are cut. `QuotaExceeded` as soon as the body passes the writer's limit."""
        source = reader if self._limit is None else _LimitedReader(reader, self._limit)
        for chunk in self._store.chunker.split_reader(source):
            self._add(chunk)

    def close(self) -> None:
        """File-object protocol (WsgiDAV calls it); the real end is `finish()`."""

    def finish(self) -> NewContent:
        """Wait for every chunk to be stored and durable; return the content to commit."""
        self._submit_batch(here=not self._pending)
        self._collect(wait_all=True)
        self._wait_returned()  # every lane took every batch
        if self._objects:
            # also covers chunks deduplicated against another upload that has not synced
            # yet; chunks kept in the catalog are as durable as the commit (invariant 27)
            self._store.blobs.sync()
        digest = content_digest(e.chunk_hash for e in self._extents)
        checksums = self._hasher.checksums()
        return NewContent(self.size, digest, list(self._extents), checksums)

    @property
    def hasher(self) -> Hasher:
        """The writer's hasher, complete once `finish` returned (to resume from)."""
        return self._hasher

    def hexdigests(self) -> dict[str, str]:
        """Every checksum computed over the body (the stored ones and the `extra` ones
        asked for), hashlib name -> hex; complete once `finish` returned."""
        return self._hasher.hexdigests()

    def abort(self) -> None:
        """Give up: cancel what has not started and wait for what has."""
        self._lanes.stop()
        if self._buffer is not None:
            self._store.buffers.release(self._buffer)
        self._batch, self._buffer, self._used = [], None, 0
        for _offset, _sizes, future, countdown in self._pending:
            if future.cancel():  # never started: its part of the buffer is ours to end
                countdown.part_done()
        self._pending.clear()
        self._wait_returned()  # every buffer back in the pool

    def _add(self, chunk: memoryview) -> None:
        """Copy `chunk` into the batch's buffer at a page boundary (so the blob store
        can write it without another copy); a full buffer is a batch for the pool."""
        if self._buffer is not None and self._used + len(chunk) > len(self._buffer):
            self._submit_batch()
        if self._buffer is None:
            self._buffer = self._store.buffers.acquire()
        end = self._used + len(chunk)
        self._buffer[self._used : end] = chunk
        self._batch.append(self._buffer[self._used : end])
        self._used = -(-end // PAGE) * PAGE
        if len(self._batch) >= MAX_BATCH:
            self._submit_batch()

    def _submit_batch(self, *, here: bool = False) -> None:
        """Hand the batch being filled to the pool; `here`: store it in this thread
        (the last batch, when no other is pending: nothing to overlap with, and the
        pool's two thread hand-offs were a tenth of a small PUT)."""
        if self._buffer is None:
            return
        self._slots.acquire()
        self._collect(wait_all=False)  # an error aborts, which hands the buffer back
        batch, buffer = self._batch, self._buffer
        self._batch, self._buffer, self._used = [], None, 0
        # the buffer goes back when the batch is stored and (in the pool) hashed
        countdown = _Countdown(1 if here else 2, lambda: self._release(buffer))
        with self._returned:
            self._held += 1

        def store() -> StoredChunks:
            # The buffer goes back before the future completes (when the lanes are
            # done with it), so a `finish` or `abort` finds it back in the pool.
            try:
                return self._store.store_chunks(batch)
            finally:
                countdown.part_done()

        if here:
            self._wait_returned(but=1)  # the lanes took every batch before this one
            for chunk in batch:
                self._hasher.update(chunk)
            future = _run_here(store)
        else:
            try:
                future = self._store.submit(store)
            except BaseException:  # the pool is shut down: nothing will use the buffer
                countdown.part_done()
                countdown.part_done()
                raise
            self._lanes.feed(batch, countdown.part_done)
        sizes = [len(chunk) for chunk in batch]
        self._pending.append((self.size, sizes, future, countdown))
        self.size += sum(sizes)

    def _release(self, buffer: memoryview) -> None:
        """A batch is done with `buffer`: back to the pool, and its slot is free."""
        self._store.buffers.release(buffer)
        self._slots.release()
        with self._returned:
            self._held -= 1
            self._returned.notify_all()

    def _wait_returned(self, but: int = 0) -> None:
        """Wait until at most `but` batches hold their buffer."""
        with self._returned:
            while self._held > but:
                self._returned.wait()

    def _collect(self, *, wait_all: bool) -> None:
        """Move finished batches (in order) to the extent list; re-raise their errors."""
        while self._pending and (wait_all or self._pending[0][2].done()):
            offset, sizes, future, countdown = self._pending.pop(0)
            try:
                hashes, in_catalog = future.result()
            except BaseException as e:
                if future.cancelled():  # never ran (a pool shut down): its part ends here
                    countdown.part_done()
                self.abort()
                if isinstance(e, StorageError) or not isinstance(e, Exception):
                    raise
                raise Unavailable(f"storing a chunk failed: {e}") from e
            self._objects |= not in_catalog
            for size, chunk_hash in zip(sizes, hashes, strict=True):
                self._extents.append(ExtentRecord(offset, size, chunk_hash))
                offset += size


class _Countdown:
    """Runs `then` when the last of `parts` is done (from any thread)."""

    def __init__(self, parts: int, then: Callable[[], None]) -> None:
        self._left = parts
        self._then = then
        self._lock = threading.Lock()

    def part_done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._then()


def _run_here(work: Callable[[], StoredChunks]) -> Future[StoredChunks]:
    """`work()` run now, as a completed future (its result or its exception)."""
    future: Future[StoredChunks] = Future()
    try:
        future.set_result(work())
    except Exception as e:
        future.set_exception(e)
    return future


class _LimitedReader:
    """`reader`, refusing to go past `limit` bytes. Reads are cut to one byte past what
    is left, so a body over the limit is refused having read at most that byte (a
    block, from a block reader) more, not a chunker's buffer more."""

    def __init__(self, reader: Reader, limit: int) -> None:
        self._reader = reader
        self._limit = self._left = limit

    def readinto(self, buffer: memoryview) -> int:
        received = self._reader.readinto(buffer[: self._left + 1])
        self._left -= received
        if self._left < 0:
            raise QuotaExceeded(f"the body passes the {self._limit} bytes left in the quota")
        return received
