"""Writing a file's content: checks before the first byte, one commit after the last.

`create_file` (a new name in a folder) and `overwrite` (an existing file) check
rights, the name and locks, and the owner's quota against the size the client
announced, before any byte is read: a refused upload costs the client one round
trip. They hand back a `PendingWrite` whose `writer` streams the body into chunks
(`FileStore.writer`, bounded memory, stopped at the quota left, checksummed as it
streams); `commit` then makes the content current in one transaction (design
invariants 2 and 10), after checking the locks again (an upload can be long) and the
checksums the client announced (`expected`: a mismatch is `ChecksumMismatch`, 400), and
publishes the event. A write that is not committed leaves the previous version as it
was; its chunks are left for GC.

Writes whose bytes are stored before the commit (a resumable upload's parts,
`providers.operations.uploads`) take the same checks as a `WriteTarget`
(`plan_create`, `plan_overwrite`) and the same commit (`commit_content`, which every
PUT's `commit` ends in): one commit path for every door.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from providers.catalog import CommitStep, NewContent, NodeRecord, in_order
from providers.checksums import VERIFIABLE, Checksums, verify
from providers.errors import Conflict, QuotaExceeded
from providers.filestore import FileWriter
from providers.operations import events
from providers.operations.access import Place
from providers.operations.actor import Actor
from providers.operations.base import OperationsBase
from providers.operations.room import make_room
from providers.operations.views import Located


@dataclass(frozen=True)
class WriteTarget:
    """A write that passed its checks: the file is `name` in folder `parent_id`
    (owned by `owner_id`), at `place`; `replaces` is the size of the content it
    replaces (0 for a new file) and `exists` whether it replaces one; `limit` the
    bytes its content may have under the owner's quota (None: no quota; only then can
    the history an overwrite makes need expiring: design invariant 19)."""

    parent_id: int
    name: str
    owner_id: int
    place: Place
    replaces: int
    exists: bool
    limit: int | None


@dataclass(frozen=True)
class PendingWrite(WriteTarget):
    """A `WriteTarget` whose body is being received: `writer` receives it;
    `expected` are the checksums the client announced (hashlib name -> hex), checked
    at the commit."""

    writer: FileWriter = field(kw_only=True)
    expected: Mapping[str, str] = field(default_factory=dict, kw_only=True)


class ContentWrites(OperationsBase):
    """See the module docstring."""

    def create_file(
        self,
        actor: Actor,
        parent: Located,
        name: str,
        *,
        announced: int | None = None,
        expected: Mapping[str, str] | None = None,
    ) -> PendingWrite:
        """Start writing a new file `name` in `parent` (`announced`: the body's size
        if the client said it; `expected`: checksums it announced, hashlib name -> hex;
        algorithms outside `VERIFIABLE` are ignored)."""
        return self._pending(self.plan_create(actor, parent, name, announced=announced), expected)

    def plan_create(
        self, actor: Actor, parent: Located, name: str, *, announced: int | None = None
    ) -> WriteTarget:
        """The checks of `create_file` (rights, name, locks, quota against
        `announced`), without a writer: for writes whose bytes are stored already
        (a resumable upload's parts)."""
        folder, name, place = self.new_member_place(actor, parent, name)
        return self._target(actor, folder.id, name, folder.owner_id, place, None, announced)

    def overwrite(
        self,
        actor: Actor,
        target: Located,
        *,
        announced: int | None = None,
        expected: Mapping[str, str] | None = None,
    ) -> PendingWrite:
        """Start writing new content for the existing file `target` (as `create_file`)."""
        return self._pending(self.plan_overwrite(actor, target, announced=announced), expected)

    def plan_overwrite(
        self, actor: Actor, target: Located, *, announced: int | None = None
    ) -> WriteTarget:
        """The checks of `overwrite`, without a writer (as `plan_create`)."""
        node = target.node
        if node is None or node.is_dir:
            raise Conflict("not a file")
        if node.parent_id is None:
            raise Conflict("a home is a folder")
        self.require(target.place)
        self.check_lock(actor, target.place, is_dir=False, depth="0")
        return self._target(
            actor, node.parent_id, node.name, node.owner_id, target.place, node.size, announced
        )

    def commit(
        self,
        actor: Actor,
        pending: PendingWrite,
        content: NewContent,
        *,
        mtime: float,
        content_type: str | None = None,
    ) -> NodeRecord:
        """Make `content` (what `pending.writer` stored) the file's current content;
        the name keeps its stored spelling if another spelling was created meanwhile
        (`Contents.commit_file`). Raises `ChecksumMismatch` if the body is not what
        the client announced, what the commit raises (`QuotaExceeded`, `Conflict`,
        `ChunkGone`) and `Locked`; then nothing changed."""
        verify(pending.expected, pending.writer.hexdigests())
        return self.commit_content(actor, pending, content, mtime=mtime, content_type=content_type)

    def commit_content(
        self,
        actor: Actor,
        target: WriteTarget,
        content: NewContent,
        *,
        mtime: float,
        content_type: str | None = None,
        rename_on_clash: bool = False,
        before: CommitStep | None = None,
    ) -> NodeRecord:
        """The commit of every write, whoever stored the bytes (a PUT's writer, a
        resumable upload's parts): the locks again (in the commit's transaction when
        the lock view can, `LockView.check_step`), one `Contents.commit_file`
        transaction (running `before` first in it, e.g. retiring an upload; with
        `rename_on_clash` a taken name becomes "name (2).ext"), the owner's oldest
        history expired if the quota needs it (design invariant 19), the event.
        Raises what the commit raises (`QuotaExceeded`, `Conflict`, `ChunkGone`) and
        `Locked`; then nothing changed."""
        place = target.place if target.exists else target.place.parent()
        check = self.locks.check_step(actor, place, is_dir=not target.exists, depth="0")
        if check is None:
            self.check_lock(actor, place, is_dir=not target.exists, depth="0")
        path = target.place.owner_path
        steps = [step for step in (check, before) if step is not None]

        def commit_once() -> NodeRecord:
            node, _created = self.catalog.contents.commit_file(
                target.parent_id,
                target.name,
                target.owner_id,
                content,
                mtime=mtime,
                content_type=content_type,
                path=path,
                author_id=actor.author_id,
                rename_on_clash=rename_on_clash,
                before=in_order(steps),
            )
            return node

        try:
            node = commit_once()
        except QuotaExceeded:
            # history goes before the write is refused (design invariant 19)
            if not make_room(self.catalog, target.owner_id, content.size - target.replaces):
                raise
            node = commit_once()
        if target.exists and target.limit is not None:  # the replaced content is history now
            make_room(self.catalog, target.owner_id, 0)
        if rename_on_clash:  # the event names the file made
            path = target.place.parent().child(node.name).owner_path
        self.publish(events.PUT, actor, node, path)
        return node

    def space_for(self, actor: Actor, owner_id: int) -> int | None:
        """Bytes `owner_id` may still store (None: no quota). The actor's own record,
        read when it logged in, answers for itself without a query."""
        if actor.user.id == owner_id:
            return actor.user.available_bytes
        return self.catalog.users.available_bytes(owner_id)

    def _target(
        self,
        actor: Actor,
        parent_id: int,
        name: str,
        owner_id: int,
        place: Place,
        replaces: int | None,
        announced: int | None,
    ) -> WriteTarget:
        """The quota check before the body: `QuotaExceeded` if `announced` bytes do
        not fit (after expiring history, design invariant 19); `replaces` None: a new
        file."""
        available = self.space_for(actor, owner_id)
        limit = None if available is None else available + (replaces or 0)
        too_big = limit is not None and announced is not None and announced > limit
        if too_big and make_room(self.catalog, owner_id, (announced or 0) - (replaces or 0)):
            available = self.catalog.users.available_bytes(owner_id)
            limit = None if available is None else available + (replaces or 0)
        if limit is not None and announced is not None and announced > limit:
            raise QuotaExceeded(f"quota exceeded: {announced} bytes announced, {limit} allowed")
        exists = replaces is not None
        return WriteTarget(parent_id, name, owner_id, place, replaces or 0, exists, limit)

    def _pending(self, target: WriteTarget, expected: Mapping[str, str] | None) -> PendingWrite:
        """`target` with a writer bounded by its limit (the commit's check is the
        binding one) computing the checksums to verify too."""
        wanted = {a: v.lower() for a, v in (expected or {}).items() if a in VERIFIABLE}
        writer = self.files.writer(target.limit, extra=wanted)
        planned = {f.name: getattr(target, f.name) for f in dataclasses.fields(WriteTarget)}
        return PendingWrite(**planned, writer=writer, expected=wanted)

    def checksums(self, node: NodeRecord) -> Checksums | None:
        """The stored checksums of file `node`'s content (None: a folder, or a content
        written before checksums were kept that none has been computed for yet)."""
        return self.catalog.checksums.get(node.content_id)

    def learn_checksums(self, node: NodeRecord, checksums: Checksums) -> None:
        """Keep the checksums a reader computed over the whole of `node`'s content
        (a full GET of a file that had none). Not a change of the file: its content,
        and so its ETag, stay; nothing is logged."""
        if node.content_id:
            self.catalog.checksums.fill(node.content_id, checksums)
