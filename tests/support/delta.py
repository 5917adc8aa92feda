"""A minimal client of the delta API (docs/api.md) for the integration tests: cut with
the server's published parameters, check, send what is missing (through the server or
straight to S3, as the check answer says), commit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import requests

from providers.chunker import FastCDCChunker
from tests.support.api import answer, api
from tests.support.servers import RunningServer


@dataclass
class Pushed:
    """What a push sent (hashes, in order) and the commit's answer."""

    sent: list[str]
    commit: requests.Response


def cut(session: requests.Session, server: RunningServer, data: bytes) -> list[bytes]:
    """`data` cut into the server's blocks (parameters from /blocks/params)."""
    params = answer(session.get(api(server, "blocks/params")), 200)
    chunker = FastCDCChunker(params["min_size"], params["avg_size"], params["max_size"])
    assert chunker.params() == params["params"]
    return [bytes(c) for c in chunker.split([data])]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check(session: requests.Session, server: RunningServer, blocks: list[bytes]) -> Any:
    listed = [{"sha256": sha(b), "size": len(b)} for b in blocks]
    return answer(session.post(api(server, "blocks/check"), json={"blocks": listed}), 200)


def send(session: requests.Session, how: dict[str, Any], block: bytes) -> requests.Response:
    """Send one block as a check answer says (`auth`: with the session's login)."""
    sender = session if how["auth"] else requests
    return sender.request(how["method"], how["url"], data=block, headers=how["headers"])


def push(
    session: requests.Session, server: RunningServer, path: str, data: bytes, **fields: Any
) -> Pushed:
    """Check, send the missing blocks, commit `data` at `path`."""
    blocks = cut(session, server, data)
    found = check(session, server, blocks)
    by_hash = {sha(b): b for b in blocks}
    for chunk_hash in found["missing"]:
        sent = send(session, found["upload"][chunk_hash], by_hash[chunk_hash])
        assert sent.status_code in (200, 201), (sent.status_code, sent.text[:300])
    body = {"path": path, "blocks": [sha(b) for b in blocks], "size": len(data), **fields}
    return Pushed(found["missing"], session.post(api(server, "files/commit"), json=body))
