"""The JSON API under /api/v1/ through a real server, on both stacks: every endpoint and
error status, authentication and throttling shared with WebDAV, and grants made here
showing under the grantee's /dav/Shared/ at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
from requests.auth import HTTPDigestAuth

from davserver.auth.passwords import generate_app_password, hash_password
from tests.support.api import answer, api, error
from tests.support.dav import propfind, put
from tests.support.servers import RunningServer


def schemes(response: requests.Response) -> list[str]:
    return [value.split()[0] for value in response.raw.headers.getlist("WWW-Authenticate")]


def shared_hrefs(server: RunningServer, user: str) -> set[str]:
    """The members of the user's /dav/Shared/ (PROPFIND Depth 1), without itself; none
    when there is no Shared/ (it only appears while the user has received something)."""
    client = server.client(user)
    probe = client.request("PROPFIND", server.url("Shared/"), headers={"Depth": "0"})
    if probe.status_code == 404:
        return set()
    listing = propfind(client, server.url("Shared/"), depth="1")
    return {href for href in listing if href.rstrip("/") != "/dav/Shared"}


def with_people(server: RunningServer) -> None:
    """bob (with /proj/a.txt), amy, and carl in group `team`."""
    for name in ("bob", "amy", "carl"):
        server.add_user(name, f"{name}-pass")
    groups = server.services.catalog.groups
    groups.create("team")
    groups.add_member("team", "carl")
    bob = server.client("bob")
    assert bob.request("MKCOL", server.url("proj")).status_code == 201
    put(bob, server.url("proj/a.txt"), b"shared bytes")


def test_me_and_how_to_log_in(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    anonymous = requests.get(api(server, "me"), timeout=30)
    assert error(anonymous, 401) == "authentication required"
    dav_anonymous = requests.request("PROPFIND", server.dav, timeout=30)
    assert dav_anonymous.status_code == 401
    assert schemes(anonymous) == schemes(dav_anonymous) == ["Digest", "Basic"]

    me = answer(server.client("bob").get(api(server, "me")), 200)
    assert set(me) == {
        "user",
        "quota_bytes",
        "used_bytes",
        "available_bytes",
        "current_bytes",
        "versions_bytes",
        "trash_bytes",
    }
    assert me["user"] == "bob" and me["quota_bytes"] is None and me["used_bytes"] == 0
    assert isinstance(me["available_bytes"], int) and me["available_bytes"] > 0

    server.services.catalog.users.set_quota("bob", 100_000)
    put(server.client("bob"), server.url("f.bin"), b"x" * 30_000)
    digest = requests.get(api(server, "me"), auth=HTTPDigestAuth("bob", "bob-pass"), timeout=30)
    me = answer(digest, 200)
    assert me["quota_bytes"] == 100_000 and me["used_bytes"] == 30_000
    assert me["available_bytes"] == 70_000

    key, app = generate_app_password()
    server.services.catalog.app_passwords.add("bob", key, hash_password(app), "phone")
    assert answer(requests.get(api(server, "me"), auth=("bob", app), timeout=30), 200)["user"]
    wrong = requests.get(api(server, "me"), auth=("bob", "wrong"), timeout=30)
    assert error(wrong, 401) == "authentication required"
    assert schemes(wrong) == ["Digest", "Basic"]
    unknown = requests.get(api(server, "me"), auth=("nobody", "wrong"), timeout=30)
    assert error(unknown, 401) == "authentication required"


def test_grant_list_share_and_revoke(server: RunningServer) -> None:
    with_people(server)
    bob, amy, carl = (server.client(name) for name in ("bob", "amy", "carl"))
    assert answer(bob.get(api(server, "grants")), 200) == []
    assert answer(amy.get(api(server, "shared")), 200) == []
    assert shared_hrefs(server, "amy") == set()

    made = answer(
        bob.post(api(server, "grants"), json={"path": "/proj", "to": "amy", "perm": "r"}), 201
    )
    assert {k: v for k, v in made.items() if k != "id" and k != "created_at"} == {
        "path": "/proj",
        "to": "amy",
        "perm": "r",
    }
    assert isinstance(made["id"], int) and isinstance(made["created_at"], float)
    # At once: no wait for the acl counter's poll.
    assert shared_hrefs(server, "amy") == {"/dav/Shared/proj/"}
    assert amy.get(server.url("Shared/proj/a.txt")).content == b"shared bytes"
    assert amy.put(server.url("Shared/proj/b.txt"), data=b"no").status_code == 403

    again = bob.post(api(server, "grants"), json={"path": "proj/", "to": "amy", "perm": "rw"})
    changed = answer(again, 200)
    assert changed["id"] == made["id"] and changed["perm"] == "rw"
    assert amy.put(server.url("Shared/proj/b.txt"), data=b"yes").status_code == 201
    team = answer(
        bob.post(api(server, "grants"), json={"path": "/proj/a.txt", "to": "@team", "perm": "r"}),
        201,
    )
    assert team["to"] == "@team" and team["path"] == "/proj/a.txt"

    listed = answer(bob.get(api(server, "grants")), 200)
    assert [(g["id"], g["path"], g["to"], g["perm"]) for g in listed] == [
        (made["id"], "/proj", "amy", "rw"),
        (team["id"], "/proj/a.txt", "@team", "r"),
    ]
    assert answer(amy.get(api(server, "grants")), 200) == []
    assert answer(amy.get(api(server, "shared")), 200) == [
        {"name": "proj", "owner": "bob", "perm": "rw", "kind": "folder"}
    ]
    assert answer(carl.get(api(server, "shared")), 200) == [
        {"name": "a.txt", "owner": "bob", "perm": "r", "kind": "file"}
    ]
    assert shared_hrefs(server, "carl") == {"/dav/Shared/a.txt"}

    # Only the owner withdraws a grant; another user's id is as good as none.
    assert error(amy.delete(api(server, f"grants/{made['id']}")), 404) == "no such grant"
    assert shared_hrefs(server, "amy") == {"/dav/Shared/proj/"}
    gone = bob.delete(api(server, f"grants/{made['id']}"))
    assert gone.status_code == 204 and gone.content == b""
    assert shared_hrefs(server, "amy") == set()
    assert answer(amy.get(api(server, "shared")), 200) == []
    assert amy.get(server.url("Shared/proj/a.txt")).status_code == 404
    assert error(bob.delete(api(server, f"grants/{made['id']}")), 404) == "no such grant"
    assert [g["id"] for g in answer(bob.get(api(server, "grants")), 200)] == [team["id"]]


def chunks(total: int) -> Iterator[bytes]:
    """A body sent with chunked transfer coding (no Content-Length)."""
    for _ in range(total // 8192):
        yield b"[" * 8192


def test_error_statuses(server: RunningServer) -> None:
    with_people(server)
    bob = server.client("bob")
    grants = api(server, "grants")

    def post(body: Any) -> requests.Response:
        return bob.post(grants, json=body)

    good = {"path": "/proj", "to": "amy", "perm": "r"}
    assert "JSON" in error(bob.post(grants, data=b"{not json"), 400)
    assert "JSON" in error(bob.post(grants, data=b"\xff\xfe\x00"), 400)
    assert "JSON" in error(bob.post(grants, data=b"[" * 50_000), 400)  # too deep
    assert "object" in error(post([good]), 400)
    assert "'perm'" in error(post({"path": "/proj", "to": "amy"}), 400)
    assert "'to'" in error(post({**good, "to": ""}), 400)
    assert "'path'" in error(post({**good, "path": 7}), 400)
    assert "'extra'" in error(post({**good, "extra": 1}), 400)
    assert "permission" in error(post({**good, "perm": "x"}), 400)
    assert error(post({**good, "path": "/proj/../etc"}), 400)
    assert "/nothing" in error(post({**good, "path": "/nothing"}), 404)
    assert "nobody" in error(post({**good, "to": "nobody"}), 404)
    assert "nope" in error(post({**good, "to": "@nope"}), 404)
    assert "home" in error(post({**good, "path": "/"}), 409)
    assert error(post({**good, "to": "bob"}), 409)
    assert "owner" in error(post({**good, "path": "/Shared/x"}), 403)
    assert "65536" in error(bob.post(grants, data=b" " * (64 * 1024 + 1)), 413)
    assert "65536" in error(bob.post(grants, data=chunks(80 * 1024)), 413)
    assert answer(
        bob.post(grants, data=b" " * 60_000 + b'{"path": "/proj", "to": "amy", "perm": "r"}'), 201
    )

    wrong_method = bob.put(grants, json=good)
    assert error(wrong_method, 405) and wrong_method.headers["Allow"] == "GET, POST"
    assert bob.get(api(server, "grants/1")).headers["Allow"] == "DELETE"
    assert bob.post(api(server, "me")).status_code == 405
    assert error(bob.get(api(server, "nothing")), 404) == "no such endpoint"
    assert error(bob.get(f"{server.base}/api/v1"), 404) == "no such endpoint"
    for bad_id in ("abc", "0", "-1", "99999999999999999999", "2147483648"):
        assert error(bob.delete(api(server, f"grants/{bad_id}")), 404) == "no such grant"
    assert [g["perm"] for g in answer(bob.get(grants), 200)] == ["r"]  # nothing else changed


def test_failed_logins_count_with_webdavs_and_get_429(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    per_user = server.settings.login_failures_per_user
    for attempt in range(per_user):
        if attempt % 2:
            wrong = requests.get(api(server, "me"), auth=("bob", "wrong"), timeout=30)
            assert error(wrong, 401) == "authentication required"
        else:
            dav = requests.request("PROPFIND", server.dav, auth=("bob", "wrong"), timeout=30)
            assert dav.status_code == 401
    blocked = requests.get(api(server, "me"), auth=("bob", "bob-pass"), timeout=30)
    assert "too many" in error(blocked, 429)
    assert 0 < int(blocked.headers["Retry-After"]) <= server.settings.login_failure_window
    digest = requests.get(api(server, "me"), auth=HTTPDigestAuth("bob", "bob-pass"), timeout=30)
    assert error(digest, 429)
    dav = requests.request("PROPFIND", server.dav, auth=("bob", "bob-pass"), timeout=30)
    assert dav.status_code == 429
    assert answer(server.client("admin").get(api(server, "me")), 200)["user"] == "admin"
