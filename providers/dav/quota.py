"""The quota split as WebDAV properties (issue 16): what an account's files, their old
versions and their trash each take, in davserver's namespace, on every folder of the
account's own tree. Like the sync token they are computed, so they are returned when
asked for by name, never for allprop. `DAV:quota-used-bytes` is the three together
(what the quota is charged: design invariant 19).
"""

from __future__ import annotations

from providers.catalog import Usage

DAVSERVER_NS = "http://davserver/ns"
QUOTA_CURRENT = f"{{{DAVSERVER_NS}}}quota-current-bytes"
QUOTA_VERSIONS = f"{{{DAVSERVER_NS}}}quota-versions-bytes"
QUOTA_TRASH = f"{{{DAVSERVER_NS}}}quota-trash-bytes"
QUOTA_SPLIT = (QUOTA_CURRENT, QUOTA_VERSIONS, QUOTA_TRASH)


def quota_split_value(usage: Usage, name: str) -> str:
    """The value of one of `QUOTA_SPLIT` for an owner whose space is `usage`."""
    figures = {
        QUOTA_CURRENT: usage.current,
        QUOTA_VERSIONS: usage.versions,
        QUOTA_TRASH: usage.trash,
    }
    return str(figures[name])
