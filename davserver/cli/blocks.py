"""The local side of the delta protocol (docs/api.md): cut a file exactly as the
server does, decide what to send or fetch, and write a pulled file atomically.

Nothing here holds a whole file: a file is cut as a stream (`cut`), its blocks are
read back by offset when they are sent (`read_at`), and a pulled file is written
block by block at its offsets into a temporary file beside the target that replaces
it only once complete (`AtomicFile`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from davserver.cli.output import CommandError
from providers.chunker import FastCDCChunker

T = TypeVar("T")


@dataclass(frozen=True)
class Block:
    """One content-defined chunk of a file: its SHA-256 (hex), where it starts, its size."""

    sha256: str
    offset: int
    size: int


def chunker_of(params: Mapping[str, Any]) -> FastCDCChunker:
    """The chunker `GET /api/v1/blocks/params` describes. `CommandError` unless this
    client cuts exactly so: blocks cut otherwise would never match the server's."""
    try:
        sizes = (int(params["min_size"]), int(params["avg_size"]), int(params["max_size"]))
        chunker = FastCDCChunker(*sizes)
    except (KeyError, TypeError, ValueError):
        chunker = None
    if (
        chunker is None
        or params.get("params") != chunker.params()
        or params.get("hash") != ("sha256")
    ):
        described = params.get("params") if isinstance(params, Mapping) else params
        raise CommandError(
            f"the server cuts files as {described!r}, which this client cannot do; "
            "use a davserver client of the server's version"
        )
    return chunker


def cut(path: Path, chunker: FastCDCChunker) -> Iterator[Block]:
    """The blocks of the file at `path`, in order, as it is read (streaming)."""
    offset = 0
    with open(path, "rb", buffering=0) as stream:
        for chunk in chunker.split_reader(stream):
            yield Block(hashlib.sha256(chunk).hexdigest(), offset, len(chunk))
            offset += len(chunk)


def batches(items: Iterable[T], size: int, first: int | None = None) -> Iterator[list[T]]:
    """`items` in lists of at most `size`, in order; with `first`, the lists start at
    that length and grow fourfold up to `size` (so the first blocks of a big file are
    checked and sent while the rest is still being cut)."""
    iterator = iter(items)
    length = min(first or size, size)
    while batch := list(itertools.islice(iterator, length)):
        yield batch
        length = min(length * 4, size)


def read_at(fd: int, offset: int, size: int) -> bytes:
    """`size` bytes of the open file `fd` from `offset`; `CommandError` if it is
    shorter now than when it was cut (it changed under us)."""
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise CommandError("the local file changed while it was sent; run again")
        data += more
    return data


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class PullPlan:
    """How to make a remote file from a local one: `reuse` pairs each remote block
    with the offset of a local block of the same bytes; `fetch` maps every other hash
    to the remote blocks it makes (a block repeated in the file is fetched once)."""

    reuse: list[tuple[Block, int]] = field(default_factory=list)
    fetch: dict[str, list[Block]] = field(default_factory=dict)


def plan_pull(remote: Sequence[Block], local: Mapping[str, Block]) -> PullPlan:
    """Which blocks of `remote` come from the local file (`local`: its blocks by
    hash, see `index`) and which must be fetched."""
    plan = PullPlan()
    for block in remote:
        have = local.get(block.sha256)
        if have is not None and have.size == block.size:
            plan.reuse.append((block, have.offset))
        else:
            plan.fetch.setdefault(block.sha256, []).append(block)
    return plan


def local_blocks(path: Path, chunker: FastCDCChunker) -> list[Block]:
    """The blocks of the local file at `path`; none when there is no such file."""
    return list(cut(path, chunker)) if path.is_file() else []


def index(blocks: Iterable[Block]) -> dict[str, Block]:
    """`blocks` by hash (the first of equal ones), for `plan_pull`."""
    found: dict[str, Block] = {}
    for block in blocks:
        found.setdefault(block.sha256, block)
    return found


class AtomicFile:
    """A new file for `target`, written at offsets into a temporary file beside it.
    `commit(mtime)` makes it durable (fsync), sets its mtime and renames it over
    `target` in one step; leaving the `with` block without a commit removes it, so
    `target` is either what it was or the whole new file, never a part (design
    invariant 2, on this side: a failed pull leaves the previous copy intact)."""

    def __init__(self, target: Path, size: int) -> None:
        self.target = target
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        self.fd, self._temp = fd, Path(name)
        self._closed = self._done = False
        try:
            os.ftruncate(fd, size)
        except OSError:
            self.__exit__(None, None, None)
            raise

    def write_at(self, offset: int, data: bytes) -> None:
        written = 0
        while written < len(data):
            written += os.pwrite(self.fd, memoryview(data)[written:], offset + written)

    def commit(self, mtime: float | None) -> None:
        os.fsync(self.fd)
        if mtime is not None:
            os.utime(self.fd, (mtime, mtime))
        os.close(self.fd)
        self._closed = True
        os.replace(self._temp, self.target)
        self._done = True
        _fsync_dir(self.target.parent)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._closed:
            os.close(self.fd)
        if not self._done:
            self._temp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a directory's fsync; not every system has it)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
