"""Every read is verified (design invariant 24), on a live server, both stacks.

One byte of one stored chunk object is flipped through the blob store (a file in the
blob directory, or an object read and written back on S3). Then: a GET that needs the
chunk fails cleanly at every door that sends file bytes, before the headers (a 500
with the request id, nothing internal) or, once a 200 is under way, by cutting the
connection short of its Content-Length, never a complete 200 with the wrong bytes;
a Range GET of an untouched part still works; the corruption is counted in
`/metrics`; and `davserver fsck --deep` fails and names the file.
"""

from __future__ import annotations

import http.client
import random
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import requests

from providers.operations.snapshots import moment_name
from tests.conftest import STACKS
from tests.support.api import answer, api
from tests.support.dav import put
from tests.support.links import make_link
from tests.support.servers import RunningServer
from tests.support.subprocess_server import run_cli

MIB = 1024 * 1024
TIMEOUT = 60
COUNTER = re.compile(r"^davserver_corrupt_chunks_total ([0-9.e+]+)$", re.M)


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _extents(server: RunningServer, path: str) -> list[tuple[int, int, str]]:
    """(offset, size, chunk hash) of each extent of the admin's file at `path`."""
    catalog = server.services.catalog
    home = catalog.users.get("admin")
    assert home is not None
    node = catalog.tree.resolve(home.home_id, path.strip("/").split("/"))
    assert node is not None and node.content_id is not None
    extents = catalog.contents.extents(node.content_id)
    return [(e.offset, e.size, e.chunk_hash) for e in extents]


def _flip_a_byte(server: RunningServer, chunk_hash: str) -> None:
    """Flip one bit in the middle of the chunk's stored object (same size), found
    through the codec layer whatever form it is stored in."""
    blobs, files = server.services.blobs, server.services.files
    described = server.services.catalog.locators.describe(chunk_hash)
    assert described is not None
    key = files.vault.object_key(chunk_hash, described[1])
    data = bytearray(blobs.get(key))
    data[len(data) // 2] ^= 0x01
    blobs.put(key, bytes(data))


def _corrupt_count(server: RunningServer) -> float:
    text = requests.get(server.base + "/metrics", timeout=TIMEOUT).text
    found = COUNTER.search(text)
    return float(found.group(1)) if found else 0.0


def _raw_get(url: str, headers: dict[str, str]) -> tuple[int, int | None, bytes, bool]:
    """(status, Content-Length, the body bytes received, whether the body was cut short)
    of a GET, read to the end of the connection or of the announced length."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=TIMEOUT)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        length = response.getheader("Content-Length")
        try:
            body, cut = response.read(), False
        except http.client.IncompleteRead as e:
            body, cut = e.partial, True
        except (ConnectionError, http.client.HTTPException):
            body, cut = b"", True
        return response.status, None if length is None else int(length), body, cut
    finally:
        conn.close()


def _basic(server: RunningServer) -> dict[str, str]:
    session = server.client()
    request = requests.Request("GET", server.base, auth=session.auth).prepare()
    return {"Authorization": str(request.headers["Authorization"])}


def _assert_clean_500(status: int, body: bytes, server: RunningServer) -> None:
    text = body.decode("utf-8", "replace")
    assert status == 500, (status, text[:300])
    assert "request id" in text
    for leak in ("Traceback", "corrupt", str(server.settings.data_dir), "chunk"):
        assert leak not in text, text


def _assert_never_served(status: int, length: int | None, body: bytes, cut: bool, good: bytes):
    """A 200 that started is cut short; it never carries the whole (wrong) body."""
    assert status == 200, status
    assert length == len(good)
    assert cut and len(body) < len(good)
    assert good.startswith(body)  # what did go out was verified bytes


Damaged = tuple[RunningServer, bytes, list[tuple[int, int, str]]]


def _text(size: int) -> bytes:
    """Numbered lines: compressible (stored as zstd), and no two chunks alike."""
    lines = b"".join(b"line %08d of a compressible text file\n" % n for n in range(size // 40))
    return lines[:size]


def _damage(server: RunningServer, data: bytes) -> Damaged:
    """`/f.bin` (`data`, several chunks) with its second chunk corrupt, and `/g.bin`
    with its first one corrupt."""
    admin = server.client()
    put(admin, server.url("f.bin"), data)
    put(admin, server.url("g.bin"), _payload(3 * MIB, 2))
    extents = _extents(server, "/f.bin")
    assert len(extents) >= 3
    _flip_a_byte(server, extents[1][2])
    _flip_a_byte(server, _extents(server, "/g.bin")[0][2])
    time.sleep(1.1)  # so that a snapshot of now (whole seconds) holds both
    return server, data, extents


@pytest.fixture
def damaged(server: RunningServer) -> Damaged:
    return _damage(server, _payload(6 * MIB, 1))


def test_a_corrupt_chunk_is_never_served_at_dav(damaged: Damaged) -> None:
    _check_dav_and_fsck(damaged)


@pytest.mark.parametrize("stack", STACKS)
def test_a_tampered_compressed_and_sealed_chunk_is_never_served(
    make_server: Callable[..., RunningServer], stack: str
) -> None:
    """With encryption on (and compressible text) the flipped byte breaks the AEAD tag."""
    server = make_server(stack, encryption=True)
    damaged = _damage(server, _text(6 * MIB))
    locators = server.services.catalog.locators.get([e[2] for e in damaged[2]])
    assert {locator.codec for locator in locators.values()} == {"sealed"}
    _check_dav_and_fsck(damaged)


def _check_dav_and_fsck(damaged: Damaged) -> None:
    server, data, extents = damaged
    before = _corrupt_count(server)
    auth = _basic(server)
    status, length, body, cut = _raw_get(server.url("f.bin"), auth)
    _assert_never_served(status, length, body, cut, data)

    status, _, body, _ = _raw_get(server.url("g.bin"), auth)
    _assert_clean_500(status, body, server)

    first = extents[0]
    got = requests.get(
        server.url("f.bin"),
        auth=server.client().auth,
        headers={"Range": f"bytes=0-{first[1] - 1}"},
        timeout=TIMEOUT,
    )
    assert got.status_code == 206 and got.content == data[: first[1]]
    offset, size, _ = extents[1]
    ranged = requests.get(
        server.url("f.bin"),
        auth=server.client().auth,
        headers={"Range": f"bytes={offset}-{offset + size - 1}"},
        timeout=TIMEOUT,
    )
    _assert_clean_500(ranged.status_code, ranged.content, server)
    assert _corrupt_count(server) >= before + 3

    admin = server.client()
    put(admin, server.url("f.bin"), b"a new version")  # the damaged one is kept as a version
    assert admin.delete(server.url("g.bin")).status_code == 204  # and this one in the trash
    fsck = run_cli(server.settings, "fsck", "--deep")
    assert fsck.returncode == 1, fsck.stdout + fsck.stderr
    assert f"corrupt: {extents[1][2]}" in fsck.stdout
    assert "damages admin:/f.bin (an old version)" in fsck.stdout
    assert "damages admin:/g.bin (in the trash)" in fsck.stdout
    assert run_cli(server.settings, "fsck").returncode == 0  # the sizes are right


def test_a_corrupt_chunk_is_never_served_at_the_other_doors(damaged: Damaged) -> None:
    server, data, extents = damaged
    auth = _basic(server)
    nextcloud = f"{server.base}/remote.php/dav/files/admin/"
    status, length, body, cut = _raw_get(nextcloud + "f.bin", auth)
    _assert_never_served(status, length, body, cut, data)
    status, _, body, _ = _raw_get(nextcloud + "g.bin", auth)
    _assert_clean_500(status, body, server)

    link = make_link(server, "f.bin")
    status, length, body, cut = _raw_get(f"{link.url}/download", {})
    _assert_never_served(status, length, body, cut, data)
    status, _, body, _ = _raw_get(f"{make_link(server, 'g.bin').url}/download", {})
    _assert_clean_500(status, body, server)

    moment = moment_name(time.time())
    snapshot = f"{server.base}/snapshots/{moment}/"
    status, length, body, cut = _raw_get(snapshot + "f.bin", auth)
    _assert_never_served(status, length, body, cut, data)
    status, _, body, _ = _raw_get(snapshot + "g.bin", auth)
    _assert_clean_500(status, body, server)

    listed = answer(server.client().get(api(server, "files/blocks?path=/f.bin")), 200)
    urls = {block["sha256"]: block["url"] for block in listed["blocks"]}
    status, _, body, _ = _raw_get(urls[extents[1][2]], {})
    _assert_clean_500(status, body, server)
    good = requests.get(urls[extents[0][2]], timeout=TIMEOUT)
    assert good.status_code == 200 and good.content == data[: extents[0][1]]
