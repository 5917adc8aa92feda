"""Restoring a file or a subtree as it was at a moment (issue 16: "I deleted the
wrong folder last Tuesday"), through the same checks as any other change.

The snapshot at that moment (`providers.operations.snapshots`) says what was there;
the restore walks it, parents first, into the home (at the same path, or at another
one), each step an ordinary operation: a missing folder is made (`mkdir`), a missing
file is made from the old content, a file whose content differs gets the old content
back (its current one thus becomes a version), and a file with the same content is
left as it is. Nothing is deleted: what was made after the moment stays. No byte is
copied: a content is committed to a node (`Versions.reuse`), each commit with its
rights, lock and quota checks, change-log row and event. What is in the way (a file
where a folder was, or the reverse; a lock; a read-only share) is skipped and
reported, with what is below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from providers.catalog import FILE, NodeRecord
from providers.errors import Conflict, Forbidden, Locked, NotFound
from providers.names import name_key, split_path
from providers.operations import events
from providers.operations.access import SHARED_KEY
from providers.operations.actor import Actor
from providers.operations.mutations import TreeMutations
from providers.operations.snapshots import moment_name
from providers.operations.views import Located, View

T = TypeVar("T")
Progress = Callable[[Sequence[T]], Iterable[T]]


@dataclass
class RestoreReport:
    """What a restore did: folders made, files given their old content (new or
    changed), files already as they were, and the paths skipped (with why)."""

    folders: int = 0
    files: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


class SnapshotRestore(TreeMutations):
    """See the module docstring."""

    def restore_snapshot(
        self,
        actor: Actor,
        path: str,
        cutoff: float,
        to: str | None = None,
        progress: Progress[tuple[NodeRecord, tuple[str, ...]]] | None = None,
    ) -> RestoreReport:
        """Restore what was at `path` in the actor's home before `cutoff` (a moment's
        end, `parse_moment`) at `path`, or at `to`. `NotFound` when the moment is out
        of the window or nothing was at `path` then; `Forbidden` for `Shared/` or a
        share link."""
        if actor.link is not None:
            raise Forbidden("a share link has no snapshots")
        if not self.snapshots.available(cutoff):
            raise NotFound(f"no snapshot of {moment_name(cutoff - 1)}: outside the log's window")
        names, target = _home_names(path), _home_names(to if to is not None else path)
        state = self.snapshots.state(actor.user.id, cutoff)
        source = state.locate(names)
        if source is None:
            raise NotFound(f"{path}: nothing there at {moment_name(cutoff - 1)}")
        plan = list(state.walk(source))
        report, view = RestoreReport(), self.view(actor)
        for node, below in progress(plan) if progress else plan:
            self._restore_one(actor, view, node, (*target, *below), report)
        return report

    def _restore_one(
        self,
        actor: Actor,
        view: View,
        node: NodeRecord,
        names: tuple[str, ...],
        report: RestoreReport,
    ) -> None:
        where = "/" + "/".join(names)
        here = view.locate(names)
        parent = view.locate(names[:-1]) if names and here is None else None
        try:
            if node.is_dir:
                self._restore_folder(actor, here, parent, names, report)
            elif here is None:
                self._new_file(actor, parent, names, node)
                report.files += 1
            elif here.node is None or here.node.is_dir:
                raise Conflict("a folder is there now")
            elif here.node.digest == node.digest:
                report.unchanged += 1
            else:
                self._old_content(actor, here, node)
                report.files += 1
        except (Conflict, Forbidden, Locked, NotFound) as e:
            report.skipped.append((where, str(e)))

    def _restore_folder(
        self,
        actor: Actor,
        here: Located | None,
        parent: Located | None,
        names: tuple[str, ...],
        report: RestoreReport,
    ) -> None:
        if here is not None:
            if not here.is_dir:
                raise Conflict("a file is there now")
            return
        if parent is None:
            raise NotFound("its folder could not be restored")
        self.mkdir(actor, parent, names[-1])
        report.folders += 1

    def _new_file(
        self, actor: Actor, parent: Located | None, names: tuple[str, ...], old: NodeRecord
    ) -> None:
        if parent is None:
            raise NotFound("its folder could not be restored")
        folder, name, place = self.new_member_place(actor, parent, names[-1])
        path = place.owner_path
        new = NodeRecord(
            0,
            folder.id,
            name,
            FILE,
            folder.owner_id,
            old.size,
            old.mtime,
            time.time(),
            old.content_id,
            old.digest,
            old.content_type,
        )
        made = self.catalog.versions.reuse(new, actor.author_id, path)
        self.publish(events.PUT, actor, made, path)

    def _old_content(self, actor: Actor, here: Located, old: NodeRecord) -> None:
        assert here.node is not None
        self.require(here.place)
        self.check_lock(actor, here.place, is_dir=False, depth="0")
        path = here.place.owner_path
        wanted = here.node._replace(
            content_id=old.content_id, digest=old.digest, size=old.size, mtime=old.mtime
        )
        changed = self.catalog.versions.reuse(wanted, actor.author_id, path)
        self.publish(events.PUT, actor, changed, path)


def _home_names(path: str) -> tuple[str, ...]:
    names = split_path(path)
    if names and name_key(names[0]) == SHARED_KEY:
        raise Forbidden("snapshots are of your own files, not of Shared/")
    return tuple(names)
