"""The engine's error hierarchy.

Every third-party error is translated into one of these where the library is used
(`raise ... from e`); only `providers.dav.errors` turns them into HTTP answers.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the storage engine raises on purpose."""


class Unavailable(StorageError):
    """A dependency (blob store, database) cannot be reached: answer 503, retry later."""


class ChunkGone(Unavailable):
    """A chunk of an upload was garbage-collected before the commit (GC ran with a
    grace shorter than the upload): nothing was committed, and a retry uploads the
    chunk again, so this is a 503, not corruption."""


class NotFound(StorageError):
    """The named object does not exist."""


class Conflict(StorageError):
    """The operation clashes with the current state (name taken, parent missing...)."""


class LeaseHeld(Conflict):
    """Another process holds the catalog lease this operation needs (another GC run)."""


class LeaseLost(Conflict):
    """This process's lease expired and another process took it: stop at once."""


class InvalidName(StorageError):
    """A name or path breaks the naming rules (NUL, '/', too long, bad UTF-8)."""


class QuotaExceeded(StorageError):
    """The write would take its owner over quota."""


class IntegrityError(StorageError):
    """Stored data does not match what the catalog says (hash mismatch, missing chunk)."""


class BlobNotFound(NotFound):
    """The blob store holds no object under that key."""
