"""Push and pull over the delta protocol (docs/api.md, "Sending only what changed"):
the client's steps for one file or a tree, on a `Remote` (all HTTP,
`davserver.cli.transfer_http`) and the local cutting (`davserver.cli.blocks`).

Push: cut the file as it is read, `check` the blocks in batches (growing to
`max_blocks_per_check`), send the missing ones from a bounded pool of workers (each
re-reads its block from the file by offset, so memory is `workers x max_size`: the
client keeps design invariant 6 as the server does), then commit the list. Run again
after an interruption, it sends only what did not arrive: the server's `check`
counts the blocks the caller sent within `upload_expiry` as present. Pull: list the
remote blocks, cut the local file (if any) to find those it already has, copy them
from it and fetch the others from their signed URLs (no login; each checked against
its SHA-256), into a temporary file renamed over the target once complete. Every
block moved or skipped is reported to `progress(size, moved)`.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from davserver.cli.blocks import (
    AtomicFile,
    Block,
    batches,
    chunker_of,
    cut,
    index,
    local_blocks,
    plan_pull,
    read_at,
    sha256_of,
)
from davserver.cli.output import CommandError
from davserver.cli.transfer_http import Remote, TransferError, Upload

Progress = Callable[[int, bool], None]
# A failure of one file of a tree: reported, and the tree carries on (exit status 1).
FileFailed = Callable[[str, Exception], None]
FILE_ERRORS = (TransferError, CommandError, OSError)
FIRST_BATCH = 16  # blocks in the first check of a file; later checks grow to the maximum


@dataclass
class Tally:
    """What a push or pull did: files, their bytes and blocks, and the blocks (and
    their bytes) that crossed the network."""

    files: int = 0
    size: int = 0
    blocks: int = 0
    moved: int = 0
    moved_bytes: int = 0

    def add(self, other: Tally) -> None:
        self.files += other.files
        self.size += other.size
        self.blocks += other.blocks
        self.moved += other.moved
        self.moved_bytes += other.moved_bytes


@dataclass(frozen=True)
class Entry:
    """An item of a remote tree, from the change feed's bootstrap listing."""

    path: str
    kind: str
    size: int | None


def _nothing(size: int, moved: bool) -> None:
    """The default progress: none."""


class Transfers:
    """Push and pull against one server, with the chunking it announced."""

    def __init__(self, remote: Remote, *, workers: int = 4, progress: Progress = _nothing):
        self.remote, self.workers, self.progress = remote, workers, progress
        params = remote.get_json("blocks/params")
        if not isinstance(params, dict):
            raise CommandError("the server's /api/v1/blocks/params is not an object")
        self.chunker = chunker_of(params)
        batch = params.get("max_blocks_per_check")
        if not isinstance(batch, int) or batch < 1:
            raise CommandError(f"the server's max_blocks_per_check is not a count: {batch!r}")
        self.batch = batch

    # -- push ----------------------------------------------------------------------

    def push_file(self, local: Path, path: str) -> Tally:
        """Make `path` on the server the content (and mtime) of the file `local`;
        missing folders on the way are made (`parents`: the commit comes after the
        bytes, so refusing then would waste the whole transfer)."""
        mtime = local.stat().st_mtime
        tally, hashes, first = Tally(files=1), list[str](), dict[str, Block]()
        fd = os.open(local, os.O_RDONLY)
        try:
            with _Pool(self.workers) as pool:
                for batch in batches(cut(local, self.chunker), self.batch, FIRST_BATCH):
                    hashes.extend(block.sha256 for block in batch)
                    tally.blocks += len(batch)
                    tally.size += sum(block.size for block in batch)
                    new = [first.setdefault(b.sha256, b) for b in batch if b.sha256 not in first]
                    self._skip_repeats(batch, new)
                    self._send_missing(pool, fd, new)
                pool.wait()
                body = {"path": path, "blocks": hashes, "size": tally.size, "mtime": mtime}
                if pool.count or not self._same_there(body):
                    self._commit({**body, "parents": True}, pool, fd, first)
                tally.moved, tally.moved_bytes = pool.count, pool.bytes
        finally:
            os.close(fd)
        return tally

    def _skip_repeats(self, batch: Sequence[Block], new: Sequence[Block]) -> None:
        """Report the blocks of `batch` met before in the file: they are sent once."""
        fresh = {id(block) for block in new}
        for block in batch:
            if id(block) not in fresh:
                self.progress(block.size, False)

    def _send_missing(self, pool: _Pool, fd: int, blocks: Sequence[Block]) -> None:
        """`check` `blocks` and queue the missing ones on `pool`."""
        uploads = self._check(blocks)
        for block in blocks:
            upload = uploads.get(block.sha256)
            if upload is None:
                self.progress(block.size, False)
            else:
                pool.submit(self._send, fd, block, upload)

    def _check(self, blocks: Sequence[Block]) -> dict[str, Upload]:
        """How to send each of `blocks` the server lacks, by hash."""
        if not blocks:
            return {}
        listed = [{"sha256": block.sha256, "size": block.size} for block in blocks]
        answer = self.remote.post_json("blocks/check", {"blocks": listed})
        try:
            return {str(h): Upload.of(answer["upload"][h]) for h in answer["missing"]}
        except (KeyError, TypeError) as e:
            raise TransferError(f"the server's check answer is malformed: {e}") from e

    def _send(self, fd: int, block: Block, upload: Upload) -> int:
        """Send one block read back from the file; its size. A direct URL that has
        expired meanwhile (403) is asked for again, once."""
        data = read_at(fd, block.offset, block.size)
        if sha256_of(data) != block.sha256:
            raise CommandError("the local file changed while it was sent; run again")
        try:
            self.remote.send_block(upload, data)
        except TransferError as e:
            if upload.auth or e.status != 403:
                raise
            again = self._check([block]).get(block.sha256)
            if again is None:  # it arrived after all
                self.progress(block.size, False)
                return 0
            self.remote.send_block(again, data)
        self.progress(block.size, True)
        return block.size

    def _same_there(self, body: dict[str, Any]) -> bool:
        """Whether the file at `body["path"]` already has these blocks and mtime (a
        commit would only add a version of the same bytes). Asked only when no block
        had to be sent: a changed file always lacks one."""
        try:
            there = self.remote.get_json("files/blocks", path=body["path"])
        except TransferError as e:
            if e.status in (400, 404, 409):  # nothing there, or a folder: commit says
                return False
            raise
        try:
            blocks = [str(block["sha256"]) for block in there["blocks"]]
            same_time = abs(float(there["mtime"]) - body["mtime"]) < 0.001
            return bool(blocks == body["blocks"] and there["size"] == body["size"] and same_time)
        except (KeyError, TypeError, ValueError):
            return False

    def _commit(self, body: dict[str, Any], pool: _Pool, fd: int, first: dict[str, Block]) -> None:
        """`files/commit`; when the server names blocks it lacks (e.g. their staging
        expired), check and send those once and commit again."""
        try:
            self.remote.post_json("files/commit", body)
            return
        except TransferError as e:
            missing = e.body.get("missing") if isinstance(e.body, dict) else None
            if e.status != 400 or not isinstance(missing, list):
                raise
        self._send_missing(pool, fd, [first[h] for h in missing if h in first])
        pool.wait()
        self.remote.post_json("files/commit", body)

    def push_tree(self, root: Path, path: str, failed: FileFailed) -> Tally:
        """Push every regular file below `root` to the same place below `path`
        (folders are made as needed)."""
        tally = Tally()
        for local in files_below(root):
            relative = local.relative_to(root).as_posix()
            try:
                tally.add(self.push_file(local, _join(path, relative)))
            except FILE_ERRORS as e:
                _unless_fatal(e)
                failed(relative, e)
        return tally

    # -- pull ----------------------------------------------------------------------

    def pull_file(self, path: str, local: Path) -> Tally:
        """Make the file `local` the content (and mtime) of `path` on the server."""
        urls = _BlockUrls(self.remote, path)
        size, mtime = int(urls.answer["size"]), urls.answer.get("mtime")
        mine = local_blocks(local, self.chunker)
        tally = Tally(1, size, len(urls.blocks))
        if local.is_file() and mine == urls.blocks:  # the same bytes already: keep them
            if mtime is not None:
                os.utime(local, (float(mtime), float(mtime)))
            self.progress(size, False)
            return tally
        plan = plan_pull(urls.blocks, index(mine))
        old = os.open(local, os.O_RDONLY) if plan.reuse else None
        try:
            with AtomicFile(local, size) as out, _Pool(self.workers) as pool:
                for block, offset in plan.reuse:
                    pool.submit(self._reuse, out, old, block, offset, urls)
                for copies in plan.fetch.values():
                    pool.submit(self._fetch, out, copies, urls)
                pool.wait()
                out.commit(float(mtime) if mtime is not None else None)
                tally.moved, tally.moved_bytes = pool.count, pool.bytes
        finally:
            if old is not None:
                os.close(old)
        return tally

    def _reuse(
        self, out: AtomicFile, old: int | None, block: Block, offset: int, urls: _BlockUrls
    ) -> int:
        """Copy one block from the old local file, or fetch it if that changed since."""
        assert old is not None  # a plan with reuse opened the old file
        data = read_at(old, offset, block.size)
        if sha256_of(data) != block.sha256:
            return self._fetch(out, [block], urls)
        out.write_at(block.offset, data)
        self.progress(block.size, False)
        return 0

    def _fetch(self, out: AtomicFile, copies: Sequence[Block], urls: _BlockUrls) -> int:
        """Fetch a block once, check it, write it wherever the file has it; its size."""
        block = copies[0]
        data = urls.fetch(block)
        for copy in copies:
            out.write_at(copy.offset, data)
            self.progress(copy.size, copy is block)
        return block.size

    def listing(self, path: str) -> list[Entry]:
        """Everything at and below `path` on the server (the change feed's bootstrap,
        parents before their members)."""
        entries: list[Entry] = []
        cursor: dict[str, str] = {}
        while True:
            page = self.remote.get_json("changes", path=path, limit="1000", **cursor)
            entries.extend(_entries(page.get("changes", [])))
            if not page.get("has_more"):
                return entries
            cursor = {"cursor": str(page["cursor"])}

    def pull_tree(
        self, path: str, root: Path, entries: Iterable[Entry], failed: FileFailed
    ) -> Tally:
        """Pull the `entries` below `path` into the same places below `root`."""
        tally = Tally()
        for entry in entries:
            relative = _relative(entry.path, path)
            target = root.joinpath(*relative.parts)
            try:
                if entry.kind == "folder":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                tally.add(self.pull_file(entry.path, target))
            except FILE_ERRORS as e:
                _unless_fatal(e)
                failed(relative.as_posix(), e)
        return tally


class _BlockUrls:
    """`GET /api/v1/files/blocks` of one file; its signed URLs are listed again when
    one has expired (a long pull can outlast `url_ttl`)."""

    def __init__(self, remote: Remote, path: str) -> None:
        self._remote, self._path = remote, path
        self._lock = threading.Lock()
        self.answer: dict[str, Any] = {}
        self.blocks: list[Block] = []
        self._urls: dict[str, str] = {}
        self._listed_at = 0.0
        self._list()

    def _list(self) -> None:
        answer = self._remote.get_json("files/blocks", path=self._path)
        try:
            rows = [
                (str(b["sha256"]), int(b["offset"]), int(b["size"]), b["url"])
                for b in answer["blocks"]
            ]
            int(answer["size"])
        except (KeyError, TypeError, ValueError) as e:
            raise TransferError(f"the server's block list is malformed: {e}") from e
        self.answer, self._listed_at = answer, time.monotonic()
        self.blocks = [Block(sha, offset, size) for sha, offset, size, _ in rows]
        self._urls = {sha: url for sha, _, _, url in rows}

    def fetch(self, block: Block) -> bytes:
        """The bytes of `block`, checked against its hash (one more try on a
        mismatch or an expired URL)."""
        for attempt in (1, 2):
            listed_at = self._listed_at
            try:
                data = self._remote.fetch_block(self._urls[block.sha256])
            except TransferError as e:
                if attempt == 2 or e.status not in (403, 404):
                    raise
                self._relist(listed_at)
                continue
            if len(data) == block.size and sha256_of(data) == block.sha256:
                return data
        raise TransferError(f"block {block.sha256[:12]}... arrived with other bytes twice")

    def _relist(self, seen: float) -> None:
        """List again, unless another worker did since `seen`."""
        with self._lock:
            if self._listed_at == seen:
                self._list()


class _Pool:
    """A bounded thread pool whose tasks return a count of bytes moved (0: none).
    `wait()` raises the first failure; the first failure cancels what has not started
    yet, and so does leaving the block on an error (a Ctrl-C included), which then
    waits for what has."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="transfer")
        self._futures: list[Future[int]] = []
        self._failed: Future[int] | None = None
        self.count = self.bytes = 0

    def submit(self, task: Callable[..., int], *args: Any) -> None:
        """Queue `task(*args)`; raises the failure of an earlier task instead, so no
        more is queued after one failed."""
        if self._failed is not None:
            self._failed.result()
        future = self._executor.submit(task, *args)
        future.add_done_callback(self._note)
        self._futures.append(future)

    def _note(self, future: Future[int]) -> None:
        """On the first failure, cancel every task not started yet: the caller learns of
        it only at its next `submit` or `wait`, and meanwhile (cutting and checking
        the next batch) the workers would go on through the queue."""
        if self._failed is None and _failed(future):
            self._failed = future
            for queued in list(self._futures):  # a copy: the caller may be appending
                queued.cancel()

    def wait(self) -> None:
        futures = self._futures  # left in place while waiting, for `_note` to cancel
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        # the first failure, before waiting for the rest (its callback may still run)
        failed = self._failed or next(filter(_failed, futures), None)
        if failed is not None:
            failed.result()
        self._futures = []
        for future in futures:
            moved = future.result()
            if moved:
                self.count += 1
                self.bytes += moved

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=value is not None)


def _failed(future: Future[int]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is not None


def _unless_fatal(error: Exception) -> None:
    """Raise `error` again when no other file could fare better: no server (after
    retries) or a login it refuses."""
    if isinstance(error, TransferError) and error.status in (None, 401):
        raise error


def files_below(root: Path) -> Iterator[Path]:
    """The regular files below `root`, in path order (symbolic links are not followed)."""
    for folder, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _join(path: str, relative: str) -> str:
    return path.rstrip("/") + "/" + relative


def _relative(path: str, root: str) -> PurePosixPath:
    """`path` below `root`, refused if it would leave the local folder."""
    try:
        relative = PurePosixPath(path).relative_to(PurePosixPath(root))
    except ValueError:
        relative = PurePosixPath()
    if not relative.parts or any(part in (".", "..") for part in relative.parts):
        raise TransferError(f"the server listed an unusable path: {path!r}")
    return relative


def _entries(changes: Iterable[Any]) -> Iterator[Entry]:
    for change in changes:
        if isinstance(change, dict) and change.get("op") == "created":
            size = change.get("size")
            yield Entry(
                str(change["path"]), str(change["kind"]), size if size is None else int(size)
            )
