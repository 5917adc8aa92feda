"""The engine's error hierarchy, and the one map from errors to HTTP statuses.

Every third-party error is translated into one of these where the library is used
(`raise ... from e`). Each class carries the HTTP status every door answers it with
(`http_status`): a door never keeps a table of its own, so one error gets one status
at `/dav/`, `/s/`, `/api/v1/` and any later door. `tests/unit/test_errors.py` checks
that every class here names its status.
"""

from __future__ import annotations

from collections.abc import Sequence


class StorageError(Exception):
    """Base class of every error the storage engine raises on purpose."""

    http_status = 500


class Unavailable(StorageError):
    """A dependency (blob store, database, Redis) cannot be reached: answer 503, retry
    later."""

    http_status = 503


class ChunkGone(Unavailable):
    """A chunk of an upload was garbage-collected before the commit (GC ran with a
    grace shorter than the upload): nothing was committed, and a retry uploads the
    chunk again, so this is a 503, not corruption."""

    http_status = 503


class TooBusy(StorageError):
    """This instance holds as many waiting clients (long polls, event streams) as it
    may: answer 503 with Retry-After; another instance, or this one later, takes it."""

    http_status = 503


class NotFound(StorageError):
    """The named object does not exist."""

    http_status = 404


class BlobNotFound(NotFound):
    """The blob store holds no object under that key."""

    http_status = 404


class Conflict(StorageError):
    """The operation clashes with the current state (name taken, parent missing...)."""

    http_status = 409


class LeaseHeld(Conflict):
    """Another process holds the catalog lease this operation needs (another GC run)."""

    http_status = 409


class LeaseLost(Conflict):
    """This process's lease expired and another process took it: stop at once."""

    http_status = 409


class InvalidName(StorageError):
    """A name or path breaks the naming rules (NUL, '/', too long, bad UTF-8)."""

    http_status = 400


class ChecksumMismatch(StorageError):
    """An upload's bytes do not match the checksum its request announced (`OC-Checksum`,
    `Content-Digest`, `Digest`): nothing was committed."""

    http_status = 400


class BadBlocks(StorageError):
    """A delta-API request names blocks it may not use: `missing` are not present for
    the caller (send them, then ask again), or their sizes do not add up."""

    http_status = 400

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class PreconditionFailed(StorageError):
    """The file is not (or no longer) the one the client expected (`If-Match`)."""

    http_status = 412


class InvalidUpload(StorageError):
    """A resumable upload request the engine cannot take as asked (a concatenation of
    partial uploads that are not finished, a part past the upload's length...)."""

    http_status = 400


class UploadChecksumMismatch(ChecksumMismatch):
    """A resumable upload's piece, or its whole file, does not match the checksum the
    client gave (TUS `Upload-Checksum`, or the `checksum` metadata): the piece was not
    recorded, the file not committed. TUS's own status for it."""

    http_status = 460


class Forbidden(StorageError):
    """The actor may not do this here (a read-only grant or link, the root of a
    share, the reserved `Shared` name...)."""

    http_status = 403


class BadCursor(StorageError):
    """A change-feed cursor that is not one this server made (mangled, or signed by
    another store)."""

    http_status = 400


class CursorExpired(StorageError):
    """A change-feed cursor older than what the log keeps (compacted): the client
    starts again from a listing. The message is the API's `reset`."""

    http_status = 410


class Locked(StorageError):
    """A WebDAV lock the actor does not hold (or whose token it did not submit)
    guards the target; `roots` are the lock roots in the way (lock URLs)."""

    http_status = 423

    def __init__(self, message: str, roots: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.roots = tuple(roots)


class QuotaExceeded(StorageError):
    """The write would take its owner over quota."""

    http_status = 507


class IntegrityError(StorageError):
    """Stored data does not match what the catalog says (hash mismatch, missing chunk)."""

    http_status = 500


class CorruptChunk(IntegrityError):
    """A stored chunk's bytes are not what was written (its plaintext SHA-256 or its
    AEAD tag does not match; DESIGN invariant 24): never served. Before a response's
    headers it is a 500; after them the connection is cut."""

    http_status = 500

    def __init__(self, chunk_hash: str, reason: str) -> None:
        super().__init__(f"chunk {chunk_hash} is corrupt: {reason}")
        self.chunk_hash = chunk_hash


class StoreMissing(StorageError):
    """There is no davserver store where the settings point (no catalog file, or a
    database without davserver tables), and this command may not create one."""

    http_status = 503


class SchemaMismatch(StorageError):
    """The catalog's schema is not the one this release needs: behind it
    (`upgradable`: a schema upgrade would fix it) or unknown to it (made by a newer
    release)."""

    http_status = 503

    def __init__(self, message: str, *, upgradable: bool) -> None:
        super().__init__(message)
        self.upgradable = upgradable
