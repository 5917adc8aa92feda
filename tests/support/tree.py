"""The client test tree (issue 3, "real clients") and two independent ways to digest it.

`build_tree` writes a deterministic tree that exercises what real clients get wrong:
deep nesting, NFC and NFD names, CJK, emoji, URL-special characters, a 200-char name,
sizes around page and block boundaries, duplicate content and one big file.
`local_digests` digests it on disk; `server_digests` walks the server with nothing but
PROPFIND Depth 1 and GET, so a client under test cannot vouch for itself.
Both return {relative POSIX path (NFC): sha256 hex}, directories as "dir/" -> "".
The tree has no empty directories, so clients that skip them (rclone without
`--create-empty-src-dirs`) still produce an identical tree.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import requests

MIB = 2**20
SIZES = (0, 1, 4095, 4096, 4097, 65537, 5 * MIB + 3)
SPECIAL_NAME = "special %#+&;=[]{}'@!~,$ name.txt"
LONG_NAME = "L" * 196 + ".txt"  # 200 characters (and bytes), under the 255-byte limit
_BLOCK = 4 * MIB
_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'
)
DAV = "{DAV:}"


def _payload(seed: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes for `seed` (same seed and size, same bytes)."""
    return random.Random(seed).randbytes(size)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_big(path: Path, size: int) -> None:
    """Writes `size` deterministic bytes in blocks, so memory stays at one block."""
    rng = random.Random("big")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        left = size
        while left:
            step = min(_BLOCK, left)
            out.write(rng.randbytes(step))
            left -= step


def build_tree(root: Path, *, big_bytes: int = 100 * MIB, small_files: int = 300) -> None:
    """Creates the client test tree under `root` (created if missing, must not hold it).

    Contract: the same arguments always produce byte-identical trees; every directory
    holds at least one file; no two names collide after NFC normalisation.
    """
    cafe_nfc = unicodedata.normalize("NFC", "café")
    cafe_nfd = unicodedata.normalize("NFD", "café")
    named = {
        "nested/level1/level2/level3/leaf.txt": 100,
        f"unicode/nfc/{cafe_nfc}.txt": 10,
        f"unicode/nfd/{cafe_nfd}.txt": 11,
        f"unicode/nfd/{cafe_nfd} dir/inner.txt": 12,
        "unicode/cjk/日本語のファイル.txt": 13,
        "unicode/cjk/中文目录/文件.txt": 14,
        "unicode/emoji/😀 smile 🎉.txt": 15,
        f"names/{SPECIAL_NAME}": 16,
        f"names/{LONG_NAME}": 17,
    }
    for rel, size in named.items():
        _write(root / rel, _payload(rel, size))
    for size in SIZES:
        _write(root / f"sizes/size-{size}.bin", _payload(f"size{size}", size))
    twin = _payload("twin", 3 * MIB + 17)
    _write(root / "twins/a.bin", twin)
    _write(root / "twins/deep/b copy.bin", twin)
    _write_big(root / "big/big.bin", big_bytes)
    for i in range(small_files):
        _write(root / f"many/small-{i:04d}.txt", f"small file {i}\n".encode() * (i % 7 + 1))


def _key(rel: str, is_dir: bool) -> str:
    rel = unicodedata.normalize("NFC", rel)
    return rel + "/" if is_dir else rel


def local_digests(root: Path) -> dict[str, str]:
    """{NFC relative POSIX path: sha256 hex} for every file under `root`; "dir/" -> ""."""
    result: dict[str, str] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            result[_key(rel, True)] = ""
        else:
            with path.open("rb") as f:
                result[_key(rel, False)] = hashlib.file_digest(f, "sha256").hexdigest()
    return result


def _members(session: requests.Session, url: str) -> list[tuple[str, bool]]:
    """(absolute member URL as the server quoted it, is collection) for `url`'s children."""
    response = session.request(
        "PROPFIND", url, data=_PROPFIND_BODY, headers={"Depth": "1", "Content-Type": "text/xml"}
    )
    assert response.status_code == 207, (url, response.status_code, response.text[:300])
    own_path = unquote(urlsplit(url).path).rstrip("/")
    members = []
    for item in ET.fromstring(response.content).iter(f"{DAV}response"):
        href = urljoin(url, item.findtext(f"{DAV}href") or "")
        if unquote(urlsplit(href).path).rstrip("/") == own_path:
            continue  # the collection itself
        is_dir = item.find(f".//{DAV}resourcetype/{DAV}collection") is not None
        members.append((href, is_dir))
    return members


def _get_digest(session: requests.Session, url: str) -> str:
    digest = hashlib.sha256()
    with session.get(url, stream=True) as response:
        assert response.status_code == 200, (url, response.status_code)
        for block in response.iter_content(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def server_digests(session: requests.Session, url: str) -> dict[str, str]:
    """Same format as `local_digests`, for the collection at `url` (which ends in "/").

    Independent of any client: only PROPFIND Depth 1 (recursively) and a streamed GET per
    file. Hrefs are unquoted and NFC-normalised to form the keys.
    """
    assert url.endswith("/"), url
    prefix = unquote(urlsplit(url).path)
    result: dict[str, str] = {}
    pending = [url]
    while pending:
        for href, is_dir in _members(session, pending.pop()):
            path = unquote(urlsplit(href).path)
            assert path.startswith(prefix), (href, prefix)
            rel = path[len(prefix) :].rstrip("/")
            if is_dir:
                result[_key(rel, True)] = ""
                pending.append(href if href.endswith("/") else href + "/")
            else:
                result[_key(rel, False)] = _get_digest(session, href)
    return result


def tree_diff(expected: dict[str, str], actual: dict[str, str]) -> str:
    """A readable summary of how `actual` differs from `expected` ("" if equal)."""
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    different = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    lines = [f"missing on server: {k!r}" for k in missing]
    lines += [f"extra on server: {k!r}" for k in extra]
    lines += [f"different content: {k!r}" for k in different]
    return "\n".join(lines)


def assert_same_tree(session: requests.Session, url: str, root: Path) -> None:
    """Asserts the server tree at `url` equals the local tree at `root` (names and bytes)."""
    diff = tree_diff(local_digests(root), server_digests(session, url))
    assert not diff, "server tree differs from local tree:\n" + diff
