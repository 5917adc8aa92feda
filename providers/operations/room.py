"""Making room under a quota by expiring history (issue 16, design invariant 19).

When a write would take an owner past their quota, their oldest history goes first:
old versions and trash items, oldest first by the time each became history (a
version by when it was written, a trash item by when it was deleted), one at a
time, until the write fits or no history is left. Each is logged (WARNING), since a
user may look for it later. Only then does the write get its 507.
"""

from __future__ import annotations

import logging

from providers.catalog import Catalog

log = logging.getLogger(__name__)

# a bound on one write's clean-up, so a huge upload cannot make one request expire
# thousands of items; the next write continues where this one stopped
MAX_EXPIRED_PER_WRITE = 1000


def make_room(catalog: Catalog, owner_id: int, needed: int) -> int:
    """Expire `owner_id`'s oldest history until `needed` more bytes fit under their
    quota (or none is left); return how many versions and trash items went. An owner
    without a quota, or with room already, loses nothing."""
    owner = catalog.users.by_id(owner_id)
    if owner is None or owner.quota_bytes is None:
        return 0
    if owner.charged_bytes + needed <= owner.quota_bytes:
        return 0  # the figures are upper bounds: it fits without measuring
    usage_of = catalog.history_usage
    usage_of.refresh(owner_id)
    expired = 0
    while expired < MAX_EXPIRED_PER_WRITE:
        usage = usage_of.usage(owner_id)
        if usage.quota is None or usage.charged + needed <= usage.quota:
            break
        version, item = usage_of.oldest(owner_id)
        if version is not None and (item is None or version.created <= item.trashed_at):
            catalog.versions.drop(version.node_id, {version.id})
            log.warning(
                "quota of user %d: expired version %d of file %d to make room for %d bytes",
                owner_id,
                version.id,
                version.node_id,
                needed,
            )
        elif item is not None:
            catalog.trash.purge(owner_id, item.id)
            log.warning(
                "quota of user %d: purged trash item %d (%s) to make room for %d bytes",
                owner_id,
                item.id,
                item.path,
                needed,
            )
        else:
            break
        expired += 1
    return expired
