"""A `BlobStore` on a local directory tree: the object `key` is the file `root/key`.

Atomicity comes from writing a uniquely named temporary file (`.tmp-<uuid>`) beside the
target and `os.replace`-ing it into place, so readers see the old file or the new one and
concurrent puts of the same key simply race to an identical result. Temporary files left
by a crash are never listed; keys with a segment starting with `.tmp-` are refused with
`InvalidName`. Empty directories are not pruned on delete (that would race with puts).

Durability: on Linux a put only writes and renames, and `sync()` is one `syncfs(2)` of
the file system, which makes the files, the renames and new directories durable at once:
a 1 GiB upload costs one flush instead of two fsyncs per chunk (a file and a directory
journal commit each). Each put also writes its file's data to the disk before returning
(`sync_file_range(2)`, waiting) and then drops those pages from the page cache
(`posix_fadvise(DONTNEED)`), as object stores do for large writes: the pages are
recycled for the next chunk instead of the page cache growing by the size of every
upload, which cost several times more CPU than the writes themselves (1 GiB as 1 MiB
files: 2.0 s of system time and 0.5 s of final flush, against 0.25 s in all with the
pages recycled), and the final `syncfs` has only metadata left. Where `syncfs` is
missing, every put fsyncs the file and its directory before returning, and `sync()`
has nothing left to do.

Direct writes: a put whose data is a writable buffer starting on a page boundary (the
upload pipeline's batch buffers, see `providers.buffers`) writes the data's whole pages
with `O_DIRECT`, from the caller's memory straight to the disk, and only the last part
page through the page cache, left there for `sync()`: no page-cache pages to fill,
write back and drop, which was most of a put's system time (1 GiB as 1 MiB files:
0.17 s of CPU against 0.45 s; a 1 GiB upload's server CPU fell by 0.3 s).
Where the file system refuses `O_DIRECT` (tmpfs, some network file systems) every put
goes through the page cache as above.

Reads drop their pages too: chunks are read from the disk every time (about 1.1 GB/s
here), in exchange for a page cache that uploads and downloads never flood, left to
the catalog and the rest of the machine; keeping read pages made the download speed
swing between 0.5 and 1.1 GB/s from run to run.

Errors: a missing file (or a file/directory name clash on read) is `BlobNotFound`; any
other `OSError` is `Unavailable`; a put whose key clashes with an existing directory or
file path is `InvalidName`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_ISREG
from typing import Any, TypeGuard

from providers.blobstore.base import BlobInfo, BlobStore, validate_key
from providers.buffers import PAGE
from providers.errors import BlobNotFound, InvalidName, Unavailable

_TMP_PREFIX = ".tmp-"
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


# <fcntl.h>: wait for writes in flight, write the range's dirty pages, wait for them
_SYNC_FILE_RANGE_WRITE_AND_WAIT = 1 | 2 | 4


def _load_libc(name: str) -> Any:
    """A libc function, or None where the platform has none."""
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None


_SYNCFS: Callable[[int], int] | None = _load_libc("syncfs")
_SYNC_FILE_RANGE = _load_libc("sync_file_range")
if _SYNC_FILE_RANGE is not None:
    _SYNC_FILE_RANGE.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """`os.write` until all of `data` is written (a write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _page_aligned(data: bytes | memoryview) -> TypeGuard[memoryview]:
    """True if `data` is a writable buffer of at least a page that starts on a page
    boundary (read-only buffers cannot be located without copying them)."""
    if not isinstance(data, memoryview) or data.readonly or len(data) < PAGE:
        return False
    if not data.c_contiguous or data.itemsize != 1:
        return False
    return ctypes.addressof(ctypes.c_char.from_buffer(data)) % PAGE == 0


def _write_direct(fd: int, data: memoryview) -> bool:
    """Write `data`'s whole pages with the file's `O_DIRECT` flag, then clear the flag
    and write the rest through the page cache. False if the file system refused
    direct I/O for it (all of `data` then went through the page cache)."""
    whole = len(data) - len(data) % PAGE
    try:
        written, direct = os.write(fd, data[:whole]), True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        written, direct = 0, False
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_DIRECT)
    _write_all(fd, data[written:])
    return direct


def supports_direct_io(directory: Path) -> bool:
    """True if files in `directory` can be opened with `O_DIRECT`."""
    if not _O_DIRECT:
        return False
    probe = directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        os.close(os.open(probe, _CREATE_FLAGS | _O_DIRECT, 0o644))
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _write_through(fd: int) -> None:
    """Write the file's data to the disk and drop its pages from the page cache (see
    the module docstring); without `sync_file_range` the pages stay for `syncfs`."""
    if _SYNC_FILE_RANGE is None:
        return
    if _SYNC_FILE_RANGE(fd, 0, 0, _SYNC_FILE_RANGE_WRITE_AND_WAIT) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class LocalDirBlobStore(BlobStore):
    """Objects stored as files under `root`; with `fsync` (default) puts survive a crash."""

    def __init__(self, root: Path, fsync: bool = True, direct_io: bool = True) -> None:
        """Create `root` if needed; raise `Unavailable` if that fails. `direct_io`
        allows direct writes (see the module docstring) where the file system has them."""
        self._root = Path(root)
        self._fsync = fsync
        # per-put fsyncs only where one syncfs cannot cover them (see the module docstring)
        self._fsync_each = fsync and _SYNCFS is None
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise Unavailable(f"cannot create blob directory {self._root}: {e}") from e
        self._direct_io = direct_io and supports_direct_io(self._root)

    @property
    def root(self) -> Path:
        """The directory holding the objects."""
        return self._root

    def put(self, key: str, data: bytes | memoryview) -> None:
        """Write `data` to a temporary file and rename it over `root/key`."""
        if any(part.startswith(_TMP_PREFIX) for part in key.split("/")):
            raise InvalidName(f"blob key segment may not start with {_TMP_PREFIX!r}: {key!r}")
        path = os.path.join(self._root, validate_key(key))
        try:
            self._write_replace(path, data)
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as e:
            raise InvalidName(f"blob key {key!r} clashes with an existing path") from e
        except OSError as e:
            raise Unavailable(f"cannot write blob {key!r}: {e}") from e

    def sync(self) -> None:
        """One `syncfs(2)` of the blob directory's file system (if fsync is on)."""
        if not self._fsync or _SYNCFS is None:
            return
        try:
            fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise Unavailable(f"cannot open blob directory {self._root}: {e}") from e
        try:
            if _SYNCFS(fd) != 0:
                error = ctypes.get_errno()
                raise Unavailable(f"syncfs of {self._root} failed: {os.strerror(error)}")
        finally:
            os.close(fd)

    def get(self, key: str) -> bytes:
        """Return the file's bytes (dropping its pages, see the module docstring), or
        raise `BlobNotFound`."""
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                data = f.readall()
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            return data
        except _MISSING as e:
            raise BlobNotFound(key) from e
        except OSError as e:
            raise Unavailable(f"cannot read blob {key!r}: {e}") from e

    def stat(self, key: str) -> BlobInfo | None:
        """Return size and mtime of the regular file `root/key`, or None."""
        path = self._path(key)
        try:
            st = path.stat()
        except _MISSING:
            return None
        except OSError as e:
            raise Unavailable(f"cannot stat blob {key!r}: {e}") from e
        if not S_ISREG(st.st_mode):
            return None
        return BlobInfo(key, st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        """Unlink the file; a missing file is ignored."""
        path = self._path(key)
        try:
            path.unlink()
        except _MISSING:
            return
        except OSError as e:
            raise Unavailable(f"cannot delete blob {key!r}: {e}") from e

    def iter_keys(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Walk the tree, descending only into directories that can hold `prefix` keys.

        Files vanishing mid-walk are skipped; temporary and non-key files are never listed.
        """
        yield from self._walk(self._root, "", prefix)

    def _path(self, key: str) -> Path:
        return self._root / validate_key(key)

    def _make_dirs(self, directory: Path) -> None:
        """Create `directory` and missing parents, fsyncing each new entry's parent."""
        if directory.is_dir():
            return
        if directory != self._root:
            self._make_dirs(directory.parent)
        try:
            directory.mkdir()
        except FileExistsError:
            if not directory.is_dir():
                raise
            return
        self._sync_dir(directory.parent)

    def _write_replace(self, path: str, data: bytes | memoryview) -> None:
        """Write a temporary file beside `path` and rename it into place. Plain `os`
        calls on strings: `pathlib` and buffered files cost about a third of a put's
        CPU time. A missing directory is made on the first failed open, which saves
        every other put a stat."""
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        direct = data if self._direct_io and _page_aligned(data) else None
        flags = _CREATE_FLAGS | (_O_DIRECT if direct is not None else 0)
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            self._make_dirs(Path(directory))
            fd = os.open(tmp, flags, 0o644)
        try:
            try:
                written_direct = False
                if direct is not None:
                    # direct I/O stays on for the store while the file system takes it
                    written_direct = self._direct_io = _write_direct(fd, direct)
                else:
                    _write_all(fd, data)
                if self._fsync_each:
                    os.fsync(fd)
                elif self._fsync and not written_direct:
                    # (a direct write leaves less than a page in the page cache, for sync())
                    _write_through(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._sync_dir(directory)

    def _sync_dir(self, directory: str | Path) -> None:
        if not self._fsync_each:
            return
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[BlobInfo]:
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except _MISSING:
            return
        except OSError as e:
            raise Unavailable(f"cannot list blob directory {directory}: {e}") from e
        for entry in entries:
            if entry.name.startswith(_TMP_PREFIX):
                continue
            key = f"{rel}{entry.name}"
            info = self._entry_info(entry, key, prefix)
            if info is not None:
                yield info
            elif _may_contain(key + "/", prefix) and _is_dir(entry):
                yield from self._walk(Path(entry.path), key + "/", prefix)

    @staticmethod
    def _entry_info(entry: os.DirEntry[str], key: str, prefix: str) -> BlobInfo | None:
        """BlobInfo for a regular file whose key matches `prefix`, else None."""
        if not key.startswith(prefix):
            return None
        try:
            if not entry.is_file(follow_symlinks=False):
                return None
            info = entry.stat(follow_symlinks=False)
            validate_key(key)
        except (FileNotFoundError, InvalidName):
            return None
        except OSError as e:
            raise Unavailable(f"cannot stat {entry.path}: {e}") from e
        return BlobInfo(key, info.st_size, info.st_mtime)


def _may_contain(dir_prefix: str, prefix: str) -> bool:
    """True if keys under `dir_prefix` can start with `prefix`."""
    return dir_prefix.startswith(prefix) or prefix.startswith(dir_prefix)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
