"""A zip archive written as a stream: no temporary file, memory bounded by one block.

`zip_stream(members)` yields the archive's bytes while it reads each member's bytes,
so a folder of any size leaves the server as it is read. It is the standard library's
`zipfile` writing to a sink that cannot seek, which makes `zipfile` put each member's
CRC and sizes in a data descriptor after its bytes instead of going back to patch the
header. Members are stored, not deflated: most large files (photos, video, archives)
are already compressed, and two cores are better spent serving.

Zip64: a member whose announced `size` is near 4 GiB gets Zip64 headers up front
(`zipfile` decides from `ZipInfo.file_size`), and the central directory and its end
records switch to Zip64 by themselves once offsets or counts pass the classic limits.
So members and totals beyond 4 GiB are valid archives.

Names are UTF-8 (zipfile sets the language-encoding flag for non-ASCII names). A
backslash in a stored name becomes `_`: Windows extractors read it as a separator,
and a name like `..\\..\\x` would then climb out of the extraction folder.
"""

from __future__ import annotations

import struct
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

BLOCK = 1024 * 1024  # a member's bytes are passed on at most this much at a time
# DOS timestamps cover 1980-2107; anything outside is clamped into that range.
_DOS_MIN = (1980, 1, 1, 0, 0, 0)
_DOS_MAX = (2107, 12, 31, 23, 59, 58)
_UNIX_TIME_TAG = 0x5455  # "UT" extra field: the exact mtime in UTC for modern unzips


@dataclass(frozen=True)
class Member:
    """One archive entry: `path` is '/'-separated names from the archive root.

    A directory has `read` None. A file's `read()` returns an iterable of its bytes
    (blocks of any size), called only when the member is written; `size` is what it
    announces, used to choose Zip64 headers (the written sizes come from the bytes).
    """

    path: tuple[str, ...]
    mtime: float
    size: int = 0
    read: Callable[[], Iterable[bytes]] | None = None

    @property
    def is_dir(self) -> bool:
        return self.read is None


class _Sink:
    """The file object zipfile writes into: collects bytes until the generator drains
    them. Not seekable and without `tell`, so zipfile counts offsets itself and writes
    data descriptors."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def zip_stream(members: Iterable[Member]) -> Iterator[bytes]:
    """The bytes of a zip archive of `members`, in order (see the module docstring).

    Members are pulled lazily, so the caller may walk a tree as the archive is
    written. An exception from a member's bytes propagates: the archive is then left
    unfinished, and the client sees a cut download rather than a short, valid zip.
    """
    sink = _Sink()
    archive = zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True)
    for member in members:
        info = _info(member)
        if member.is_dir:
            archive.mkdir(info)
        else:
            assert member.read is not None
            with archive.open(info, "w") as out:
                if data := sink.drain():
                    yield data
                for block in member.read():
                    out.write(block)
                    if data := sink.drain():
                        yield data
        if data := sink.drain():
            yield data
    archive.close()
    if data := sink.drain():
        yield data


def entry_name(path: tuple[str, ...], *, is_dir: bool) -> str:
    """The archive name for `path`: names joined by '/', backslashes made `_`, and a
    trailing '/' for a directory."""
    name = "/".join(part.replace("\\", "_") for part in path)
    return name + "/" if is_dir else name


def _info(member: Member) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(entry_name(member.path, is_dir=member.is_dir), _dos_time(member.mtime))
    info.compress_type = zipfile.ZIP_STORED
    seconds = max(-(2**31), min(2**31 - 1, int(member.mtime)))
    info.extra = struct.pack("<HHBl", _UNIX_TIME_TAG, 5, 1, seconds)
    if member.is_dir:
        info.external_attr = (0o40755 << 16) | 0x10  # unix drwxr-xr-x, MS-DOS directory
        info.file_size = info.compress_size = info.CRC = 0
    else:
        info.external_attr = 0o100644 << 16  # unix -rw-r--r--
        info.file_size = member.size
    return info


def _dos_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    """The local time of `mtime` as zip's DOS timestamp wants it (clamped)."""
    try:
        stamp = tuple(time.localtime(mtime)[:6])
    except (OverflowError, OSError, ValueError):
        stamp = _DOS_MIN
    clamped = max(_DOS_MIN, min(_DOS_MAX, stamp))
    return (clamped[0], clamped[1], clamped[2], clamped[3], clamped[4], clamped[5])
