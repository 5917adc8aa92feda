"""`davserver grant`, `davserver revoke` and `davserver grants list` as subprocesses,
against a served catalog: a grant or revoke made by the CLI reaches the running
server's /dav/Shared/ (through the catalog's acl counter, within its poll delay)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.cli import Serve, cli_env, fails, ok
from tests.support.dav import propfind

GRANTED = re.compile(r"Granted '(r|rw)' on (\S+) of 'alice' to (\S+) \(grant (\d+)\)")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Serve]:
    """alice (with /projects/q3/r.txt), bob, and carl in group `team`, on a server."""
    ok(tmp_path, "db", "upgrade")  # a new store: admin commands never create one
    for name in ("alice", "bob", "carl"):
        ok(tmp_path, "user", "add", name, "--password-stdin", stdin=f"{name}-pass\n")
    ok(tmp_path, "group", "add", "team")
    ok(tmp_path, "group", "members", "team", "--add", "carl")
    server = Serve(tmp_path, cli_env())
    auth = ("alice", "alice-pass")
    for folder in ("projects", "projects/q3"):
        assert server.dav("MKCOL", folder, auth).status_code == 201
    assert server.dav("PUT", "projects/q3/r.txt", auth, data=b"report").status_code == 201
    yield server
    server.stop()


def shared(server: Serve, user: str) -> set[str]:
    """The names under the user's /dav/Shared/ (none when it is absent)."""
    session = requests.Session()
    session.auth = (user, f"{user}-pass")
    url = server.url + "Shared/"
    if session.request("PROPFIND", url, headers={"Depth": "0"}).status_code == 404:
        return set()
    hrefs = propfind(session, url, depth="1")
    return {h.rstrip("/").rsplit("/", 1)[1] for h in hrefs if h.rstrip("/") != "/dav/Shared"}


def eventually_shared(server: Serve, user: str, expected: set[str]) -> None:
    """Wait (a few seconds at most) until the user's Shared/ holds exactly `expected`."""
    deadline = time.monotonic() + 10
    while (seen := shared(server, user)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seen == expected


def table(cwd: Path, *args: str) -> list[list[str]]:
    """The rows of `grants list` split into cells (paths here have no spaces)."""
    lines = ok(cwd, "grants", "list", *args).splitlines()
    assert lines[0].split() == ["OWNER", "PATH", "GRANTEE", "PERM", "CREATED"]
    return [line.split() for line in lines[1:]]


def test_grant_list_and_revoke(tmp_path: Path, served: Serve) -> None:
    assert table(tmp_path) == []
    first = GRANTED.search(
        ok(tmp_path, "grant", "/projects/q3", "--owner", "alice", "--to", "bob", "--perm", "r")
    )
    assert first and first.groups()[:3] == ("r", "/projects/q3", "bob")
    eventually_shared(served, "bob", {"q3"})
    assert served.dav("GET", "Shared/q3/r.txt", ("bob", "bob-pass")).content == b"report"
    assert served.dav("PUT", "Shared/q3/new.txt", ("bob", "bob-pass"), data=b"x").status_code == 403

    team = GRANTED.search(
        ok(tmp_path, "grant", "projects", "--owner", "alice", "--to", "@team", "--perm", "rw")
    )
    assert team and team.groups()[:3] == ("rw", "/projects", "@team")
    again = GRANTED.search(
        ok(tmp_path, "grant", "/projects/q3/", "--owner", "alice", "--to", "bob", "--perm", "rw")
    )
    assert again and again.group(1) == "rw" and again.group(4) == first.group(4)  # same grant
    eventually_shared(served, "carl", {"projects"})

    rows = table(tmp_path)
    assert [row[:4] for row in rows] == [
        ["alice", "/projects/q3", "bob", "rw"],
        ["alice", "/projects", "@team", "rw"],
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", " ".join(r[4:])) for r in rows)
    assert [row[:4] for row in table(tmp_path, "--owner", "alice")] == [row[:4] for row in rows]
    assert table(tmp_path, "--owner", "bob") == []

    said = ok(tmp_path, "revoke", "/projects/q3", "--owner", "alice", "--to", "bob")
    assert "Revoked" in said and "/projects/q3" in said and "bob" in said
    eventually_shared(served, "bob", set())
    assert [row[2] for row in table(tmp_path)] == ["@team"]
    fails(tmp_path, "revoke", "/projects/q3", "--owner", "alice", "--to", "bob", says="not granted")
    ok(tmp_path, "revoke", "/projects", "--owner", "alice", "--to", "@team")
    eventually_shared(served, "carl", set())
    assert table(tmp_path) == []


def test_errors_are_one_line(tmp_path: Path, served: Serve) -> None:
    grant = ("grant", "--owner", "alice", "--to")
    fails(tmp_path, *grant, "bob", "--perm", "r", "/nothing", says="/nothing")
    fails(tmp_path, *grant, "nobody", "--perm", "r", "/projects", says="nobody")
    fails(tmp_path, *grant, "@nope", "--perm", "r", "/projects", says="nope")
    fails(tmp_path, *grant, "bob", "--perm", "x", "/projects", says="permission")
    fails(tmp_path, *grant, "bob", "--perm", "r", "/", says="home")
    fails(tmp_path, *grant, "alice", "--perm", "r", "/projects", says="owner")
    fails(tmp_path, *grant, "bob", "--perm", "r", "/projects/../etc", says="invalid name")
    fails(
        tmp_path, "grant", "/projects", "--owner", "eve", "--to", "bob", "--perm", "r", says="eve"
    )
    fails(tmp_path, "revoke", "/nothing", "--owner", "alice", "--to", "bob", says="/nothing")
    fails(tmp_path, "revoke", "/projects", "--owner", "alice", "--to", "nobody", says="nobody")
    fails(tmp_path, "revoke", "/projects", "--owner", "alice", "--to", "bob", says="not granted")
    assert table(tmp_path) == []
