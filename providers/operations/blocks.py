"""The delta API's engine: a file as a list of blocks (the server's own chunks), of
which a client sends only those the server lacks for it (docs/api.md, "Sending only
what changed").

- `params`: how the server cuts files, so a client cuts the same blocks.
- `check`: which of a client's blocks are missing for the caller. Presence is per
  caller (design invariant 23, `providers.catalog.blocks`): a block is present only
  if the caller can read a file naming it or staged it themselves. With direct
  transfers, each missing block is claimed (an `uploading` chunk row, so GC cannot
  race the PUT: invariant 3), staged with a fresh token and given a presigned PUT.
- `put_block`: a block through the server: hashed (`ChecksumMismatch` when it is not
  the named block), stored through the file store, made durable, then staged.
- `commit`: the file as the concatenation of blocks present for the caller, through
  the PUT's own path (`ContentWrites.create_file`/`overwrite` then `commit`: rights,
  locks, quota, versions, change feed, event). Sizes come from what the server
  measured (extents, staged rows, the stored object), never from the client. No byte
  is read back: the whole-file checksums are those of an equal content the server
  already had, else unknown until `davserver checksums` or a full GET.
- `file_blocks`: a readable file's extents, to fetch only what a client lacks.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from providers.blobstore.direct import DirectTransfers
from providers.catalog import CLAIM_BUSY, ExtentRecord, NewContent, NodeRecord
from providers.catalog.records import RAW_LOCATOR, Locator
from providers.checksums import Checksums
from providers.chunker import FastCDCChunker
from providers.codec import RAW
from providers.errors import (
    BadBlocks,
    ChecksumMismatch,
    Conflict,
    NotFound,
    PreconditionFailed,
    QuotaExceeded,
)
from providers.filestore import content_digest
from providers.names import split_path
from providers.operations.actor import Actor
from providers.operations.core import Operations
from providers.operations.writes import PendingWrite

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_BLOCKS_PER_CHECK = 1000


@dataclass(frozen=True)
class DirectPut:
    """How to send one block straight to the object store: PUT `url` with `headers`."""

    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class CheckResult:
    """`missing` blocks in the order asked; `direct` those to PUT to the object store
    (the others go through the server)."""

    missing: list[str]
    direct: dict[str, DirectPut]


@dataclass(frozen=True)
class Committed:
    """The file a commit made current, its path as the caller named it, and the
    whole-file checksums known for it (None: not computed)."""

    node: NodeRecord
    path: str
    checksums: Checksums | None


def _an_object(locator: Locator | None) -> bool:
    """Whether a chunk so stored is a raw object a client may fetch from the store
    itself (a chunk without a row reads as raw)."""
    locator = locator or RAW_LOCATOR
    return locator.codec == RAW and locator.inline is None


class BlockTransfers:
    """See the module docstring. `direct`: the object store's direct transfers (None:
    every block goes through the server); `url_ttl`: seconds a block URL lives."""

    def __init__(
        self, ops: Operations, direct: DirectTransfers | None = None, url_ttl: int = 600
    ) -> None:
        self.ops = ops
        self.direct = direct
        self.url_ttl = url_ttl
        self.max_size = ops.files.chunker.max_size

    def params(self) -> dict[str, object]:
        """The chunking parameters and the protocol's limits (docs/api.md)."""
        chunker = self.ops.files.chunker
        name, _, _ = chunker.params().partition(":")
        avg = chunker.avg_size if isinstance(chunker, FastCDCChunker) else chunker.max_size
        return {
            "chunker": name,
            "min_size": chunker.min_size,
            "avg_size": avg,
            "max_size": chunker.max_size,
            "hash": "sha256",
            "params": chunker.params(),
            "max_blocks_per_check": MAX_BLOCKS_PER_CHECK,
            "direct": self.direct is not None,
            "url_ttl": self.url_ttl,
        }

    def check(self, actor: Actor, blocks: Sequence[tuple[str, int]]) -> CheckResult:
        """The blocks (sha256, size) missing for the actor, and how to send them.
        `BadBlocks` for a malformed list, `QuotaExceeded` if the actor's quota cannot
        take the missing bytes."""
        sizes = self._validated(blocks)
        present, staged = self._present(actor, list(sizes))
        missing = [h for h in sizes if h not in present]
        needed = sum(sizes[h] for h in missing)
        available = self.ops.space_for(actor, actor.user.id)
        if available is not None and needed > available:
            raise QuotaExceeded(f"{needed} missing bytes do not fit in the {available} left")
        puts = self._direct_puts(actor, {h: sizes[h] for h in missing}, staged)
        return CheckResult(missing, puts)

    def put_block(self, actor: Actor, sha256: str, data: bytes) -> int:
        """Store `data` as block `sha256` for the actor; return its size."""
        if not SHA256_HEX.fullmatch(sha256):
            raise BadBlocks("a block is named by its SHA-256: 64 lowercase hex digits")
        if not 0 < len(data) <= self.max_size:
            raise BadBlocks(f"a block has 1 to {self.max_size} bytes")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ChecksumMismatch("the bytes are not the named block")
        available = self.ops.space_for(actor, actor.user.id)
        if available is not None and len(data) > available:
            raise QuotaExceeded(f"{len(data)} bytes do not fit in the {available} left")
        files = self.ops.files
        if not files.store_chunks([memoryview(data)]).in_catalog:
            files.blobs.sync()  # durable before it counts as present (invariant 2)
        self.ops.catalog.blocks.stage(actor.user.id, {sha256: len(data)}, None)
        return len(data)

    def commit(
        self,
        actor: Actor,
        path: str,
        hashes: Sequence[str],
        size: int,
        *,
        mtime: float | None = None,
        if_match: str | None = None,
        parents: bool = False,
    ) -> Committed:
        """Make the file at `path` the concatenation of `hashes` (module docstring).
        `BadBlocks` listing the blocks not present for the actor (or when the sizes
        do not add up to `size`), `PreconditionFailed` when `if_match` does not name
        the file's ETag now, `Conflict` for a missing folder without `parents`, and
        whatever a PUT's commit raises."""
        for chunk_hash in hashes:
            if not SHA256_HEX.fullmatch(chunk_hash):
                raise BadBlocks("a block is named by its SHA-256: 64 lowercase hex digits")
        present, _ = self._present(actor, hashes)
        missing = list(dict.fromkeys(h for h in hashes if h not in present))
        if missing:
            raise BadBlocks(f"{len(missing)} blocks are not present", missing)
        extents, offset = [], 0
        for chunk_hash in hashes:
            extents.append(ExtentRecord(offset, present[chunk_hash], chunk_hash))
            offset += present[chunk_hash]
        if offset != size:
            raise BadBlocks(f"the blocks add up to {offset} bytes, not {size}")
        digest = content_digest(hashes)
        known = self.ops.catalog.checksums.of_digest(digest, size)
        content = NewContent(size, digest, extents, known)
        pending = self._pending(actor, path, size, if_match, parents)
        when = time.time() if mtime is None else mtime
        node = self.ops.commit(actor, pending, content, mtime=when)
        self.ops.catalog.blocks.release(actor.user.id, hashes)
        return Committed(node, path, known)

    def file_blocks(self, actor: Actor, path: str) -> tuple[NodeRecord, list[ExtentRecord]]:
        """The file the actor sees at `path` and its extents; `NotFound`, or
        `Conflict` for a folder."""
        node = self.ops.locate_path(actor, path).node
        if node is None or node.is_dir:
            raise Conflict("a folder has no blocks")
        extents = self.ops.catalog.contents.extents(node.content_id) if node.content_id else []
        return node, extents

    def direct_gets(self, chunk_hashes: Sequence[str]) -> list[str | None]:
        """A presigned GET on the object store for each block stored raw (None: not
        direct, or compressed, encrypted or kept in the catalog: those are read through
        the server, which decodes and verifies them)."""
        if self.direct is None:
            return [None] * len(chunk_hashes)
        direct = self.direct
        locators = self.ops.files.catalog.locators.get(chunk_hashes)
        return [
            direct.presign_get(self._key(h), self.url_ttl) if _an_object(locators.get(h)) else None
            for h in chunk_hashes
        ]

    def _validated(self, blocks: Sequence[tuple[str, int]]) -> dict[str, int]:
        """hash -> size of a well-formed list (order kept, repeats once)."""
        if len(blocks) > MAX_BLOCKS_PER_CHECK:
            raise BadBlocks(f"at most {MAX_BLOCKS_PER_CHECK} blocks per check")
        sizes: dict[str, int] = {}
        for chunk_hash, size in blocks:
            if not SHA256_HEX.fullmatch(chunk_hash):
                raise BadBlocks("a block is named by its SHA-256: 64 lowercase hex digits")
            if not 0 < size <= self.max_size or sizes.setdefault(chunk_hash, size) != size:
                raise BadBlocks(f"block {chunk_hash}: a size of 1 to {self.max_size} bytes")
        return sizes

    def _present(
        self, actor: Actor, hashes: Sequence[str]
    ) -> tuple[dict[str, int], dict[str, str]]:
        """hash -> size of the blocks present for the actor (the catalog's answer, and
        the direct PUTs whose stored object carries the actor's stage token), and hash
        -> token of the direct PUTs staged that have not arrived (yet)."""
        presence = self.ops.catalog.blocks.present_for(actor.user.id, hashes)
        found = dict(presence.present)
        direct = self.direct
        if direct is not None:
            # one HEAD per block, on the file store's pool: a push's commit asks for
            # all of its blocks at once
            files = self.ops.files
            asked = {h: files.submit(direct.object_token, self._key(h)) for h in presence.direct}
            for chunk_hash, token in presence.direct.items():
                stored = asked[chunk_hash].result()
                if stored is not None and stored[1] == token:
                    found[chunk_hash] = stored[0]
        return found, {h: t for h, t in presence.direct.items() if h not in found}

    def _direct_puts(
        self, actor: Actor, missing: dict[str, int], staged: dict[str, str]
    ) -> dict[str, DirectPut]:
        """Claim, stage and presign the missing blocks (module docstring); a block GC
        is deleting right now goes through the server instead (which waits for GC). A
        block already staged for a direct PUT keeps its token (`staged`), so the URLs
        of two checks naming it (a client checking batches in parallel) both count;
        the others get a new one."""
        if self.direct is None or not missing:
            return {}
        claims = self.ops.catalog.contents.claim_many(missing)
        fresh = secrets.token_hex(16)
        tokens = {h: staged.get(h, fresh) for h in missing if claims[h] != CLAIM_BUSY}
        for token in set(tokens.values()):
            chosen = {h: missing[h] for h, t in tokens.items() if t == token}
            self.ops.catalog.blocks.stage(actor.user.id, chosen, token)
        puts = {}
        for chunk_hash, token in tokens.items():
            key, size = self._key(chunk_hash), missing[chunk_hash]
            url, headers = self.direct.presign_put(key, size, chunk_hash, token, self.url_ttl)
            puts[chunk_hash] = DirectPut(url, headers)
        return puts

    def _key(self, chunk_hash: str) -> str:
        return self.ops.files.vault.object_key(chunk_hash)

    def _pending(
        self, actor: Actor, path: str, size: int, if_match: str | None, parents: bool
    ) -> PendingWrite:
        """The PUT's checks for `size` bytes at `path`, with `if_match` and `parents`."""
        names = split_path(path)
        if not names:
            raise Conflict("a home is a folder")
        view = self.ops.view(actor)
        target = view.locate(names)
        if if_match is not None:
            etag = None if target is None or target.node is None else target.node.digest
            if etag is None or etag != if_match.removeprefix("W/").strip('"'):
                raise PreconditionFailed("the file is not the one if_match names")
        if target is not None:
            return self.ops.overwrite(actor, target, announced=size)
        home = self.ops.view(actor).locate([])
        if home is None:
            raise NotFound("no home")
        folder = self.ops.descend(actor, home, names[:-1], make=parents)
        return self.ops.create_file(actor, folder, names[-1], announced=size)
