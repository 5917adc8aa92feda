"""`Operations`: the one application layer every door goes through to change files.

It is the only code that mutates the tree (design invariant 11). Its parts:
`TreeMutations` (folders, delete, move, copy, properties), `ContentWrites` (file
content), `Sharing` (grants and links), `History` (old versions), `TrashOps` (the
caller's trash) and `SnapshotRestore` (a subtree as it was at a moment, made with
`TreeMutations`), over the checks of `OperationsBase`.
"""

from __future__ import annotations

from providers.operations.history import History
from providers.operations.mutations import TreeMutations
from providers.operations.restore import SnapshotRestore
from providers.operations.sharing import Sharing
from providers.operations.trash import TrashOps
from providers.operations.writes import ContentWrites


class Operations(SnapshotRestore, TreeMutations, ContentWrites, Sharing, History, TrashOps):
    """See the module docstring and each part's."""
