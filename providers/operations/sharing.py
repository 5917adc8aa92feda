"""Sharing: grants between users and public share links, for the API and the CLI alike.

Only a node's owner shares it, named by its path in their own home: a path under the
owner's `Shared/` is someone else's (`Forbidden`). A change to grants makes this
process's `SharedSpace` reload at once (other processes follow the catalog's `acl`
counter within their poll interval) and publishes a `sharing` event.
"""

from __future__ import annotations

from collections.abc import Sequence

from providers.catalog import GrantRecord, ShareLinkRecord
from providers.errors import Forbidden
from providers.names import name_key
from providers.operations import events
from providers.operations.access import SHARED_KEY
from providers.operations.base import OperationsBase
from providers.operations.events import Event


def own_names(names: Sequence[str]) -> list[str]:
    """`names` if they can name something the caller owns: not under `Shared/`."""
    if names and name_key(names[0]) == SHARED_KEY:
        raise Forbidden("only the owner can share what is under Shared/")
    return list(names)


class Sharing(OperationsBase):
    """See the module docstring. `owner` is an account name throughout."""

    def grant(
        self, owner: str, names: Sequence[str], to: str, perm: str
    ) -> tuple[GrantRecord, bool]:
        """Share the owner's node at `names` with `to` (`bob`, `@team`) as `perm`
        (`r`, `rw`): (the grant, whether it is new; False: its perm was changed).
        Errors as `Grants.grant`."""
        grants = self.catalog.grants
        before = {g.id for g in grants.of_owner(owner)}
        record = grants.grant(owner, own_names(names), to, perm)
        self._announce(owner, record.node_id, record.path)
        return record, record.id not in before

    def revoke(self, owner: str, names: Sequence[str], to: str) -> bool:
        """Withdraw the owner's grant of `names` to `to`; False if there was none."""
        done = self.catalog.grants.revoke(owner, own_names(names), to)
        if done:
            self._announce(owner, 0, "/" + "/".join(names))
        return done

    def revoke_grant(self, owner: str, grant_id: int) -> bool:
        """Withdraw grant `grant_id` if `owner` made it; False otherwise."""
        done = self.catalog.grants.revoke_by_id(owner, grant_id)
        if done:
            self._announce(owner, 0, "")
        return done

    def create_link(
        self,
        owner: str,
        names: Sequence[str],
        perm: str,
        *,
        password_hash: str | None = None,
        expires_at: float | None = None,
        max_downloads: int | None = None,
    ) -> ShareLinkRecord:
        """A new share link to the owner's node at `names` (errors as
        `ShareLinks.create`)."""
        return self.catalog.links.create(
            owner,
            own_names(names),
            perm,
            password_hash=password_hash,
            expires_at=expires_at,
            max_downloads=max_downloads,
        )

    def revoke_link(self, link_id: int, owner: str | None = None) -> ShareLinkRecord | None:
        """Revoke live link `link_id` (only if `owner` made it, when given); the link
        as it was, or None if there was no such live link."""
        link = self.catalog.links.get(link_id)
        if link is None or (owner is not None and link.owner != owner):
            return None
        return link if self.catalog.links.revoke(link.owner, link_id) else None

    def _announce(self, owner: str, node_id: int, path: str) -> None:
        """Reload this process's view of who received what, and tell listeners."""
        self.shares.invalidate()
        user = self.catalog.users.get(owner)
        owner_id = user.id if user is not None else 0
        self.events.publish(Event(events.SHARING, owner_id, node_id, path, owner))
