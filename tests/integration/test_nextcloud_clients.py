"""The real Nextcloud (`nextcloudcmd` 3.7) and ownCloud (`owncloudcmd` 2.11) sync clients
against `/remote.php/dav/files/<user>/` and `/remote.php/webdav/`, on both stacks.

One server per stack (module scope); each client syncs as its own account, so the two
clients' scenarios do not meet. Every outcome is checked by an independent walk of
`/dav/` (PROPFIND Depth 1 + GET + SHA-256, `tests.support.tree`), never by the client's
own word. Another account (`olga`) shares a folder read-only with both.
"""

from __future__ import annotations

import re
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.support.servers import RunningServer, serving_with_users
from tests.support.sync_clients import SMALL_CHUNKS, SyncRun, run_sync, sync_ok
from tests.support.tree import MIB, local_digests, server_digests, tree_diff

KINDS = ("nextcloud", "owncloud")
USERS = {"nextcloud": "ncuser", "owncloud": "ocuser"}
OWNER = "olga"
DAV = "{DAV:}"
# The clients' access manager logs each request as `<QNetworkAccessManager operation>
# "<custom verb>" "<url>"`: PUT (3) and DELETE (5) have no custom verb, MKCOL, MOVE and
# COPY go as custom operations (6) with the verb.
WRITES = re.compile(r'accessmanager \]:\s+(?:[35] ""|6 "(?:PUT|MKCOL|DELETE|MOVE|COPY)") "http')
CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")
CLIENT_PROPS = (
    b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">'
    b"<d:prop><d:resourcetype/><d:getetag/><d:getcontentlength/><oc:id/><oc:fileid/>"
    b"<oc:permissions/><oc:size/><oc:checksums/><oc:share-types/><oc:downloadURL/>"
    b"<oc:dDC/><oc:data-fingerprint/></d:prop></d:propfind>"
)


@pytest.fixture(scope="module", params=["embedded", "full"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    names = (OWNER, *USERS.values())
    for running in serving_with_users(request, tmp_path_factory.mktemp("nc"), names):
        owner = running.client(OWNER)
        assert owner.request("MKCOL", running.url("ro")).status_code == 201
        assert owner.put(running.url("ro/doc.txt"), data=b"owner's words\n").status_code == 201
        for user in USERS.values():
            running.services.catalog.grants.grant(OWNER, ["ro"], user, "r")
        time.sleep(0.7)  # > SharedSpace's poll interval (0.5 s)
        yield running


def chunk_sizes(server: RunningServer) -> dict[str, str]:
    """`SMALL_CHUNKS` when the server announces chunking 1.0. Without it the clients
    fall back to ownCloud's old `OC-Chunked` pieces for files over the chunk size (even
    with `bigfilechunking: false`, nextcloudcmd 3.7 does), which the server refuses:
    then the chunk size is raised so the 20 MiB file goes as one PUT."""
    capabilities = requests.get(f"{server.base}/ocs/v1.php/cloud/capabilities?format=json")
    dav = capabilities.json()["ocs"]["data"]["capabilities"].get("dav", {})
    if dav.get("chunking") == "1.0":
        return SMALL_CHUNKS
    one_put = str(64 * MIB)
    names = ("OWNCLOUD_CHUNK_SIZE", "OWNCLOUD_MIN_CHUNK_SIZE", "OWNCLOUD_MAX_CHUNK_SIZE")
    return dict.fromkeys(names, one_put)


def build_client_tree(root: Path) -> None:
    """Nested and empty folders, NFC and NFD names, spaces and `#%+&`, a 0-byte file,
    a 20 MiB file and 200 small files."""
    files = {
        "nested/a/b/c/leaf.txt": b"leaf\n",
        f"names/{CAFE_NFC} nfc.txt": b"nfc",
        f"names/{CAFE_NFD} nfd/inner.txt": b"nfd",
        "names/with spaces #%+& and more.txt": b"special",
        "sizes/zero.bin": b"",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for empty in ("empty", "nested/empty inside"):
        (root / empty).mkdir(parents=True)
    (root / "sizes/big.bin").write_bytes(bytes(range(256)) * (20 * MIB // 256))
    (root / "many").mkdir()
    for i in range(200):
        (root / f"many/small-{i:03d}.txt").write_bytes(f"small {i}\n".encode() * (i % 5 + 1))


def synced_files(root: Path) -> dict[str, str]:
    """`local_digests` without the client's own journal and log files."""
    return {
        rel: digest
        for rel, digest in local_digests(root).items()
        if not (rel.startswith((".sync_", "._sync_", ".csync")) or rel.endswith("sync.log"))
    }


def assert_converged(session: requests.Session, url: str, local: Path) -> dict[str, str]:
    on_server = server_digests(session, url)
    diff = tree_diff(synced_files(local), on_server)
    assert not diff, "local and server trees differ:\n" + diff
    return on_server


def writes(run: SyncRun) -> list[str]:
    return [line for line in run.log.splitlines() if WRITES.search(line)]


def propfind(session: requests.Session, url: str, depth: str) -> dict[str, dict[str, str]]:
    """{href: {property local name: text}} of the 200 properties of a client PROPFIND."""
    response = session.request("PROPFIND", url, data=CLIENT_PROPS, headers={"Depth": depth})
    assert response.status_code == 207, response.text[:300]
    found = {}
    for item in ET.fromstring(response.content).iter(f"{DAV}response"):
        props = {}
        for propstat in item.iter(f"{DAV}propstat"):
            if "200" not in (propstat.findtext(f"{DAV}status") or ""):
                continue
            for prop in propstat.iter(f"{DAV}prop"):
                for element in prop:
                    props[element.tag.split("}")[1]] = "".join(element.itertext())
        found[item.findtext(f"{DAV}href") or ""] = props
    return found


class Sides:
    """One client's account: its local folder, its sync runs and its server views."""

    def __init__(self, server: RunningServer, kind: str, tmp: Path) -> None:
        self.server = server
        self.kind = kind
        self.user = USERS[kind]
        self.local = tmp / "local"
        self.home = tmp / "home"
        self.dav = server.client(self.user)
        self.files = f"{server.base}/remote.php/dav/files/{self.user}/"

    def sync(self, *, must_succeed: bool = True) -> SyncRun:
        args = (self.kind, self.local, self.server.base, self.user, self.server.users[self.user])
        env = chunk_sizes(self.server)
        if must_succeed:
            return sync_ok(*args, home=self.home, env=env)
        return run_sync(*args, home=self.home, env=env)

    def converged(self) -> dict[str, str]:
        return assert_converged(self.dav, self.server.dav, self.local)


@pytest.mark.parametrize("kind", KINDS)
def test_client_syncs_both_ways(server: RunningServer, kind: str, tmp_path: Path) -> None:
    sides = Sides(server, kind, tmp_path)
    build_client_tree(sides.local)
    uploaded = synced_files(sides.local)
    first = sides.sync()
    assert "does not support X-OC-MTime" not in first.log
    on_server = sides.converged()
    assert uploaded.items() <= on_server.items()
    leaf = sides.dav.head(sides.server.url("nested/a/b/c/leaf.txt"))
    mtime = int((sides.local / "nested/a/b/c/leaf.txt").stat().st_mtime)
    assert parsedate_to_datetime(leaf.headers["Last-Modified"]).timestamp() == mtime
    assert on_server["Shared/ro/doc.txt"] == synced_files(sides.local)["Shared/ro/doc.txt"]

    again = sides.sync()
    assert writes(again) == [], "a second sync wrote:\n" + "\n".join(writes(again))

    server_side_changes(sides)
    local_renames(sides)
    edited_on_both_sides(sides)
    read_only_share_is_not_written(sides)


def server_side_changes(sides: Sides) -> None:
    """New deep file, edit, delete and folder rename through plain WebDAV on /dav/."""
    dav, url = sides.dav, sides.server.url
    for folder in ("deep", "deep/er", "deep/er/est"):
        assert dav.request("MKCOL", url(folder)).status_code == 201
    assert dav.put(url("deep/er/est/new.txt"), data=b"from the server").status_code == 201
    assert dav.put(url("nested/a/b/c/leaf.txt"), data=b"leaf, edited").status_code == 204
    assert dav.delete(url("many/small-007.txt")).status_code == 204
    moved = dav.request("MOVE", url("nested/a"), headers={"Destination": url("nested/renamed")})
    assert moved.status_code == 201
    sides.sync()
    local = sides.local
    assert (local / "deep/er/est/new.txt").read_bytes() == b"from the server"
    assert (local / "nested/renamed/b/c/leaf.txt").read_bytes() == b"leaf, edited"
    assert not (local / "nested/a").exists()
    assert not (local / "many/small-007.txt").exists()
    sides.converged()


def local_renames(sides: Sides) -> None:
    """A folder and a file renamed locally go up as MOVEs (201), keeping their ids."""
    before = propfind(sides.dav, sides.files + "names/", "1")
    ids = {href.rstrip("/").rsplit("/", 1)[-1]: props["id"] for href, props in before.items()}
    (sides.local / "deep").rename(sides.local / "deep renamed")
    special = "with spaces #%+& and more.txt"
    (sides.local / "names" / special).rename(sides.local / "names/renamed #%+&.txt")
    run = sides.sync()
    moves = [line for line in writes(run) if '"MOVE"' in line]
    assert len(moves) == 2 and len(writes(run)) == 2, writes(run)
    after = propfind(sides.dav, sides.files + "names/", "1")
    renamed = f"/remote.php/dav/files/{sides.user}/names/renamed%20%23%25%2B%26.txt"
    assert after[renamed]["id"] == ids[quote(special)]
    sides.converged()


def edited_on_both_sides(sides: Sides) -> None:
    """Both versions survive everywhere: the server's at the name, the local one in a
    `NAME (conflicted copy DATE).EXT` next to it, which the client uploads (the server
    advertises `uploadConflictFiles`); another sync writes nothing and the local tree
    is exactly the server's."""
    target = sides.local / "many/small-010.txt"
    target.write_bytes(b"edited locally\n")
    put = sides.dav.put(sides.server.url("many/small-010.txt"), data=b"edited on the server\n")
    assert put.status_code == 204
    sides.sync()
    assert target.read_bytes() == b"edited on the server\n"
    copies = [p for p in (sides.local / "many").iterdir() if "conflicted copy" in p.name]
    assert [p.read_bytes() for p in copies] == [b"edited locally\n"], copies
    server_copy = sides.dav.get(sides.server.url(f"many/{copies[0].name}"))
    assert server_copy.status_code == 200 and server_copy.content == b"edited locally\n"
    at_name = sides.dav.get(sides.server.url("many/small-010.txt")).content
    assert at_name == b"edited on the server\n"
    again = sides.sync()
    assert writes(again) == [], writes(again)
    sides.converged()


def read_only_share_is_not_written(sides: Sides) -> None:
    """The read-only share shows without W/C/K/D and nothing local reaches it: the
    edited file is restored and the edit kept in a conflict copy, whose upload (asked
    for by `uploadConflictFiles`) is refused with 403, after which the client keeps it
    local and does not try again; a new local file is never sent."""
    listing = propfind(sides.dav, sides.files + "Shared/ro/", "1")
    shared = f"/remote.php/dav/files/{sides.user}/Shared/ro/"
    assert listing[shared]["permissions"] == "SG"
    assert listing[shared + "doc.txt"]["permissions"] == "SG"
    owner, url = sides.server.client(OWNER), sides.server.url
    original = owner.get(url("ro/doc.txt")).content
    (sides.local / "Shared/ro/doc.txt").write_bytes(b"changed by the grantee\n")
    (sides.local / "Shared/ro/new.txt").write_bytes(b"new from the grantee\n")
    run = sides.sync(must_succeed=False)  # exit 1: the copy and the new file are errors
    assert "read-only on the server, restoring" in run.log
    restored = sides.local / "Shared/ro"
    assert (restored / "doc.txt").read_bytes() == original
    copies = [p for p in restored.iterdir() if "conflicted copy" in p.name]
    assert [p.read_bytes() for p in copies] == [b"changed by the grantee\n"]
    shared_writes = [line for line in writes(run) if "Shared/ro" in line]
    assert len(shared_writes) == 1 and copies[0].name in shared_writes[0], shared_writes
    assert f'403 Forbidden\\" to \\"PUT {sides.files}Shared/ro/{copies[0].name}' in run.log
    again = sides.sync(must_succeed=False)
    assert writes(again) == [], writes(again)
    assert owner.get(url("ro/doc.txt")).content == original
    assert owner.get(url("ro/new.txt")).status_code == 404
    assert owner.get(url(f"ro/{copies[0].name}")).status_code == 404


def test_oc_chunked_put_is_refused_and_stores_nothing(server: RunningServer) -> None:
    user = USERS["nextcloud"]
    session = server.client(user)
    for base in (f"{server.base}/remote.php/dav/files/{user}/", server.dav):
        url = base + "big.bin-chunking-4242-2-0"
        answer = session.put(url, data=b"x" * 1000, headers={"OC-Chunked": "1"})
        assert answer.status_code == 400
        assert "OC-Chunked" in answer.text
        assert "close" not in answer.headers.get("Connection", "")  # the body was read
        assert session.get(url).status_code == 404
        assert session.get(base + "big.bin").status_code == 404


def test_client_properties_and_headers(server: RunningServer) -> None:
    """What the clients read: the properties on Depth 0 and 1, and the headers of
    PUT, MKCOL, MOVE and GET."""
    user = USERS["owncloud"]
    session = server.client(user)
    base = f"{server.base}/remote.php/webdav/"
    made = session.request("MKCOL", base + "props")
    assert made.status_code == 201 and made.headers["OC-FileId"]
    put = session.put(base + "props/f.txt", data=b"12345", headers={"X-OC-Mtime": "1600000000"})
    assert put.status_code == 201
    assert put.headers["X-OC-MTime"] == "accepted"
    assert put.headers["OC-ETag"] == put.headers["ETag"]
    assert put.headers["OC-Perm"] == "RGDNVW"
    get = session.get(base + "props/f.txt")
    assert get.headers["OC-ETag"] == get.headers["ETag"] == put.headers["ETag"]
    listing = propfind(session, base + "props/", "1")
    folder, file = listing["/remote.php/webdav/props/"], listing["/remote.php/webdav/props/f.txt"]
    assert folder["permissions"] == "RGDNVCK" and folder["size"] == "5"
    assert file["permissions"] == "RGDNVW" and file["size"] == "5"
    assert file["id"] == put.headers["OC-FileId"] and folder["id"] == made.headers["OC-FileId"]
    for props in (folder, file):
        assert props["share-types"] == props["downloadURL"] == props["dDC"] == ""
        assert props["data-fingerprint"] == ""
    assert propfind(session, base + "props/f.txt", "0")["/remote.php/webdav/props/f.txt"] == file
    root = propfind(session, base, "0")["/remote.php/webdav/"]
    assert root["permissions"] == "RGCK"
    shared = propfind(session, base + "Shared/", "1")
    assert shared["/remote.php/webdav/Shared/"]["permissions"] == "G"
    assert shared["/remote.php/webdav/Shared/"]["getetag"]
    assert shared["/remote.php/webdav/Shared/ro/"]["permissions"] == "SG"
    owner = server.client(OWNER)
    assert owner.put(server.url("ro/from-olga.txt"), data=b"more").status_code == 201
    again = propfind(session, base + "Shared/", "0")["/remote.php/webdav/Shared/"]
    assert again["getetag"] != shared["/remote.php/webdav/Shared/"]["getetag"]
    moved = session.request(
        "MOVE", base + "props/f.txt", headers={"Destination": base + "props/g.txt"}
    )
    assert moved.status_code == 201
    assert moved.headers["OC-FileId"] == put.headers["OC-FileId"]
    assert moved.headers["OC-ETag"] == put.headers["ETag"]
