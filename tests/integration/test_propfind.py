"""The Depth 0/1 PROPFIND renderer (`davserver.dav.propfind`) answers what WsgiDAV answers.

Each case is asked twice of the same live server: once through the renderer and once
with it switched off (WsgiDAV's own PROPFIND), and the two multistatus bodies must carry
the same properties with the same statuses and values, namespace prefixes aside.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import requests

from davserver.dav import propfind
from tests.support.dav import put
from tests.support.servers import RunningServer

ALLPROP = b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
NAMED = (
    b'<D:propfind xmlns:D="DAV:" xmlns:Z="http://example.com/ns"'
    b' xmlns:W="urn:schemas-microsoft-com:"><D:prop><D:getetag/><D:resourcetype/>'
    b"<Z:color/><Z:missing/><D:getcontentlength/><W:Win32LastModifiedTime/>"
    b"<W:Win32CreationTime/><D:lockdiscovery/><D:getcontenttype/><D:displayname/>"
    b"</D:prop></D:propfind>"
)
COLOR = (
    b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="http://example.com/ns"><D:set><D:prop>'
    b"<Z:color>red &amp; <Z:b>blue</Z:b></Z:color></D:prop></D:set></D:propertyupdate>"
)
CREATED = (
    b'<D:propertyupdate xmlns:D="DAV:" xmlns:W="urn:schemas-microsoft-com:"><D:set><D:prop>'
    b"<W:Win32CreationTime>Wed, 01 Jan 2020 00:00:00 GMT</W:Win32CreationTime>"
    b"</D:prop></D:set></D:propertyupdate>"
)
LOCK = (
    b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"
)
Answer = dict[str, dict[str, tuple[str, str]]]


def _structure(element: ET.Element) -> str:
    """An element as (tag, text, children), which ignores namespace prefixes."""
    children = ", ".join(_structure(child) for child in element)
    return f"({element.tag}, {(element.text or '').strip()!r}, [{children}])"


def _answer(response: requests.Response) -> Answer:
    """{href: {property: (status, structure)}} of a 207 body."""
    assert response.status_code == 207, (response.status_code, response.text[:300])
    answer: Answer = {}
    for item in ET.fromstring(response.content).iter("{DAV:}response"):
        props = answer.setdefault(item.findtext("{DAV:}href") or "", {})
        for propstat in item.iter("{DAV:}propstat"):
            status = propstat.findtext("{DAV:}status") or ""
            for prop in propstat.find("{DAV:}prop") or []:
                # free space and lock lifetimes move between the two requests
                value = re.sub(r"Second-\d+", "Second-N", _structure(prop))
                if prop.tag == "{DAV:}quota-available-bytes":
                    value = "free space"
                props[prop.tag] = (status, value)
    return answer


def _without_file_quota(answer: Answer) -> Answer:
    """Drop quota props of files: the one intended difference (404 here, WsgiDAV 200)."""
    for href, props in answer.items():
        if not href.endswith("/"):
            props.pop("{DAV:}quota-used-bytes", None)
            props.pop("{DAV:}quota-available-bytes", None)
    return answer


def _fill(server: RunningServer) -> requests.Session:
    client = server.client()
    assert client.request("MKCOL", server.url("d/")).status_code == 201
    assert client.request("MKCOL", server.url("d/sub dir/")).status_code == 201
    put(client, server.url("d/a&b <c>.txt"), b"hello")
    put(client, server.url("d/é ü.bin"), b"x" * 10)
    put(client, server.url("d/empty"), b"")
    for body in (COLOR, CREATED):
        assert client.request("PROPPATCH", server.url("d/empty"), data=body).status_code == 207
    locked = client.request("LOCK", server.url("d/é ü.bin"), data=LOCK)
    assert locked.status_code == 200
    return client


@pytest.mark.parametrize("body", [b"", ALLPROP, NAMED], ids=["empty", "allprop", "named"])
def test_renderer_answers_like_wsgidav(
    server: RunningServer, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _fill(server)
    for path in ("d/", "d/empty", "d/é ü.bin", "d/sub dir/"):
        for depth in ("0", "1"):

            def ask(client: requests.Session = client, path: str = path, depth: str = depth) -> Any:
                url = server.url(path)
                return client.request("PROPFIND", url, data=body, headers={"Depth": depth})

            fast = _without_file_quota(_answer(ask()))
            with monkeypatch.context() as patch:
                patch.setattr(propfind, "render", lambda *_args: None)
                slow = _without_file_quota(_answer(ask()))
            assert fast == slow, (path, depth)
            assert len(fast) == (5 if path == "d/" and depth == "1" else 1)


def test_only_plain_files_skip_the_per_property_renderer(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files without dead properties or locks are rendered in one string; the file with
    dead properties, the locked one and the folders go property by property."""
    client = _fill(server)
    generic: list[str] = []
    per_property = propfind.resource_response

    def recording(resource: Any, *args: Any) -> Any:
        generic.append(resource.name)
        return per_property(resource, *args)

    monkeypatch.setattr(propfind, "resource_response", recording)
    answer = client.request("PROPFIND", server.url("d/"), data=ALLPROP, headers={"Depth": "1"})
    assert len(_answer(answer)) == 5
    assert sorted(generic) == sorted(["d", "sub dir", "empty", "é ü.bin"])
