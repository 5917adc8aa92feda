"""`davserver.links.zipstream`: the streamed archive reads back with `zipfile`, byte for byte,
including Zip64 (a member over 4 GiB, members past the 4 GiB offset, more than 65535
entries) without ever holding the archive in memory or on disk."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from davserver.links.zipstream import Member, entry_name, zip_stream

GIB = 1024**3
BLOCK = bytes(1024 * 1024)


def _file(path: tuple[str, ...], data: bytes, mtime: float = 1_700_000_000) -> Member:
    return Member(path, mtime, len(data), lambda: [data[:3], data[3:]])


def _zeros(size: int) -> Iterator[bytes]:
    left = size
    while left:
        block = BLOCK[: min(left, len(BLOCK))]
        left -= len(block)
        yield block


def test_members_read_back_exactly() -> None:
    members = [
        Member(("top",), 1_700_000_000),
        _file(("top", "a.txt"), b"alpha"),
        _file(("top", "ünï cödé €.txt"), "ünï".encode() * 1000),
        Member(("top", "empty"), 1_700_000_000),
        Member(("top", "sub"), 1_700_000_000),
        _file(("top", "sub", "zero.bin"), b""),
        _file(("top", "sub", "..\\..\\evil.txt"), b"x"),
        _file(("top", "old.txt"), b"1970", mtime=0),
    ]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zip_stream(members))))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names == [
        "top/",
        "top/a.txt",
        "top/ünï cödé €.txt",
        "top/empty/",
        "top/sub/",
        "top/sub/zero.bin",
        "top/sub/.._.._evil.txt",  # a backslash never reaches a Windows extractor
        "top/old.txt",
    ]
    assert archive.read("top/a.txt") == b"alpha"
    assert archive.read("top/ünï cödé €.txt") == "ünï".encode() * 1000
    assert archive.read("top/sub/zero.bin") == b""
    assert archive.getinfo("top/empty/").is_dir()
    assert archive.getinfo("top/ünï cödé €.txt").flag_bits & 0x800  # UTF-8 name flag
    assert archive.getinfo("top/old.txt").date_time == (1980, 1, 1, 0, 0, 0)  # clamped


def test_entry_names() -> None:
    assert entry_name(("a", "b"), is_dir=True) == "a/b/"
    assert entry_name(("a", "c\\d"), is_dir=False) == "a/c_d"


def test_output_comes_in_blocks_not_all_at_once() -> None:
    """Bounded memory: no piece the generator yields is bigger than a read block plus
    headers, however big the member."""
    size = 40 * len(BLOCK)
    members = [Member(("big.bin",), 0, size, lambda: _zeros(size))]
    largest = max(len(piece) for piece in zip_stream(members))
    assert largest <= len(BLOCK) + 1024


def test_zip64_member_over_4_gib_and_offsets_past_it(tmp_path: Path) -> None:
    """A 4.1 GiB member, then a small one whose header sits past 4 GiB, then an empty
    folder. The archive goes to a sparse file (runs of zeros are skipped, not written),
    so the test needs neither 4 GiB of memory nor of disk."""
    big = 4 * GIB + 100 * 1024 * 1024 + 7
    members = [
        Member(("big.bin",), 1_700_000_000, big, lambda: _zeros(big)),
        _file(("after.txt",), b"after the big one"),
        Member(("empty",), 1_700_000_000),
    ]
    target = tmp_path / "big.zip"
    with target.open("wb") as out:
        for piece in zip_stream(members):
            if len(piece) >= 4096 and not piece.strip(b"\0"):
                out.seek(len(piece), io.SEEK_CUR)  # a hole reads back as zeros
            else:
                out.write(piece)
        out.truncate()
    with zipfile.ZipFile(target) as archive:
        info = {item.filename: item for item in archive.infolist()}
        assert list(info) == ["big.bin", "after.txt", "empty/"]
        assert info["big.bin"].file_size == big
        assert info["big.bin"].compress_size == big
        expected_crc = 0
        for block in _zeros(big):
            expected_crc = zlib.crc32(block, expected_crc)
        stored_crc = info["big.bin"].CRC
        assert stored_crc == expected_crc
        assert info["after.txt"].header_offset > 4 * GIB
        assert archive.read("after.txt") == b"after the big one"  # found through Zip64
        assert info["empty/"].is_dir()
    assert target.stat().st_size > big


def test_zip64_end_record_for_more_than_65535_entries() -> None:
    count = 70_000
    members = (Member((f"d{i}",), 1_700_000_000) for i in range(count))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zip_stream(members))))
    names = archive.namelist()
    assert len(names) == count
    assert names[0] == "d0/" and names[-1] == f"d{count - 1}/"


def test_a_failing_member_stops_the_archive() -> None:
    """A read error propagates: the client gets a cut download, never a valid zip
    with a short member."""

    def broken() -> Iterator[bytes]:
        yield b"some"
        raise OSError("blob store gone")

    members = [Member(("x.bin",), 0, 10, broken)]
    with pytest.raises(OSError, match="blob store gone"):
        b"".join(zip_stream(members))
