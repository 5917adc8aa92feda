"""`davserver share create|list|revoke` as subprocesses against a served catalog: a link
made by the CLI works at once on the running server (WebDAV at /s/<token>/dav/), and
a revoke ends it at once. Also `--expires` parsing and the printed base URL."""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from davserver.cli.output import CommandError
from davserver.cli.shares import base_url, parse_expiry
from davserver.settings import Settings
from tests.support.cli import Serve, cli_env, fails, ok

CREATED = re.compile(
    r"Created share link (\d+) \((\w+)\) to (\S+) of 'alice': (.*)\n"
    r"(/s/[\w.-]+)\n(?:(http://127\.0\.0\.1:8080/s/[\w.-]+)\n)?\Z"
)
HEADER = ["ID", "OWNER", "PATH", "PERM", "EXPIRES", "DOWNLOADS", "PASSWORD", "STATE", "URL"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Serve]:
    """alice (with /projects/r.txt) and bob, on a server."""
    ok(tmp_path, "db", "upgrade")  # a new store: admin commands never create one
    for name in ("alice", "bob"):
        ok(tmp_path, "user", "add", name, "--password-stdin", stdin=f"{name}-pass\n")
    server = Serve(tmp_path, cli_env())
    auth = ("alice", "alice-pass")
    assert server.dav("MKCOL", "projects", auth).status_code == 201
    assert server.dav("PUT", "projects/r.txt", auth, data=b"report").status_code == 201
    yield server
    server.stop()


def created(output: str) -> re.Match[str]:
    match = CREATED.match(output)
    assert match is not None, output
    return match


def table(cwd: Path, *args: str) -> list[dict[str, str]]:
    """The rows of `share list` (columns are at least two spaces apart; only EXPIRES
    holds a single space)."""
    lines = ok(cwd, "share", "list", *args).splitlines()
    assert re.split(r" {2,}", lines[0]) == HEADER
    return [dict(zip(HEADER, re.split(r" {2,}", line), strict=True)) for line in lines[1:]]


def dav_get(server: Serve, path: str, password: str | None = None) -> requests.Response:
    auth = ("anyone", password) if password else None
    return requests.get(f"http://127.0.0.1:{server.port}{path}", auth=auth, timeout=30)


def test_create_list_and_revoke(tmp_path: Path, served: Serve) -> None:
    assert table(tmp_path) == []
    first = created(ok(tmp_path, "share", "create", "/projects", "--owner", "alice"))
    assert first.group(2, 3, 4) == ("download", "/projects", "no expiry, no password")
    assert first.group(6) == "http://127.0.0.1:8080" + first.group(5)  # the configured address
    got = dav_get(served, first.group(5) + "/dav/r.txt")
    assert got.status_code == 200 and got.content == b"report"

    second = created(
        ok(
            tmp_path,
            *("share", "create", "projects/", "--owner", "alice", "--perm", "edit"),
            *("--expires", "7d", "--password-stdin", "--max-downloads", "5"),
            stdin="link pass\n",
        )
    )
    assert second.group(2, 3) == ("edit", "/projects")
    assert second.group(4).startswith("expires ") and "at most 5 downloads" in second.group(4)
    path = second.group(5)
    assert dav_get(served, path + "/dav/r.txt").status_code == 401
    assert dav_get(served, path + "/dav/r.txt", "link pass").content == b"report"
    put = requests.put(
        f"http://127.0.0.1:{served.port}{path}/dav/new.txt", data=b"n", auth=("", "link pass")
    )
    assert put.status_code == 201
    assert served.dav("GET", "projects/new.txt", ("alice", "alice-pass")).content == b"n"

    rows = table(tmp_path)
    assert [(r["ID"], r["OWNER"], r["PATH"], r["PERM"]) for r in rows] == [
        (first.group(1), "alice", "/projects", "download"),
        (second.group(1), "alice", "/projects", "edit"),
    ]
    assert rows[0]["EXPIRES"] == "never" and rows[0]["PASSWORD"] == "no"
    assert rows[0]["DOWNLOADS"] == "1/-" and rows[0]["STATE"] == "live"
    assert rows[0]["URL"] == first.group(6)
    expected = datetime.datetime.fromtimestamp(time.time() + 7 * 86400)
    assert rows[1]["EXPIRES"][:10] == expected.date().isoformat()
    assert rows[1]["DOWNLOADS"] == "1/5" and rows[1]["PASSWORD"] == "yes"
    assert table(tmp_path, "--owner", "bob") == []
    assert len(table(tmp_path, "--owner", "alice")) == 2

    said = ok(tmp_path, "share", "revoke", first.group(1), "--owner", "alice")
    assert said.strip() == f"Revoked share link {first.group(1)} to /projects of 'alice'"
    assert dav_get(served, first.group(5) + "/dav/r.txt").status_code == 404
    ok(tmp_path, "share", "revoke", second.group(1))  # an administrator: any owner
    assert dav_get(served, path + "/dav/r.txt", "link pass").status_code == 404
    assert [r["STATE"] for r in table(tmp_path)] == ["revoked", "revoked"]


def test_errors_are_one_line(tmp_path: Path, served: Serve) -> None:
    create = ("share", "create", "--owner", "alice")
    fails(tmp_path, *create, "/nothing", says="/nothing")
    fails(tmp_path, "share", "create", "/projects", "--owner", "eve", says="eve")
    fails(tmp_path, *create, "/", says="home")
    fails(tmp_path, *create, "/projects", "--perm", "own", says="permission")
    fails(tmp_path, *create, "/projects/r.txt", "--perm", "edit", says="folder")
    fails(tmp_path, *create, "/projects", "--expires", "soon", says="not a time")
    fails(tmp_path, *create, "/projects", "--expires", "2020-01-01", says="not in the future")
    fails(tmp_path, *create, "/projects", "--max-downloads", "0", says="at least 1")
    fails(tmp_path, *create, "/projects", "--password-stdin", stdin="\n", says="password")
    fails(tmp_path, *create, "/projects/../etc", says="invalid name")
    fails(tmp_path, "share", "revoke", "42", says="no live share link 42")
    link = created(ok(tmp_path, *create, "/projects")).group(1)
    fails(tmp_path, "share", "revoke", link, "--owner", "bob", says=f"{link} of 'bob'")
    ok(tmp_path, "share", "revoke", link)
    fails(tmp_path, "share", "revoke", link, says=f"no live share link {link}")


def test_expiry_and_base_url_parsing() -> None:
    now = 1_800_000_000.0
    for text, seconds in (("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800)):
        assert parse_expiry(text, now) == now + seconds
    assert parse_expiry("2W", now) == now + 14 * 86400
    local_midnight = datetime.datetime(2027, 3, 1).timestamp()
    assert parse_expiry("2027-03-01", now) == local_midnight
    assert parse_expiry("2027-03-01T18:00:00Z", now) == 1_803_859_200.0 + 18 * 3600
    for bad in ("0m", "soon", "7 days", "-1d", "2020-01-01"):
        with pytest.raises(CommandError):
            parse_expiry(bad, now)
    assert (
        base_url(Settings(host="files.example.org", port=8443)) == "http://files.example.org:8443"
    )
    assert base_url(Settings(host="::1", port=80)) == "http://[::1]:80"
    assert base_url(Settings(host="0.0.0.0")) == ""
