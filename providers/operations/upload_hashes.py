"""The whole-file hash state of resumable uploads in progress, kept in this process.

A file's SHA-1, MD5 and SHA-256 need its bytes in order, and a hash's state cannot be
stored in the catalog (hashlib's objects are not serializable). So each part's writer
continues the hasher of the parts before it when this process received them
(`Hasher(resume=...)`), and the commit then has the whole file's checksums without
reading it back. The state is only a shortcut: when it is missing (the previous part
reached another instance, the process restarted, or it was evicted) the commit reads
the upload back from its chunks once, as before (design invariant 18 either way).

A state is keyed by upload id and the position it covers up to (a TUS upload's offset;
an upload folder's chunk ids in file order, `providers.operations.upload_folders`), so
it can only continue the part that starts exactly there; offsets only grow and a chunk
sent again gets a new id, so a stale one never matches.
At most `LIMIT` states are kept (the least recently stored go first): a few hundred
bytes each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from providers.checksums import Hasher

LIMIT = 1024


class UploadHashes:
    """Hash states of uploads by (upload id, position covered); safe across threads."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._states: OrderedDict[str, tuple[Hashable, Hasher]] = OrderedDict()
        self._lock = threading.Lock()

    def at(self, upload_id: str, position: Hashable) -> Hasher | None:
        """The hasher of upload `upload_id` up to `position` (its first bytes), if this
        process has it (an empty position, 0 or (): None too; a part there starts a
        fresh one)."""
        with self._lock:
            found = self._states.get(upload_id)
        return found[1] if found is not None and found[0] == position and position else None

    def keep(self, upload_id: str, position: Hashable, hasher: Hasher) -> None:
        """Record `hasher` as covering upload `upload_id` up to `position`."""
        with self._lock:
            self._states[upload_id] = (position, hasher)
            self._states.move_to_end(upload_id)
            while len(self._states) > self._limit:
                self._states.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        """Drop the upload's state (finished, cancelled)."""
        with self._lock:
            self._states.pop(upload_id, None)


PROCESS_HASHES = UploadHashes()  # one per process: every door's engine shares it
