"""`Actor`: who asks for an operation, as every door tells the operations layer.

An actor is an account (`user`, no `link`), or a share link (`link`, with `user` the
owner of the link's node: what the link writes is theirs and counts against their
quota). Rights come from where the actor stands (`Place`, resolved by its view); locks
from `lock_owner` and `lock_tokens`: a WebDAV lock binds everyone except its owner,
and its owner only while it submits the lock's token (WebDAV's `If:` header). Doors
other than WebDAV submit no tokens, so every lock binds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.catalog import ShareLinkRecord, UserRecord


def link_principal(link_id: int) -> str:
    """The lock owner of requests through share link `link_id` (no account can be
    named so: account names never hold NUL)."""
    return f"\x00share-link:{link_id}"


@dataclass(frozen=True)
class Actor:
    """See the module docstring."""

    user: UserRecord
    link: ShareLinkRecord | None = None
    lock_tokens: tuple[str, ...] = ()

    @property
    def lock_owner(self) -> str:
        """The principal WebDAV locks taken by this actor are recorded under."""
        return self.user.name if self.link is None else link_principal(self.link.id)

    @property
    def author_id(self) -> int | None:
        """The account recorded as the author of new versions (None through a link)."""
        return self.user.id if self.link is None else None

    @property
    def name(self) -> str:
        """Who did it, for the change log and events: the account, or `link:<id>`."""
        return self.user.name if self.link is None else f"link:{self.link.id}"
