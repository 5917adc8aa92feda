"""Share links mounted as WebDAV (`/s/<token>/dav/`), on both stacks: the link's rights
and nothing more, its password by Basic (throttled), dead links 404, downloads counted,
locks shared with the owner; and real clients: rclone out of a view link and into an
edit link, cadaver on an edit link and against a read-only one."""

from __future__ import annotations

import os
import re
import subprocess
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from davserver.app import share_signer
from davserver.auth.passwords import hash_password
from tests.support.clients import Cadaver, cadaver_binary, rclone_binary
from tests.support.dav import LOCK_BODY, propfind
from tests.support.servers import RunningServer
from tests.support.tree import MIB, assert_same_tree, build_tree

PROPPATCH_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test"><D:set><D:prop>
<Z:color>blue</Z:color></D:prop></D:set></D:propertyupdate>"""


def link_url(server: RunningServer, path: str, perm: str, **options: object) -> str:
    """A new link of alice's `path`, as its WebDAV URL (ending in '/'); `password` in
    `options` is hashed as the CLI and API do."""
    password = options.pop("password", None)
    link = server.services.catalog.links.create(
        "alice",
        [name for name in path.split("/") if name],
        perm,
        password_hash=hash_password(str(password)) if password else None,
        **options,  # type: ignore[arg-type]
    )
    token = share_signer(server.services.catalog).token(link.id)
    return f"{server.base}/s/{token}/dav/"


def link_id(url: str, server: RunningServer) -> int:
    token = urlsplit(url).path.split("/")[2]
    found = share_signer(server.services.catalog).link_id(token)
    assert found is not None
    return found


@pytest.fixture
def alice(server: RunningServer) -> RunningServer:
    """alice with /proj/a.txt ("alpha") and /proj/sub/b.txt ("beta")."""
    server.add_user("alice", "pw-alice")
    session = server.client("alice")
    for folder in ("proj", "proj/sub"):
        assert session.request("MKCOL", server.url(folder)).status_code == 201
    assert session.put(server.url("proj/a.txt"), data=b"alpha").status_code == 201
    assert session.put(server.url("proj/sub/b.txt"), data=b"beta").status_code == 201
    return server


def lock(url: str, auth: tuple[str, str] | None = None) -> requests.Response:
    return requests.request(
        "LOCK", url, data=LOCK_BODY, headers={"Timeout": "Second-600"}, auth=auth, timeout=30
    )


def test_a_view_link_reads_and_refuses_every_write(alice: RunningServer) -> None:
    url = link_url(alice, "/proj", "view")
    prefix = urlsplit(url).path
    listing = propfind(requests.Session(), url, depth="1")
    assert set(listing) == {prefix, prefix + "a.txt", prefix + "sub/"}
    assert requests.get(url + "a.txt", timeout=30).content == b"alpha"
    assert requests.get(url + "sub/b.txt", timeout=30).content == b"beta"
    head = requests.head(url + "a.txt", timeout=30)
    assert head.status_code == 200 and head.headers["Content-Length"] == "5"
    assert head.headers["Content-Security-Policy"] == "sandbox"
    assert requests.options(url, timeout=30).status_code == 200
    writes = [
        ("PUT", "a.txt", {}, b"changed"),
        ("PUT", "new.txt", {}, b"new"),
        ("MKCOL", "newdir", {}, b""),
        ("DELETE", "a.txt", {}, b""),
        ("DELETE", "sub", {}, b""),
        ("MOVE", "a.txt", {"Destination": url + "moved.txt"}, b""),
        ("COPY", "a.txt", {"Destination": url + "copy.txt"}, b""),
        ("PROPPATCH", "a.txt", {}, PROPPATCH_BODY),
        ("LOCK", "a.txt", {"Timeout": "Second-60"}, LOCK_BODY),
        ("DELETE", "", {}, b""),
    ]
    for method, path, headers, body in writes:
        answer = requests.request(method, url + path, headers=headers, data=body, timeout=30)
        assert answer.status_code == 403, (method, path, answer.status_code)
    owner = alice.client("alice")
    assert owner.get(alice.url("proj/a.txt")).content == b"alpha"
    assert propfind(owner, alice.url("proj/"), depth="1").keys() == {
        "/dav/proj/",
        "/dav/proj/a.txt",
        "/dav/proj/sub/",
    }


def test_an_edit_link_writes_inside_its_folder_only(alice: RunningServer) -> None:
    url = link_url(alice, "/proj", "edit")
    other = link_url(alice, "/proj/sub", "edit")
    session = requests.Session()
    assert session.put(url + "new.txt", data=b"fresh").status_code == 201
    assert session.put(url + "a.txt", data=b"alpha 2").status_code == 204
    assert session.request("MKCOL", url + "made").status_code == 201
    moved = session.request("MOVE", url + "new.txt", headers={"Destination": url + "made/n.txt"})
    assert moved.status_code == 201
    copied = session.request("COPY", url + "sub", headers={"Destination": url + "made/sub2"})
    assert copied.status_code == 201
    patched = session.request("PROPPATCH", url + "a.txt", data=PROPPATCH_BODY)
    assert patched.status_code == 207 and "200 OK" in patched.text
    assert session.delete(url + "made/sub2").status_code == 204
    owner = alice.client("alice")
    assert owner.get(alice.url("proj/made/n.txt")).content == b"fresh"
    assert owner.get(alice.url("proj/a.txt")).content == b"alpha 2"
    # Charged to the owner, as any write below her folder (what was deleted is in her
    # trash, the replaced "alpha" is a version of a.txt).
    owner_id = alice.services.catalog.users.get("alice").id  # type: ignore[union-attr]
    assert alice.services.catalog.history_usage.usage(owner_id).current == 5 + 4 + 7
    # Nothing outside: not /dav/, not another link, not the link's folder itself.
    out = session.request("MOVE", url + "a.txt", headers={"Destination": alice.url("x.txt")})
    assert out.status_code == 502
    out = session.request("COPY", url + "a.txt", headers={"Destination": other + "x.txt"})
    assert out.status_code == 502
    assert session.delete(url).status_code == 403
    assert session.request("MOVE", url, headers={"Destination": url + "x"}).status_code == 403
    assert owner.get(alice.url("proj/a.txt")).content == b"alpha 2"


def test_locks_bind_the_link_and_the_owner(alice: RunningServer) -> None:
    url = link_url(alice, "/proj", "edit")
    owner = alice.client("alice")
    taken = lock(url + "a.txt")
    assert taken.status_code == 200
    assert owner.put(alice.url("proj/a.txt"), data=b"x").status_code == 423
    assert owner.delete(alice.url("proj")).status_code == 423
    seen = owner.request("PROPFIND", alice.url("proj/a.txt"), headers={"Depth": "0"})
    assert "/dav/proj/a.txt" in seen.text  # the lock root, as alice names it
    seen = requests.request("PROPFIND", url + "a.txt", headers={"Depth": "0"}, timeout=30)
    assert f"{urlsplit(url).path}a.txt" in seen.text  # and as the link names it
    token = taken.headers["Lock-Token"]
    assert requests.put(url + "a.txt", data=b"y", timeout=30).status_code == 423
    with_token = {"If": f"({token})"}
    assert requests.put(url + "a.txt", data=b"y", headers=with_token, timeout=30).status_code == 204
    unlocked = requests.request("UNLOCK", url + "a.txt", headers={"Lock-Token": token}, timeout=30)
    assert unlocked.status_code == 204
    assert lock(alice.url("proj/sub/b.txt"), ("alice", "pw-alice")).status_code == 200
    assert requests.put(url + "sub/b.txt", data=b"z", timeout=30).status_code == 423
    assert owner.get(alice.url("proj/sub/b.txt")).content == b"beta"


def test_a_password_link_takes_basic_with_any_user(alice: RunningServer) -> None:
    url = link_url(alice, "/proj", "download", password="link-pass")
    anonymous = requests.request("PROPFIND", url, headers={"Depth": "0"}, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.raw.headers.getlist("WWW-Authenticate") == [
        'Basic realm="davserver share link", charset="UTF-8"'
    ]
    wrong = requests.get(url + "a.txt", auth=("alice", "pw-alice"), timeout=30)
    assert wrong.status_code == 401
    for user in ("", "guest", "alice"):
        answer = requests.get(url + "a.txt", auth=(user, "link-pass"), timeout=30)
        assert answer.status_code == 200 and answer.content == b"alpha"
    # The link's password is no account's: /dav/ refuses it.
    assert requests.get(alice.url("proj/a.txt"), auth=("alice", "link-pass")).status_code == 401


@pytest.mark.parametrize("stack", ["embedded", "full"])
def test_wrong_link_passwords_are_throttled_per_link(stack: str, make_server: Any) -> None:
    server = make_server(stack, login_failures_per_user=3)
    server.add_user("alice", "pw-alice")
    assert server.client("alice").request("MKCOL", server.url("proj")).status_code == 201
    url = link_url(server, "/proj", "view", password="link-pass")
    for _ in range(3):
        assert requests.get(url, auth=("alice", "guess"), timeout=30).status_code == 401
    blocked = requests.request("PROPFIND", url, auth=("x", "link-pass"), timeout=30)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    # Counted against the link, not against the account named in the header.
    depth = {"Depth": "0"}
    assert server.client("alice").request("PROPFIND", server.dav, headers=depth).status_code == 207
    other = link_url(server, "/proj", "view", password="link-pass")
    answer = requests.request("PROPFIND", other, auth=("x", "link-pass"), headers=depth)
    assert answer.status_code == 207


def test_dead_links_and_upload_links_are_404(alice: RunningServer) -> None:
    links = alice.services.catalog.links
    revoked = link_url(alice, "/proj", "edit")
    live = requests.request("PROPFIND", revoked, headers={"Depth": "0"}, timeout=30)
    assert live.status_code == 207
    assert links.revoke("alice", link_id(revoked, alice))
    expired = link_url(alice, "/proj", "view", expires_at=1.0)
    dead = [
        revoked,
        revoked + "a.txt",
        expired,
        link_url(alice, "/proj", "upload"),
        revoked.replace("/dav/", "/dav"),
        revoked[:-6] + "x/dav/",  # a tampered token
    ]
    for url in dead:
        for method in ("PROPFIND", "GET", "PUT"):
            answer = requests.request(method, url, data=b"x" if method == "PUT" else b"")
            assert answer.status_code == 404, (url, method, answer.status_code)
    assert alice.client("alice").get(alice.url("proj/a.txt")).content == b"alpha"


def test_gets_of_a_files_first_byte_count_downloads(alice: RunningServer) -> None:
    url = link_url(alice, "/proj", "download", max_downloads=2)
    links = alice.services.catalog.links
    assert requests.head(url + "a.txt", timeout=30).status_code == 200
    assert requests.request("PROPFIND", url, headers={"Depth": "1"}).status_code == 207
    tail = requests.get(url + "a.txt", headers={"Range": "bytes=2-"}, timeout=30)
    assert tail.status_code == 206 and tail.content == b"pha"
    assert links.get(link_id(url, alice)).downloads == 0  # type: ignore[union-attr]
    assert requests.get(url + "a.txt", timeout=30).content == b"alpha"
    head = requests.get(url + "a.txt", headers={"Range": "bytes=0-1"}, timeout=30)
    assert head.status_code == 206 and head.content == b"al"
    assert links.get(link_id(url, alice)).downloads == 2  # type: ignore[union-attr]
    used_up = requests.request("PROPFIND", url, headers={"Depth": "0"}, timeout=30)
    assert used_up.status_code == 404


def _rclone_run(scratch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """rclone with no config of its own and retries off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env |= {"HOME": str(scratch), "RCLONE_CONFIG": "/dev/null"}
    command = [rclone_binary(), "--retries", "1", "--low-level-retries", "1", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _rclone(scratch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`_rclone_run`, failing the test on a non-zero exit."""
    done = _rclone_run(scratch, *args)
    assert done.returncode == 0, (args, done.stderr[-3000:])
    return done


def _obscure(password: str) -> str:
    command = [rclone_binary(), "obscure", password]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def test_rclone_reads_a_view_link_with_its_password(alice: RunningServer, tmp_path: Path) -> None:
    local = tmp_path / "tree"
    build_tree(local, big_bytes=2 * MIB, small_files=20)
    owner = ["--webdav-url", alice.dav, "--webdav-user", "alice"]
    _rclone(
        tmp_path, "copy", str(local), ":webdav:tree", *owner, "--webdav-pass", _obscure("pw-alice")
    )
    url = link_url(alice, "/tree", "view", password="s3cret link")
    remote = ["--webdav-url", url, "--webdav-pass", _obscure("s3cret link")]
    listed = _rclone(tmp_path, "lsf", "-R", ":webdav:", *remote).stdout.splitlines()
    expected = [p.relative_to(local).as_posix() + "/" * p.is_dir() for p in local.rglob("*")]
    assert sorted(map(_nfc, listed)) == sorted(map(_nfc, expected))
    _rclone(tmp_path, "copy", ":webdav:", str(tmp_path / "out"), *remote)
    _rclone(tmp_path, "check", str(local), str(tmp_path / "out"))
    wrong = ["--webdav-url", url, "--webdav-pass", _obscure("nope")]
    failed = _rclone_run(tmp_path, "lsf", ":webdav:", *wrong)
    assert failed.returncode != 0 and "401" in failed.stderr, failed.stderr[-2000:]


def test_rclone_copies_into_an_edit_link(alice: RunningServer, tmp_path: Path) -> None:
    local = tmp_path / "tree"
    build_tree(local, big_bytes=2 * MIB, small_files=20)
    url = link_url(alice, "/proj", "edit")
    _rclone(tmp_path, "copy", str(local), ":webdav:in", "--webdav-url", url)
    done = _rclone(tmp_path, "check", str(local), ":webdav:in", "--webdav-url", url)
    files = sum(1 for p in local.rglob("*") if p.is_file())
    assert f"{files} matching files" in done.stderr, done.stderr[-2000:]
    assert_same_tree(alice.client("alice"), alice.url("proj/in/"), local)
    assert_same_tree(requests.Session(), url + "in/", local)


def _cadaver(url: str, tmp_path: Path, password: str) -> Cadaver:
    home, workdir = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin anyone\npassword {password}\n")
    netrc.chmod(0o600)
    return Cadaver(cadaver_binary(), url, home, workdir)


def test_cadaver_on_an_edit_link(alice: RunningServer, tmp_path: Path) -> None:
    url = link_url(alice, "/proj", "edit", password="cad-pass")
    cadaver = _cadaver(url, tmp_path, "cad-pass")
    out = cadaver.run("ls")
    assert "a.txt" in out and "sub" in out
    (cadaver.workdir / "up.bin").write_bytes(b"\x00\x01" * 50_000)
    assert "succeeded." in cadaver.run("mkdir cdir")
    assert "succeeded." in cadaver.run('put up.bin "cdir/up load.bin"')
    assert "succeeded." in cadaver.run('get "cdir/up load.bin" back.bin')
    assert (cadaver.workdir / "back.bin").read_bytes() == b"\x00\x01" * 50_000
    out = cadaver.run('move "cdir/up load.bin" cdir/moved.bin')
    assert "Moving" in out and "succeeded." in out
    owner = alice.client("alice")
    assert owner.get(alice.url("proj/cdir/moved.bin")).content == b"\x00\x01" * 50_000
    assert owner.get(alice.url("proj/cdir/up load.bin")).status_code == 404
    assert "moved.bin" in cadaver.run("ls cdir")


def test_cadaver_is_refused_writes_on_a_view_link(alice: RunningServer, tmp_path: Path) -> None:
    url = link_url(alice, "/proj", "view")
    cadaver = _cadaver(url, tmp_path, "unused")
    assert "a.txt" in cadaver.run("ls")
    (cadaver.workdir / "x.txt").write_bytes(b"x")
    _status, output = cadaver.attempt("put x.txt", "mkdir d")
    assert len(re.findall(r"failed:\s+403 Forbidden", output)) == 2, output
    assert alice.client("alice").get(alice.url("proj/x.txt")).status_code == 404
