"""Small WebDAV helpers over `requests` for the integration tests."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import requests

from davserver.settings import Settings
from providers.chunker import FastCDCChunker
from providers.filestore import content_digest

DAV = "{DAV:}"
# An exclusive write LOCK request body.
LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>sharing</D:owner></D:lockinfo>"""


def propfind(session: requests.Session, url: str, depth: str = "1") -> dict[str, dict[str, str]]:
    """PROPFIND allprop: {href: {prop tag: text}} (fails the test on a non-207)."""
    response = session.request("PROPFIND", url, headers={"Depth": depth})
    assert response.status_code == 207, (response.status_code, response.text[:500])
    result: dict[str, dict[str, str]] = {}
    for item in ET.fromstring(response.content).iter(f"{DAV}response"):
        href = item.findtext(f"{DAV}href") or ""
        props: dict[str, str] = {}
        for prop in item.iter(f"{DAV}prop"):
            for child in prop:
                props[child.tag] = child.text or ""
        result[href] = props
    return result


def put(session: requests.Session, url: str, body: bytes, **headers: str) -> requests.Response:
    response = session.put(url, data=body, headers=headers)
    assert response.status_code in (201, 204), (response.status_code, response.text[:300])
    return response


def content_etag(body: bytes) -> str:
    """The strong ETag davserver serves for `body` with the default chunker (quoted)."""
    defaults = Settings()
    chunker = FastCDCChunker(
        defaults.chunk_min_size, defaults.chunk_avg_size, defaults.chunk_max_size
    )
    chunks = (hashlib.sha256(chunk).hexdigest() for chunk in chunker.split([body]))
    return f'"{content_digest(chunks)}"'
