"""`/api/v1/shares` through a real server, on both stacks: create, list and revoke share
links, every field and error, and the links made here working at once (web and WebDAV)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.support.api import answer, api, error
from tests.support.servers import RunningServer

LINK_KEYS = {
    "id",
    "path",
    "perm",
    "token",
    "url",
    "expires_at",
    "max_downloads",
    "downloads",
    "password",
    "state",
    "created_at",
}


@pytest.fixture
def bob(server: RunningServer) -> RunningServer:
    """bob with /proj/a.txt, and amy; a grant of amy's /theirs to bob."""
    for name in ("bob", "amy"):
        server.add_user(name, f"{name}-pass")
    session = server.client("bob")
    assert session.request("MKCOL", server.url("proj")).status_code == 201
    assert session.put(server.url("proj/a.txt"), data=b"shared bytes").status_code == 201
    assert server.client("amy").request("MKCOL", server.url("theirs")).status_code == 201
    server.services.catalog.grants.grant("amy", ["theirs"], "bob", "rw")
    return server


def create(server: RunningServer, body: Any, user: str = "bob") -> requests.Response:
    return server.client(user).post(api(server, "shares"), json=body)


def test_create_list_and_revoke(bob: RunningServer) -> None:
    assert answer(bob.client("bob").get(api(bob, "shares")), 200) == []
    before = time.time()
    made = answer(create(bob, {"path": "/proj"}), 201)
    assert set(made) == LINK_KEYS
    assert made["path"] == "/proj" and made["perm"] == "download"
    assert made["expires_at"] is None and made["max_downloads"] is None
    assert made["downloads"] == 0 and made["password"] is False and made["state"] == "live"
    assert made["url"] == f"{bob.base}/s/{made['token']}"
    assert before - 1 <= made["created_at"] <= time.time() + 1

    full = {
        "path": "proj/a.txt",
        "perm": "view",
        "expires_in": 3600,
        "password": "link-pass",
        "max_downloads": 3,
    }
    second = answer(create(bob, full), 201)
    assert second["path"] == "/proj/a.txt" and second["perm"] == "view"
    assert before + 3600 - 1 <= second["expires_at"] <= time.time() + 3601
    assert second["password"] is True and second["max_downloads"] == 3
    at = time.time() + 86400
    third = answer(create(bob, {"path": "/proj", "perm": "edit", "expires_at": at}), 201)
    assert third["expires_at"] == pytest.approx(at)

    listed = answer(bob.client("bob").get(api(bob, "shares")), 200)
    assert [link["id"] for link in listed] == [made["id"], second["id"], third["id"]]
    assert listed[0] == made
    assert answer(bob.client("amy").get(api(bob, "shares")), 200) == []

    assert error(bob.client("amy").delete(api(bob, f"shares/{made['id']}")), 404)
    deleted = bob.client("bob").delete(api(bob, f"shares/{made['id']}"))
    assert deleted.status_code == 204 and deleted.content == b""
    assert error(bob.client("bob").delete(api(bob, f"shares/{made['id']}")), 404)
    states = {
        link["id"]: link["state"] for link in answer(bob.client("bob").get(api(bob, "shares")), 200)
    }
    assert states == {made["id"]: "revoked", second["id"]: "live", third["id"]: "live"}
    for bad in ("0", "x", "99999999999", str(third["id"] + 1)):
        assert error(bob.client("bob").delete(api(bob, f"shares/{bad}")), 404)


def test_links_made_here_work_at_once(bob: RunningServer) -> None:
    made = answer(create(bob, {"path": "/proj", "password": "link-pass"}), 201)
    dav = made["url"] + "/dav/"
    assert requests.get(dav + "a.txt", timeout=30).status_code == 401
    got = requests.get(dav + "a.txt", auth=("", "link-pass"), timeout=30)
    assert got.status_code == 200 and got.content == b"shared bytes"
    assert bob.client("bob").delete(api(bob, f"shares/{made['id']}")).status_code == 204
    assert requests.get(dav + "a.txt", auth=("", "link-pass"), timeout=30).status_code == 404
    assert requests.get(made["url"], timeout=30).status_code == 404


def test_states_follow_expiry_and_downloads(bob: RunningServer) -> None:
    made = answer(create(bob, {"path": "/proj", "expires_in": 60, "max_downloads": 1}), 201)
    got = requests.get(made["url"] + "/dav/a.txt", timeout=30)
    assert got.status_code == 200
    link = answer(bob.client("bob").get(api(bob, "shares")), 200)[0]
    assert link["downloads"] == 1 and link["state"] == "used"
    other = answer(create(bob, {"path": "/proj", "expires_in": 0.5}), 201)
    time.sleep(0.6)
    states = [link["state"] for link in answer(bob.client("bob").get(api(bob, "shares")), 200)]
    assert states == ["used", "expired"] and other["state"] == "live"


def test_errors(bob: RunningServer) -> None:
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "path"),
        ({"path": ""}, 400, "path"),
        ({"path": 3}, 400, "path"),
        ({"path": "/proj", "extra": 1}, 400, "extra"),
        ({"path": "/proj", "perm": "own"}, 400, "permission"),
        ({"path": "/proj", "perm": ""}, 400, "perm"),
        ({"path": "/proj", "expires_in": -5}, 400, "expires_in"),
        ({"path": "/proj", "expires_in": "1h"}, 400, "expires_in"),
        ({"path": "/proj", "expires_in": True}, 400, "expires_in"),
        ({"path": "/proj", "expires_at": 1000.0}, 400, "past"),
        ({"path": "/proj", "expires_in": 5, "expires_at": time.time() + 60}, 400, "not both"),
        ({"path": "/proj", "password": ""}, 400, "password"),
        ({"path": "/proj", "password": 1234}, 400, "password"),
        ({"path": "/proj", "max_downloads": 0}, 400, "max_downloads"),
        ({"path": "/proj", "max_downloads": 1.5}, 400, "max_downloads"),
        ({"path": "/proj/../etc"}, 400, "invalid name"),
        ({"path": "/nothing"}, 404, "nothing"),
        ({"path": "/Shared/theirs"}, 403, "Shared"),
        ({"path": "/"}, 409, "home"),
        ({"path": "/proj/a.txt", "perm": "edit"}, 409, "folder"),
        ({"path": "/proj/a.txt", "perm": "upload"}, 409, "folder"),
    ]
    for body, status, says in cases:
        reason = error(create(bob, body), status)
        assert says in reason, (body, reason)
    assert error(create(bob, [1, 2]), 400)
    raw = bob.client("bob").post(api(bob, "shares"), data=b"{not json", headers={"X": "y"})
    assert error(raw, 400)
    assert error(requests.get(api(bob, "shares"), timeout=30), 401)
    assert error(requests.post(api(bob, "shares"), json={"path": "/proj"}, timeout=30), 401)
    assert error(bob.client("bob").put(api(bob, "shares"), json={}), 405)
    assert error(bob.client("bob").post(api(bob, "shares/1"), json={}), 405)
    assert answer(bob.client("bob").get(api(bob, "shares")), 200) == []


def test_url_is_on_public_url_and_move_by_public_destination(make_server: Any) -> None:
    """With `public_url` set, links are on it whatever Host the request carried, and a
    MOVE whose Destination names the public address works (a proxy in front)."""
    server = make_server("embedded", public_url="https://dav.example.com/")
    server.add_user("bob", "bob-pass")
    session = server.client("bob")
    assert session.put(server.url("a.txt"), data=b"x").status_code == 201
    made = answer(create(server, {"path": "/a.txt"}), 201)
    assert made["url"] == f"https://dav.example.com/s/{made['token']}"
    listed = answer(server.client("bob").get(api(server, "shares")), 200)
    assert [link["url"] for link in listed] == [made["url"]]
    moved = session.request(
        "MOVE", server.url("a.txt"), headers={"Destination": "https://dav.example.com/dav/b.txt"}
    )
    assert moved.status_code == 201, moved.text
    assert session.get(server.url("b.txt")).content == b"x"
