"""The lock view: how the operations layer sees WebDAV locks, whatever door asks.

Locks are taken and released over WebDAV (LOCK, UNLOCK, and WsgiDAV's lock manager
keeps them, in process or in Redis); every door's writes must respect them, so the
operations layer asks a `LockView` before each mutation. Lock URLs are viewer
independent (`lock_url`, from `Place.lock_path`): a lock taken through `/dav/`, a
grantee's `/dav/Shared/...` or a link's `/s/<token>/dav/` binds all of them.

What a write must pass (RFC 4918 7, as WsgiDAV's request server checks it):

- changing a resource (content, properties): `check(..., depth="0")` on it: no lock on
  it, and no Depth-infinity lock on a folder above it, that the actor does not hold;
- adding or removing a member of a folder: `depth="0"` on the folder (a lock on a
  folder, of any depth, guards its membership);
- deleting, moving or replacing a resource: `depth="infinity"` on it (also no lock on
  anything below it, except the actor's own whose tokens it submitted).

"Holds" means: the lock's owner is `actor.lock_owner` and its token is among
`actor.lock_tokens`. `release` drops the locks at and below a place that is gone
(deleted, moved away, replaced).
"""

from __future__ import annotations

from typing import Literal, Protocol
from urllib.parse import quote

from providers.catalog import CommitStep
from providers.operations.access import Place
from providers.operations.actor import Actor

Depth = Literal["0", "infinity"]


def lock_url(place: Place, *, is_dir: bool) -> str:
    """The URL locks on `place` are keyed by (what WebDAV resources answer as their
    `get_ref_url`): the quoted lock path, with a trailing '/' for a folder."""
    return quote(place.lock_path + ("/" if is_dir else ""))


class LockView(Protocol):
    """See the module docstring. Implementations: `providers.dav.locks.WsgiDavLocks`
    (over WsgiDAV's lock manager, on either lock storage)."""

    def check(self, actor: Actor, place: Place, *, is_dir: bool, depth: Depth) -> None:
        """Raise `Locked` if a lock the actor does not hold guards a write to `place`
        (see the module docstring for `depth`); `Unavailable` if the lock store is
        down."""

    def check_step(
        self, actor: Actor, place: Place, *, is_dir: bool, depth: Depth
    ) -> CommitStep | None:
        """The same check as a step of a commit's transaction (`Contents.commit_file`'s
        `before`), when the locks live in the catalog: atomic with the commit, and no
        transaction of its own. None when they do not: then `check` before the
        commit."""

    def release(self, place: Place, *, is_dir: bool) -> None:
        """Drop every lock at or below `place` (idempotent)."""
