"""Replays of what Windows Explorer (the WebDAV mini-redirector) and macOS Finder
(webdavfs) send when they mount, browse, copy in, overwrite, rename and delete, on both
stacks. Neither client can run here, so each test sends their request sequence and
asserts the answers those clients depend on.

Sources of the sequences (cited again where used):
- Microsoft [MS-WDV] WebDAV client extensions,
  https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wdv/ , and [MS-WDVME]
  (the Win32* properties), https://learn.microsoft.com/en-us/openspecs/sharepoint_protocols/ms-wdvme/
- OPTIONS on the server root first (DavClnt, then Microsoft-WebDAV-MiniRedir):
  https://github.com/nextcloud/server/pull/2986 ,
  https://github.com/mickael-kerjean/filestash/issues/669
- Windows copy-in: PROPFIND (404), 0-byte PUT, LOCK, PUT with `If:`, PROPPATCH, UNLOCK,
  logged in https://github.com/mar10/wsgidav/issues/332 ; the LOCK headers (no Depth,
  `Timeout: Second-3600`) captured in https://github.com/swisspol/GCDWebServer/issues/319 ;
  the Win32 PROPPATCH body captured in https://github.com/9001/copyparty/issues/910
- Finder: Apple's webdavfs source, mount.tproj/webdav_network.c
  (https://github.com/apple-oss-distributions/webdavfs , webdavfs-403): OPTIONS for the
  DAV level, the PROPFIND bodies (stat, statfs quota, readdir with appledoubleheader,
  fsync getetag), 0-byte PUT on create, LOCK with owner http://www.apple.com/webdav_fs/,
  chunked PUT with X-Expected-Entity-Length and `If: (<token>)`, MOVE without Overwrite;
  chunked PUT bodies captured in https://github.com/nextcloud/all-in-one/issues/4582
- /work/shared/research/reliability.md sections 5.1 (Windows) and 5.2 (Finder).
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import unquote

import requests

from tests.support.servers import RunningServer

DAV = "{DAV:}"
MS = "{urn:schemas-microsoft-com:}"
APPLE = "{http://www.apple.com/webdav_fs/props/}"
WINDOWS_AGENT = "Microsoft-WebDAV-MiniRedir/10.0.19045"
FINDER_AGENT = "WebDAVFS/3.0.0 (03008000) Darwin/21.1.0 (x86_64)"
XML_TYPE = 'text/xml; charset="utf-8"'
Props = dict[str, dict[str, tuple[int, ET.Element]]]

# Windows browse: the DAV props plus the Win32 ones in Microsoft's namespace ([MS-WDVME]).
WINDOWS_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:">'
    '<D:prop xmlns:Z="urn:schemas-microsoft-com:"><D:displayname/><D:getcontentlength/>'
    "<D:getlastmodified/><D:creationdate/><D:resourcetype/><D:getcontenttype/>"
    "<Z:Win32CreationTime/><Z:Win32LastAccessTime/><Z:Win32LastModifiedTime/>"
    "<Z:Win32FileAttributes/></D:prop></D:propfind>"
)
WINDOWS_QUOTA = (
    '<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop>'
    "<D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"
)
WINDOWS_LOCK = (
    '<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "<D:owner><D:href>WORKSTATION\\alice</D:href></D:owner></D:lockinfo>"
)
# The body copyparty#910 captured from Explorer after an upload (values are ours).
WIN32_TIMES = {
    "Win32CreationTime": "Thu, 09 Oct 2025 17:54:43 GMT",
    "Win32LastAccessTime": "Thu, 09 Oct 2025 17:55:31 GMT",
    "Win32LastModifiedTime": "Wed, 08 Oct 2025 11:22:33 GMT",
    "Win32FileAttributes": "00000020",
}
# Finder bodies, as in webdavfs' webdav_network.c (stat, statfs, readdir, fsync).
FINDER_STAT = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:">\n<D:prop>\n'
    "<D:getlastmodified/>\n<D:getcontentlength/>\n<D:creationdate/>\n<D:resourcetype/>\n"
    "</D:prop>\n</D:propfind>\n"
)
FINDER_STATFS = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:">\n<D:prop>\n'
    "<D:quota-available-bytes/>\n<D:quota-used-bytes/>\n<D:quota/>\n<D:quotaused/>\n"
    "</D:prop>\n</D:propfind>\n"
)
FINDER_READDIR = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:">\n'
    '<D:prop xmlns:A="http://www.apple.com/webdav_fs/props/">\n'
    "<D:getlastmodified/>\n<D:getcontentlength/>\n<D:creationdate/>\n<D:resourcetype/>\n"
    "<A:appledoubleheader/>\n</D:prop>\n</D:propfind>\n"
)
FINDER_FSYNC = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:">\n<D:prop>\n'
    "<D:getlastmodified/>\n<D:getetag/>\n</D:prop>\n</D:propfind>\n"
)
FINDER_LOCK = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:lockinfo xmlns:D="DAV:">\n'
    "<D:lockscope><D:exclusive/></D:lockscope>\n<D:locktype><D:write/></D:locktype>\n"
    "<D:owner>\n<D:href>http://www.apple.com/webdav_fs/</D:href>\n</D:owner>\n"
    "</D:lockinfo>\n"
)


def _client(server: RunningServer, agent: str) -> requests.Session:
    session = server.client()
    session.headers["User-Agent"] = agent
    return session


def _multistatus(response: requests.Response) -> Props:
    """{href: {prop tag: (status code, element)}} of a 207 (fails the test otherwise)."""
    assert response.status_code == 207, (response.status_code, response.text[:500])
    result: Props = {}
    for item in ET.fromstring(response.content).iter(f"{DAV}response"):
        props = result.setdefault(item.findtext(f"{DAV}href") or "", {})
        for propstat in item.iter(f"{DAV}propstat"):
            code = int((propstat.findtext(f"{DAV}status") or "HTTP/1.1 0").split()[1])
            for prop in propstat.iter(f"{DAV}prop"):
                props.update({child.tag: (code, child) for child in prop})
    return result


def _propfind(session: requests.Session, url: str, body: str, depth: str) -> Props:
    headers = {"Depth": depth, "Content-Type": XML_TYPE}
    return _multistatus(session.request("PROPFIND", url, data=body, headers=headers))


def _found(props: dict[str, tuple[int, ET.Element]], tag: str) -> ET.Element:
    """The element of a property answered 200 (fails the test otherwise)."""
    code, element = props.get(tag, (0, ET.Element("missing")))
    assert code == 200, (tag, code)
    return element


def _is_collection(props: dict[str, tuple[int, ET.Element]]) -> bool:
    return _found(props, f"{DAV}resourcetype").find(f"{DAV}collection") is not None


def _only(result: Props) -> dict[str, tuple[int, ET.Element]]:
    assert len(result) == 1, sorted(result)
    return next(iter(result.values()))


def _lock(session: requests.Session, url: str, body: str, **headers: str) -> str:
    """LOCK `url`; return the token after checking it against the body's lockdiscovery."""
    headers["Content-Type"] = XML_TYPE
    response = session.request("LOCK", url, data=body, headers=headers)
    assert response.status_code in (200, 201), (response.status_code, response.text[:300])
    token = response.headers["Lock-Token"].strip("<>")
    assert token.startswith("opaquelocktoken:")
    found = ET.fromstring(response.content).findtext(f".//{DAV}locktoken/{DAV}href")
    assert found == token
    return token


def _unlock(session: requests.Session, url: str, token: str) -> None:
    response = session.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert response.status_code == 204, response.status_code


def _names(session: requests.Session, url: str, body: str) -> dict[str, int]:
    """{name: size} of the files in the collection `url` (PROPFIND Depth 1 with `body`)."""
    listing = _propfind(session, url, body, "1")
    sizes = {}
    for href, props in listing.items():
        name = unquote(href.rstrip("/").rsplit("/", 1)[-1])
        if not _is_collection(props):
            sizes[name] = int(_found(props, f"{DAV}getcontentlength").text or "0")
    return sizes


# ----------------------------------------------------------------------------- Windows


def test_windows_probes_the_server_root_with_options(server: RunningServer) -> None:
    """Explorer sends `OPTIONS /` to the server root, first as DavClnt without
    credentials, then as the mini-redirector, and caches a verdict without `DAV:` as
    "not WebDAV" until reboot (nextcloud/server#2986, filestash#669)."""
    for agent in ("DavClnt", WINDOWS_AGENT):
        root = requests.options(server.base + "/", headers={"User-Agent": agent})
        assert root.status_code == 200, root.status_code
        assert {"1", "2"} <= {v.strip() for v in root.headers["DAV"].split(",")}
        assert root.headers["MS-Author-Via"] == "DAV"
    anonymous = requests.options(server.dav, headers={"User-Agent": WINDOWS_AGENT})
    assert anonymous.status_code == 401
    # Windows refuses Basic over plain HTTP by default (BasicAuthLevel 1), so Digest
    # must be offered; Basic stays for HTTPS and app passwords.
    challenges = anonymous.headers["WWW-Authenticate"]
    assert challenges.startswith("Digest") and "Basic realm=" in challenges
    share = _client(server, WINDOWS_AGENT).options(server.dav)
    assert share.status_code == 200
    assert {"1", "2"} <= {v.strip() for v in share.headers["DAV"].split(",")}
    assert share.headers["MS-Author-Via"] == "DAV"
    assert {"LOCK", "UNLOCK", "PROPPATCH"} <= {m.strip() for m in share.headers["Allow"].split(",")}
    landing = requests.get(server.base + "/")
    assert landing.status_code == 200 and "/dav/" in landing.text


def test_windows_browses_with_win32_props_and_quota(server: RunningServer) -> None:
    """Mapping the drive: PROPFIND Depth 0 with an empty body (allprop, wsgidav#332's
    log), a Depth 1 listing asking for the Win32 props, and the RFC 4331 quota props
    Explorer shows as free space."""
    client = _client(server, WINDOWS_AGENT)
    assert client.request("MKCOL", server.url("Docs")).status_code == 201
    assert client.put(server.url("readme.txt"), data=b"12345").status_code == 201
    share = client.request("PROPFIND", server.dav, headers={"Depth": "0"})
    assert _is_collection(_only(_multistatus(share)))
    listing = _propfind(client, server.dav, WINDOWS_PROPFIND, "1")
    assert len(listing) == 3, sorted(listing)
    readme = listing["/dav/readme.txt"]
    assert _found(readme, f"{DAV}displayname").text == "readme.txt"
    assert _found(readme, f"{DAV}getcontentlength").text == "5"
    assert _found(readme, f"{DAV}getlastmodified").text
    # Win32 times a client never set answer 404 in their own propstat, not an error.
    assert readme[f"{MS}Win32CreationTime"][0] == 404
    assert _is_collection(listing["/dav/Docs/"])
    quota = _only(_propfind(client, server.dav, WINDOWS_QUOTA, "0"))
    assert int(_found(quota, f"{DAV}quota-used-bytes").text or "-1") == 5
    assert int(_found(quota, f"{DAV}quota-available-bytes").text or "0") > 0


def _windows_save(client: requests.Session, url: str, body: bytes) -> str:
    """Explorer's copy-in/overwrite of one file (wsgidav#332): a 0-byte PUT when the
    file is new, LOCK (no Depth, Timeout Second-3600: GCDWebServer#319), PUT of the
    content with the token in `If:`, PROPPATCH of the Win32 props; returns the token."""
    if client.request("PROPFIND", url, headers={"Depth": "0"}).status_code == 404:
        assert client.put(url, data=b"").status_code == 201
    token = _lock(client, url, WINDOWS_LOCK, Timeout="Second-3600")
    other = requests.put(url, data=b"intruder", auth=client.auth)
    assert other.status_code == 423, "a write without the token must be refused"
    stored = client.put(url, data=body, headers={"If": f"(<{token}>)"})
    assert stored.status_code == 204, stored.status_code
    patch = "".join(f"<Z:{k}>{v}</Z:{k}>" for k, v in WIN32_TIMES.items())
    answer = client.request(
        "PROPPATCH",
        url,
        headers={"If": f"(<{token}>)", "Content-Type": XML_TYPE},
        data='<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>{patch}</D:prop></D:set>'
        "</D:propertyupdate>",
    )
    statuses = {tag: code for tag, (code, _) in _only(_multistatus(answer)).items()}
    assert statuses == {f"{MS}{name}": 200 for name in WIN32_TIMES}, statuses
    return token


def test_windows_copy_in_locks_and_keeps_win32_props(server: RunningServer) -> None:
    """Copy in, then read back what Explorer stored: the Win32 values persist and
    Win32LastModifiedTime is the file's modification time."""
    client = _client(server, WINDOWS_AGENT)
    url = server.url("Report 2025.docx")
    assert client.request("PROPFIND", url, headers={"Depth": "0"}).status_code == 404
    body = random.Random(1).randbytes(300_000)
    token = _windows_save(client, url, body)
    _unlock(client, url, token)
    props = _only(_propfind(client, url, WINDOWS_PROPFIND, "0"))
    for name, value in WIN32_TIMES.items():
        assert _found(props, f"{MS}{name}").text == value, name
    assert _found(props, f"{DAV}getlastmodified").text == WIN32_TIMES["Win32LastModifiedTime"]
    assert _found(props, f"{DAV}getcontentlength").text == str(len(body))
    assert client.get(url).content == body
    assert requests.put(url, data=b"after unlock", auth=client.auth).status_code == 204


def test_windows_overwrite_rename_and_delete(server: RunningServer) -> None:
    """Overwrite in place under a lock, rename (MOVE, Overwrite: F, then over an existing
    name with Overwrite: T), an Office lock-null owner file, and DELETE."""
    client = _client(server, WINDOWS_AGENT)
    url = server.url("notes.txt")
    _unlock(client, url, _windows_save(client, url, b"first version"))
    _unlock(client, url, _windows_save(client, url, b"second, longer version"))
    assert client.get(url).content == b"second, longer version"
    owner = server.url("~$notes.txt")
    owner_token = _lock(client, owner, WINDOWS_LOCK, Timeout="Second-3600")
    assert client.get(owner).content == b"", "LOCK on an unmapped URL creates an empty file"
    assert client.delete(owner, headers={"If": f"(<{owner_token}>)"}).status_code == 204
    renamed = server.url("renamed.txt")
    move = {"Destination": renamed, "Overwrite": "F"}
    assert client.request("MOVE", url, headers=move).status_code == 201
    assert client.get(url).status_code == 404
    assert client.put(url, data=b"newer").status_code == 201
    assert client.request("MOVE", url, headers=move).status_code == 412
    replace = {"Destination": renamed, "Overwrite": "T"}
    assert client.request("MOVE", url, headers=replace).status_code == 204
    assert client.get(renamed).content == b"newer"
    assert client.delete(renamed).status_code == 204
    assert client.get(renamed).status_code == 404
    assert _names(client, server.dav, WINDOWS_PROPFIND) == {}


# ------------------------------------------------------------------------------ Finder


def _finder_put(client: requests.Session, url: str, body: bytes, token: str) -> None:
    """webdavfs' PUT: chunked body, X-Expected-Entity-Length, the lock token in `If:`."""

    def blocks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    headers = {"If": f"(<{token}>)", "Accept": "*/*"}
    if body:
        headers["X-Expected-Entity-Length"] = str(len(body))
    response = client.put(url, data=blocks(), headers=headers)
    assert response.status_code in (200, 201, 204), response.status_code
    assert response.request.headers.get("Transfer-Encoding") == "chunked"


def _finder_create(client: requests.Session, url: str, body: bytes) -> str:
    """Finder's copy of one new file: 0-byte PUT (network_create), LOCK (Depth 0,
    Timeout Second-600), chunked PUT with the token; returns the lock token."""
    assert client.put(url, data=b"").status_code == 201
    token = _lock(client, url, FINDER_LOCK, Depth="0", Timeout="Second-600")
    _finder_put(client, url, body, token)
    return token


def _appledouble(size: int) -> bytes:
    """An AppleDouble `._` file: magic 0x00051607, version 2, then padding."""
    return b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + bytes(size - 24)


def test_finder_mounts_and_reads_quota(server: RunningServer) -> None:
    """Mount: OPTIONS for the DAV level (read-only mount without class 2), stat of the
    root, statfs quota, readdir with appledoubleheader, and the `._` probe storm."""
    client = _client(server, FINDER_AGENT)
    options = client.options(server.dav)
    assert options.status_code == 200
    assert "2" in {v.strip() for v in options.headers["DAV"].split(",")}
    assert _is_collection(_only(_propfind(client, server.dav, FINDER_STAT, "0")))
    statfs = _only(_propfind(client, server.dav, FINDER_STATFS, "0"))
    assert int(_found(statfs, f"{DAV}quota-available-bytes").text or "0") > 0
    assert int(_found(statfs, f"{DAV}quota-used-bytes").text or "-1") == 0
    assert client.put(server.url("a.txt"), data=b"abc").status_code == 201
    listing = _propfind(client, server.dav, FINDER_READDIR, "1")
    entry = listing["/dav/a.txt"]
    assert _found(entry, f"{DAV}getcontentlength").text == "3"
    assert entry[f"{APPLE}appledoubleheader"][0] == 404
    for probe in ("._.", "._a.txt", ".DS_Store"):
        missing = client.request("PROPFIND", server.url(probe), headers={"Depth": "0"})
        assert missing.status_code == 404, (probe, missing.status_code)


def test_finder_copy_in_with_appledouble_and_ds_store(server: RunningServer) -> None:
    """Drag-copy of a file with extended attributes into a folder: the file, its `._`
    AppleDouble twin and the folder's `.DS_Store`, each created, locked, written
    chunked, checked with the fsync PROPFIND, then unlocked; all bytes identical."""
    client = _client(server, FINDER_AGENT)
    assert client.request("MKCOL", server.url("Photos")).status_code == 201
    files = {
        "Photos/photo 1.jpg": random.Random(2).randbytes(3 * 1024 * 1024 + 5),
        "Photos/._photo 1.jpg": _appledouble(4096),
        "Photos/.DS_Store": random.Random(3).randbytes(6148),
    }
    for name, body in files.items():
        url = server.url(name)
        token = _finder_create(client, url, body)
        fsync = _only(_propfind(client, url, FINDER_FSYNC, "0"))
        etag = _found(fsync, f"{DAV}getetag").text or ""
        _unlock(client, url, token)
        got = client.get(url)
        assert got.content == body, name
        assert got.headers["ETag"].strip('"') == etag.strip('"')
        # Finder revalidates its cache with the etag it learned from PROPFIND.
        cached = client.get(url, headers={"If-None-Match": etag})
        assert cached.status_code == 304, name
    listing = _names(client, server.url("Photos/"), FINDER_READDIR)
    assert listing == {name.split("/")[1]: len(body) for name, body in files.items()}


def test_finder_short_chunked_body_is_refused(server: RunningServer) -> None:
    """A chunked body shorter than X-Expected-Entity-Length (a proxy cut it) must not
    be stored as a short file: reliability.md 2.7, nextcloud/all-in-one#4582."""
    client = _client(server, FINDER_AGENT)
    url = server.url("cut.bin")
    token = _finder_create(client, url, b"original content")
    cut = client.put(
        url,
        data=iter([b"only part"]),
        headers={"If": f"(<{token}>)", "X-Expected-Entity-Length": "1000"},
    )
    assert cut.status_code == 400, cut.status_code
    _unlock(client, url, token)
    assert client.get(url).content == b"original content"


def test_finder_overwrite_rename_and_delete(server: RunningServer) -> None:
    """Replace in place under a lock, rename with MOVE (webdavfs sends no Overwrite
    header, so T applies), an app's atomic save (MOVE over the existing name), then the
    deletes Finder sends with the token when it still holds a lock."""
    client = _client(server, FINDER_AGENT)
    url, twin = server.url("doc.txt"), server.url("._doc.txt")
    _unlock(client, url, _finder_create(client, url, b"v1"))
    _unlock(client, twin, _finder_create(client, twin, _appledouble(82)))
    token = _lock(client, url, FINDER_LOCK, Depth="0", Timeout="Second-600")
    _finder_put(client, url, b"version two", token)
    _unlock(client, url, token)
    assert client.get(url).content == b"version two"
    for source, target in ((url, "Doc.txt"), (twin, "._Doc.txt")):
        moved = client.request("MOVE", source, headers={"Destination": server.url(target)})
        assert moved.status_code == 201, (target, moved.status_code)
        assert client.get(source).status_code == 404
    temp = server.url("Doc.txt.sb-1234")
    _unlock(client, temp, _finder_create(client, temp, b"saved atomically"))
    replaced = client.request("MOVE", temp, headers={"Destination": server.url("Doc.txt")})
    assert replaced.status_code == 204
    assert client.get(server.url("Doc.txt")).content == b"saved atomically"
    final = server.url("Doc.txt")
    token = _lock(client, final, FINDER_LOCK, Depth="0", Timeout="Second-600")
    assert client.delete(final).status_code == 423, "DELETE without the token is refused"
    assert client.delete(final, headers={"If": f"(<{token}>)"}).status_code == 204
    assert client.delete(server.url("._Doc.txt")).status_code == 204
    assert _names(client, server.dav, FINDER_READDIR) == {}
