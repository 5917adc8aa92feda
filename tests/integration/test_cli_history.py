"""`davserver versions ...` and `davserver trash ...` as subprocesses against a running
server's store, on both stacks: files are written and read over WebDAV, the CLI lists
and restores versions, lists, restores (in place or `--to`), purges and empties the
trash, acting as the owner; errors are one line and a non-zero exit."""

from __future__ import annotations

import hashlib
import random
import re

import pytest

from davserver.cli.main import main
from tests.support.dav import put
from tests.support.servers import RunningServer
from tests.support.subprocess_server import run_cli, settings_env


def ok(server: RunningServer, *args: str) -> str:
    """Run a command that must succeed; its stdout."""
    done = run_cli(server.settings, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(server: RunningServer, *args: str, says: str) -> str:
    """Run a command that must fail with one `davserver: error:` line naming `says`."""
    done = run_cli(server.settings, *args)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("davserver: error:"), done.stderr
    assert says in lines[0], lines[0]
    return lines[0]


def versions(server: RunningServer, path: str, owner: str = "admin") -> list[dict[str, str]]:
    """The rows of `versions list` (times are two cells: date and time)."""
    lines = ok(server, "versions", "list", path, "--owner", owner).splitlines()
    assert lines[0].split() == ["ID", "SIZE", "SHA256", "MTIME", "CREATED", "AUTHOR"]
    rows = []
    for line in lines[1:]:
        cells = line.split()
        rows.append({"id": cells[0], "size": cells[1], "sha256": cells[2], "author": cells[-1]})
    return rows


def trash(server: RunningServer, owner: str = "admin") -> list[dict[str, str]]:
    """The rows of `trash list` (the path last, spaces and all)."""
    lines = ok(server, "trash", "list", "--owner", owner).splitlines()
    assert lines[0].split() == ["ID", "DELETED", "KIND", "SIZE", "BY", "PATH"]
    rows = []
    for line in lines[1:]:
        item, _day, _time, kind, size, by, path = line.split(maxsplit=6)
        rows.append({"id": item, "kind": kind, "size": size, "by": by, "path": path})
    return rows


def test_versions_list_and_restore(server: RunningServer) -> None:
    admin = server.client()
    bodies = [random.Random(n).randbytes(5000 + n) for n in range(4)]
    for body in bodies:  # the first write, then 3 overwrites
        put(admin, server.url("a.bin"), body)
    listed = versions(server, "/a.bin")
    assert [int(v["size"]) for v in listed] == [len(b) for b in reversed(bodies[:3])]
    assert [v["sha256"] for v in listed] == [
        hashlib.sha256(b).hexdigest() for b in reversed(bodies[:3])
    ]
    assert {v["author"] for v in listed} == {"admin"}
    oldest = listed[-1]["id"]
    said = ok(server, "versions", "restore", "a.bin", "--owner", "admin", "--id", oldest)
    assert said.strip() == f"Restored version {oldest} of a.bin of 'admin' ({len(bodies[0])} bytes)"
    assert admin.get(server.url("a.bin")).content == bodies[0]
    after = versions(server, "a.bin")
    assert len(after) == 4 and int(after[0]["size"]) == len(bodies[3])  # the replaced one


def test_trash_list_restore_purge_and_empty(server: RunningServer) -> None:
    admin = server.client()
    assert admin.request("MKCOL", server.url("project")).status_code == 201
    bodies = {f"project/f{n}.bin": random.Random(n).randbytes(3000 + n) for n in range(5)}
    for path, body in bodies.items():
        put(admin, server.url(path), body)
    assert admin.delete(server.url("project")).status_code == 204
    (item,) = trash(server)
    assert item["path"] == "/project" and item["kind"] == "folder" and item["by"] == "admin"
    assert int(item["size"]) == sum(len(b) for b in bodies.values())
    said = ok(server, "trash", "restore", item["id"], "--owner", "admin")
    assert said.strip() == f"Restored item {item['id']} of 'admin' to /project"
    for path, body in bodies.items():
        assert admin.get(server.url(path)).content == body
    assert trash(server) == []

    assert admin.delete(server.url("project")).status_code == 204
    (item,) = trash(server)
    said = ok(server, "trash", "restore", item["id"], "--owner", "admin", "--to", "/back here")
    assert said.strip().endswith(" to /back here")
    for path, body in bodies.items():
        assert admin.get(server.url(path.replace("project", "back here"))).content == body

    for name in ("x.txt", "y.txt", "z.txt"):
        put(admin, server.url(name), name.encode())
        assert admin.delete(server.url(name)).status_code == 204
    items = trash(server)
    assert [i["path"] for i in items] == ["/z.txt", "/y.txt", "/x.txt"]
    ok(server, "trash", "purge", items[0]["id"], "--owner", "admin")
    assert [i["path"] for i in trash(server)] == ["/y.txt", "/x.txt"]
    said = ok(server, "trash", "empty", "--owner", "admin")
    assert said.strip() == "Emptied the trash of 'admin': purged 2 items"
    assert trash(server) == []


def test_a_grantees_delete_is_restored_from_the_owners_trash(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    admin, bob = server.client(), server.client("bob")
    assert admin.request("MKCOL", server.url("team")).status_code == 201
    put(admin, server.url("team/plan.txt"), b"the plan")
    ok(server, "grant", "/team", "--owner", "admin", "--to", "bob", "--perm", "rw")
    assert bob.delete(server.url("Shared/team/plan.txt")).status_code == 204
    assert trash(server, "bob") == []
    (item,) = trash(server, "admin")
    assert (item["path"], item["by"]) == ("/team/plan.txt", "bob")
    fails(server, "trash", "restore", item["id"], "--owner", "bob", says="no such item")
    ok(server, "trash", "restore", item["id"], "--owner", "admin")
    assert admin.get(server.url("team/plan.txt")).content == b"the plan"


ERRORS = [
    (("versions", "list", "/a.txt", "--owner", "nobody"), "no such user: 'nobody'"),
    (("trash", "list", "--owner", "nobody"), "no such user: 'nobody'"),
    (("trash", "empty", "--owner", "nobody"), "no such user: 'nobody'"),
    (("versions", "list", "/missing.txt", "--owner", "admin"), "/missing.txt"),
    (("versions", "list", "/docs", "--owner", "admin"), "a folder has no versions"),
    (("versions", "restore", "/a.txt", "--owner", "admin", "--id", "999999"), "version"),
    (("trash", "restore", "999999", "--owner", "admin"), "no such item"),
    (("trash", "purge", "999999", "--owner", "admin"), "no such item"),
    (("trash", "restore", "x", "--owner", "admin"), "invalid int value"),
]


_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\S+ (DEBUG|INFO) ")


def test_errors_are_one_line(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (`main`, as `python -m davserver` runs it), to spare a start
    per case; one case as a subprocess too."""
    admin = server.client()
    assert admin.request("MKCOL", server.url("docs")).status_code == 201
    put(admin, server.url("a.txt"), b"one")
    put(admin, server.url("a.txt"), b"two")
    fails(server, *ERRORS[0][0], says=ERRORS[0][1])
    for key, value in settings_env(server.settings).items():
        monkeypatch.setenv(key, value)
    for args, says in ERRORS:
        capsys.readouterr()
        try:
            code: object = main(list(args))
        except SystemExit as e:  # argparse's errors exit
            code = e.code
        # an earlier test in this process may have set logging up to stderr: its
        # info lines (the config file used) are not the error
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if not _LOG_LINE.match(line)]
        assert code != 0 and len(lines) == 1 and "Traceback" not in err, (args, err)
        assert lines[0].startswith("davserver: error:") and says in lines[0], lines[0]


def test_restore_to_a_taken_path_is_refused(server: RunningServer) -> None:
    admin = server.client()
    put(admin, server.url("a.txt"), b"first")
    assert admin.delete(server.url("a.txt")).status_code == 204
    put(admin, server.url("a.txt"), b"second")
    (item,) = trash(server)
    fails(
        server, "trash", "restore", item["id"], "--owner", "admin", "--to", "a.txt", says="exists"
    )
    said = ok(server, "trash", "restore", item["id"], "--owner", "admin")
    assert said.strip().endswith(" to /a (restored).txt")
    assert admin.get(server.url("a (restored).txt")).content == b"first"
