"""Names keep the client's spelling and match normalised (reliability.md 4.6), on both
stacks: what macOS Finder and davfs2 need to recognise the NFD names they create.

A listing shows the spelling a name was created with; any spelling that is equal once
NFC-normalised reaches the same entry (GET, PUT, MOVE, MKCOL), and a lock taken
through one spelling guards, and is released through, the other.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote, urlsplit

import requests

from tests.support.dav import propfind, put
from tests.support.servers import RunningServer

NFC = unicodedata.normalize("NFC", "café.txt")
NFD = unicodedata.normalize("NFD", "café.txt")
LOCK = (
    b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"
)


def _url(server: RunningServer, path: str) -> str:
    """The URL of `path`, percent-encoded byte for byte (the spelling is kept)."""
    return server.url(quote(path))


def _names(client: requests.Session, url: str) -> list[str]:
    """The member names a Depth 1 PROPFIND of folder `url` lists, decoded, sorted."""
    base = unquote(urlsplit(url).path)
    hrefs = [unquote(urlsplit(href).path) for href in propfind(client, url)]
    return sorted(href[len(base) :].rstrip("/") for href in hrefs if href != base)


def _lock(client: requests.Session, url: str) -> str:
    response = client.request("LOCK", url, data=LOCK, headers={"Timeout": "Second-300"})
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.headers["Lock-Token"].strip("<>")


def test_listing_shows_the_spelling_used_at_creation(server: RunningServer) -> None:
    client = server.client()
    assert client.request("MKCOL", _url(server, "d/")).status_code == 201
    nfc_dir = unicodedata.normalize("NFC", "naïve dir")
    assert client.request("MKCOL", _url(server, f"d/{nfc_dir}/")).status_code == 201
    put(client, _url(server, f"d/{NFD}"), b"nfd bytes")
    assert _names(client, _url(server, "d/")) == sorted([NFD, nfc_dir])
    # A Depth 0 PROPFIND through the other spelling answers with the stored href.
    hrefs = list(propfind(client, _url(server, f"d/{NFC}"), depth="0"))
    assert [unquote(urlsplit(h).path).rsplit("/", 1)[1] for h in hrefs] == [NFD]


def test_either_spelling_reaches_the_same_file(server: RunningServer) -> None:
    client = server.client()
    put(client, _url(server, NFD), b"first")
    for name in (NFD, NFC):
        got = client.get(_url(server, name))
        assert (got.status_code, got.content) == (200, b"first")
    # PUT through the other spelling overwrites the file, which keeps its spelling.
    assert put(client, _url(server, NFC), b"second").status_code == 204
    assert _names(client, server.dav) == [NFD]
    assert client.get(_url(server, NFD)).content == b"second"
    # MKCOL of another spelling of an existing name is refused like the name itself.
    assert client.request("MKCOL", _url(server, NFC)).status_code == 405


def test_rename_that_only_changes_the_spelling(server: RunningServer) -> None:
    client = server.client()
    put(client, _url(server, NFC), b"kept")
    moved = client.request("MOVE", _url(server, NFC), headers={"Destination": _url(server, NFD)})
    assert moved.status_code == 204, moved.text[:300]
    assert _names(client, server.dav) == [NFD]
    assert client.get(_url(server, NFC)).content == b"kept"


def test_lock_through_one_spelling_guards_the_other(server: RunningServer) -> None:
    client = server.client()
    put(client, _url(server, NFD), b"v1")
    token = _lock(client, _url(server, NFD))
    assert client.put(_url(server, NFC), data=b"intruder").status_code == 423
    assert client.delete(_url(server, NFC)).status_code == 423
    with_token = client.put(_url(server, NFC), data=b"v2", headers={"If": f"(<{token}>)"})
    assert with_token.status_code == 204, with_token.text[:300]
    unlocked = client.request("UNLOCK", _url(server, NFC), headers={"Lock-Token": f"<{token}>"})
    assert unlocked.status_code == 204
    assert put(client, _url(server, NFC), b"v3").status_code == 204

    token = _lock(client, _url(server, NFC))
    assert client.put(_url(server, NFD), data=b"intruder").status_code == 423
    unlocked = client.request("UNLOCK", _url(server, NFD), headers={"Lock-Token": f"<{token}>"})
    assert unlocked.status_code == 204
    assert put(client, _url(server, NFD), b"v4").status_code == 204
    assert client.get(_url(server, NFC)).content == b"v4"
