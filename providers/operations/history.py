"""Reading a file's history through the operations layer (issue 16): who may see
which old versions. Restoring them is a write and goes through `ContentWrites`.
"""

from __future__ import annotations

from providers.catalog import VersionRecord
from providers.errors import Conflict, Forbidden
from providers.operations.actor import Actor
from providers.operations.base import OperationsBase
from providers.operations.views import Located


class History(OperationsBase):
    """Old versions of files, for whoever can read the file."""

    def versions(self, actor: Actor, target: Located) -> list[VersionRecord]:
        """The old versions of the file at `target`, newest first (its current content
        is not among them). Anyone who sees the file may list them (read rights: a
        grantee, a link that shows the file); `Conflict` for a folder, `Forbidden`
        for the virtual `Shared/`."""
        node = target.node
        if node is None:
            raise Forbidden("Shared/ only lists what others shared with you")
        if node.is_dir:
            raise Conflict("a folder has no versions")
        return self.catalog.versions.old(node.id)
