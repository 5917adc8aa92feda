"""`davserver user ...` and `davserver group ...` as subprocesses, against a served
catalog where it matters (logins, app passwords, removal with files)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPDigestAuth

from tests.support.cli import Serve, cli_env, fails, ok

APP_LINE = re.compile(r"App password (\d+) for 'bob', phone \(shown once\): (\S+)")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Serve]]:
    """Servers started by the test (appended by it); stopped afterwards."""
    started: list[Serve] = []
    yield started
    for server in started:
        server.stop()


def propfind(server: Serve, auth: object) -> int:
    answer = requests.request("PROPFIND", server.url, headers={"Depth": "0"}, auth=auth, timeout=30)
    return answer.status_code


def test_user_commands(tmp_path: Path) -> None:
    ok(tmp_path, "db", "upgrade")  # a new store: admin commands never create one
    ok(tmp_path, "user", "add", "bob", "--password-stdin", stdin="bob-pass\n")
    generated = ok(tmp_path, "user", "add", "amy")  # no terminal: generated, shown once
    assert re.search(r"Created user 'amy' with password: \S{12,}", generated)
    ok(tmp_path, "user", "passwd", "bob", "--password-stdin", stdin="new-pass\n")
    assert "10.0 GiB" in ok(tmp_path, "user", "quota", "bob", "10G")
    assert "500.0 MiB" in ok(tmp_path, "user", "quota", "amy", "500M")
    listing = ok(tmp_path, "user", "list").splitlines()
    assert listing[0].split() == ["NAME", "USED", "QUOTA", "DIGEST"]
    rows = {line.split()[0]: line.split() for line in listing[1:]}
    assert set(rows) == {"amy", "bob"}
    assert rows["bob"][-3:] == ["10.0", "GiB", "yes"] and rows["bob"][1:3] == ["0", "B"]
    assert "none" in ok(tmp_path, "user", "quota", "bob", "none")
    assert ok(tmp_path, "user", "quota", "bob", "1048576").strip().endswith("1.0 MiB")

    fails(tmp_path, "user", "quota", "bob", "10X", says="not a size")
    fails(tmp_path, "user", "quota", "nobody", "1G", says="nobody")
    fails(tmp_path, "user", "passwd", "nobody", "--password-stdin", stdin="x\n", says="nobody")
    fails(tmp_path, "user", "add", "bad:name", "--password-stdin", stdin="x\n", says="':'")
    fails(tmp_path, "user", "add", "eve", "--password-stdin", stdin="\n", says="empty password")
    app_shaped = "abcde-fghij-klmno-pqrst-uvwxy\n"
    fails(tmp_path, "user", "add", "eve", "--password-stdin", stdin=app_shaped, says="app password")
    assert "Removed user 'amy'" in ok(tmp_path, "user", "remove", "amy")
    fails(tmp_path, "user", "remove", "amy", says="amy")
    assert [r.split()[0] for r in ok(tmp_path, "user", "list").splitlines()[1:]] == ["bob"]


def test_group_commands(tmp_path: Path) -> None:
    ok(tmp_path, "db", "upgrade")  # a new store: admin commands never create one
    for name in ("ann", "bob"):
        ok(tmp_path, "user", "add", name, "--password-stdin", stdin="pw\n")
    ok(tmp_path, "group", "add", "team")
    ok(tmp_path, "group", "add", "ops")
    fails(tmp_path, "group", "add", "team", says="exists")
    fails(tmp_path, "group", "add", "@team", says="'@'")
    assert ok(tmp_path, "group", "list").split() == ["ops", "team"]
    members = ok(tmp_path, "group", "members", "team", "--add", "bob", "--add", "ann")
    assert members.split() == ["ann", "bob"]
    assert ok(tmp_path, "group", "members", "team", "--remove", "ann").split() == ["bob"]
    assert ok(tmp_path, "group", "members", "team").split() == ["bob"]
    fails(tmp_path, "group", "members", "team", "--add", "nobody", says="nobody")
    fails(tmp_path, "group", "members", "nope", says="nope")
    ok(tmp_path, "group", "remove", "team")
    assert ok(tmp_path, "group", "list").split() == ["ops"]
    fails(tmp_path, "group", "remove", "team", says="team")


def test_passwd_and_app_passwords_on_a_running_server(tmp_path: Path, served: list[Serve]) -> None:
    ok(tmp_path, "db", "upgrade")  # a new store: admin commands never create one
    ok(tmp_path, "user", "add", "bob", "--password-stdin", stdin="bob-pass\n")
    created = ok(tmp_path, "user", "app-password", "bob", "--label", "phone")
    match = APP_LINE.search(created)
    assert match, created
    app_id, app = match.groups()
    served.append(Serve(tmp_path, cli_env()))
    server = served[0]
    assert propfind(server, ("bob", app)) == 207
    assert propfind(server, ("bob", "bob-pass")) == 207
    assert propfind(server, HTTPDigestAuth("bob", "bob-pass")) == 207

    listing = ok(tmp_path, "user", "app-password", "bob", "--list").splitlines()
    assert listing[1].split()[0] == app_id and "active" in listing[1] and "phone" in listing[1]
    assert " - " not in listing[1]  # it has a last-used time now

    # Changed while the server runs: the old secrets stop working at once.
    ok(tmp_path, "user", "passwd", "bob", "--password-stdin", stdin="next-pass\n")
    assert propfind(server, ("bob", "bob-pass")) == 401
    assert propfind(server, HTTPDigestAuth("bob", "bob-pass")) == 401
    assert propfind(server, ("bob", "next-pass")) == 207
    assert propfind(server, HTTPDigestAuth("bob", "next-pass")) == 207
    assert propfind(server, ("bob", app)) == 207  # app passwords survive a passwd
    ok(tmp_path, "user", "app-password", "bob", "--revoke", app_id)
    assert propfind(server, ("bob", app)) == 401
    assert "revoked" in ok(tmp_path, "user", "app-password", "bob", "--list")
    fails(tmp_path, "user", "app-password", "bob", "--revoke", app_id, says=app_id)
    fails(tmp_path, "user", "app-password", "nobody", says="nobody")


def test_remove_keeps_files_unless_purged(tmp_path: Path, served: list[Serve]) -> None:
    ok(tmp_path, "db", "upgrade")  # a new store: admin commands never create one
    ok(tmp_path, "user", "add", "bob", "--password-stdin", stdin="bob-pass\n")
    served.append(Serve(tmp_path, cli_env()))
    auth = ("bob", "bob-pass")
    assert served[0].dav("MKCOL", "docs", auth).status_code == 201
    assert served[0].dav("PUT", "docs/a.bin", auth, data=b"x" * 50_000).status_code == 201
    assert served[0].stop() == 0

    fails(tmp_path, "user", "remove", "bob", says="--purge")
    assert "2 of their files and folders" in ok(tmp_path, "user", "remove", "bob", "--purge")
    dry = ok(tmp_path, "gc", "--grace", "0")
    counted = re.search(r"would delete (\d+) unreferenced chunks", dry)
    assert counted and int(counted.group(1)) > 0  # the chunks wait for gc
    help_text = ok(tmp_path, "user", "remove", "--help")
    assert "--purge" in help_text and "gc" in help_text

    served.append(Serve(tmp_path, cli_env()))
    assert served[1].dav("PROPFIND", "", auth, headers={"Depth": "0"}).status_code == 401
