"""`davserver push` and `davserver pull` against the real server (docs/api.md, "Sending
only what changed"): on the embedded stack (blocks through the server) and on the full
stack with direct transfers (blocks straight to and from S3).

A 64 MiB file with 1 MiB changed in the middle goes both ways in well under 8 MiB; an
interrupted push resumes without sending again what arrived; a tree goes and comes
back byte-equal; the command line prints its summary and exits 0, or 2 on a bad login.
Bytes read back go through WebDAV GET, not through the client under test.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from davserver.cli.sync import Transfers
from davserver.cli.transfer_http import Login, Remote
from tests.support.api import answer, api
from tests.support.cli import cli_env, run_cli
from tests.support.delta_files import MIB, edit_middle, sha256_file, write_data
from tests.support.servers import RunningServer
from tests.support.tree import assert_same_tree, build_tree, local_digests

SIZE = 64 * MIB
USER, PASSWORD = "amy", "amy-pass"
STACKS = {"embedded": {}, "full-direct": {"direct_transfers": True}}


@pytest.fixture(params=list(STACKS))
def delta_server(request: pytest.FixtureRequest, make_server: Any) -> RunningServer:
    stack = request.param.split("-")[0]
    running: RunningServer = make_server(stack, **STACKS[request.param])
    running.add_user(USER, PASSWORD)
    return running


@pytest.fixture
def client(delta_server: RunningServer) -> Iterator[Transfers]:
    remote = Remote(delta_server.base, Login(USER, PASSWORD))
    # the full stack sends and fetches blocks straight to and from S3
    assert remote.get_json("blocks/params")["direct"] == delta_server.settings.direct_transfers
    yield Transfers(remote)
    remote.close()


def dav_sha256(server: RunningServer, path: str) -> str:
    """The SHA-256 of the file at `path` as a WebDAV GET streams it."""
    digest = hashlib.sha256()
    with server.client(USER).get(server.url(path), stream=True) as response:
        assert response.status_code == 200, response.status_code
        for piece in response.iter_content(MIB):
            digest.update(piece)
    return digest.hexdigest()


def old_versions(server: RunningServer, path: str) -> list[Any]:
    response = server.client(USER).get(api(server, "versions"), params={"path": path})
    return list(answer(response, 200)["versions"])


def test_push_then_a_1_mib_edit_sends_little(
    delta_server: RunningServer, client: Transfers, tmp_path: Path
) -> None:
    local = write_data(tmp_path / "big.bin", SIZE)
    first = client.push_file(local, "/big.bin")
    assert (first.size, first.moved_bytes, first.moved) == (SIZE, SIZE, first.blocks)
    assert dav_sha256(delta_server, "/big.bin") == sha256_file(local)
    edit_middle(local)
    second = client.push_file(local, "/big.bin")
    assert 0 < second.moved_bytes < 8 * MIB
    assert dav_sha256(delta_server, "/big.bin") == sha256_file(local)
    versions = old_versions(delta_server, "/big.bin")
    assert len(versions) == 1  # the first push's content
    assert client.push_file(local, "/big.bin").moved == 0
    assert old_versions(delta_server, "/big.bin") == versions  # nothing changed: no version


def test_pull_after_a_remote_1_mib_edit_fetches_little(
    delta_server: RunningServer, client: Transfers, tmp_path: Path
) -> None:
    original = write_data(tmp_path / "theirs" / "original.bin", SIZE)
    client.push_file(original, "/big.bin")
    mine = tmp_path / "mine" / "big.bin"
    mine.parent.mkdir()
    fresh = client.pull_file("/big.bin", mine)
    assert fresh.moved_bytes == SIZE and sha256_file(mine) == sha256_file(original)
    assert mine.stat().st_mtime == original.stat().st_mtime  # pushed, then pulled with it
    edit_middle(original)  # someone else's edit, sent by WebDAV PUT
    with original.open("rb") as body:
        put = delta_server.client(USER).put(delta_server.url("/big.bin"), data=body)
    assert put.status_code == 204, put.status_code
    again = client.pull_file("/big.bin", mine)
    assert 0 < again.moved_bytes < 8 * MIB
    assert sha256_file(mine) == sha256_file(original)
    assert [p.name for p in mine.parent.iterdir()] == ["big.bin"]  # no temporary file left


class Cut(Exception):
    """The push is cut off here (as a dropped connection or Ctrl-C would)."""


def test_an_interrupted_push_resumes_without_sending_again(
    delta_server: RunningServer, tmp_path: Path
) -> None:
    local = write_data(tmp_path / "big.bin", SIZE)
    arrived: list[int] = []

    def cut_after_ten(size: int, moved: bool) -> None:
        if moved:
            arrived.append(size)  # called once the server has the block
            if len(arrived) >= 10:
                raise Cut

    remote = Remote(delta_server.base, Login(USER, PASSWORD))
    with pytest.raises(Cut):
        Transfers(remote, progress=cut_after_ten).push_file(local, "/big.bin")
    assert 10 <= len(arrived) < 30
    assert delta_server.client(USER).head(delta_server.url("/big.bin")).status_code == 404
    resumed = Transfers(remote).push_file(local, "/big.bin")
    assert resumed.moved == resumed.blocks - len(arrived)
    assert resumed.moved_bytes == SIZE - sum(arrived)
    assert dav_sha256(delta_server, "/big.bin") == sha256_file(local)


def test_a_tree_goes_and_comes_back(
    delta_server: RunningServer, client: Transfers, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    build_tree(tree, big_bytes=6 * MIB, small_files=12)
    failed: list[str] = []
    pushed = client.push_tree(tree, "/backup/tree", lambda path, e: failed.append(path))
    assert failed == [] and pushed.files == sum(1 for p in tree.rglob("*") if p.is_file())
    assert pushed.moved_bytes < pushed.size  # the second of two equal files is not sent
    assert_same_tree(delta_server.client(USER), delta_server.url("/backup/tree/"), tree)
    back = tmp_path / "back"
    entries = [e for e in client.listing("/backup/tree") if e.path != "/backup/tree"]
    pulled = client.pull_tree("/backup/tree", back, entries, lambda path, e: failed.append(path))
    assert failed == [] and (pulled.files, pulled.size) == (pushed.files, pushed.size)
    assert local_digests(back) == local_digests(tree)
    inode = (back / "big" / "big.bin").stat().st_ino
    again = client.pull_tree("/backup/tree", back, entries, lambda path, e: failed.append(path))
    assert failed == [] and again.moved == 0  # every block was there already
    assert (back / "big" / "big.bin").stat().st_ino == inode  # and no file was rewritten


SUMMARY = re.compile(
    r"^(pushed|pulled) (\S+): (\d+) bytes, (\d+) blocks, (\d+) (sent|fetched) \(.+\), "
    r"(\d+) (already there|reused), \d+\.\d s$"
)


def test_the_command_line_pushes_and_pulls(delta_server: RunningServer, tmp_path: Path) -> None:
    local = write_data(tmp_path / "f.bin", 8 * MIB + 5)
    env = cli_env(DAVSERVER_URL=delta_server.base, DAVSERVER_USER=USER)
    login = ("--password-stdin",)
    pushed = run_cli(tmp_path, "push", "f.bin", "/docs/", *login, stdin=PASSWORD + "\n", env=env)
    assert pushed.returncode == 0, pushed.stderr
    match = SUMMARY.match(pushed.stdout.strip())
    assert match and match.group(2) == "/docs/f.bin" and int(match.group(3)) == 8 * MIB + 5
    assert dav_sha256(delta_server, "/docs/f.bin") == sha256_file(local)
    env["DAVSERVER_PASSWORD"] = PASSWORD
    pulled = run_cli(tmp_path, "pull", "/docs/f.bin", "copy.bin", env=env)
    assert pulled.returncode == 0, pulled.stderr
    match = SUMMARY.match(pulled.stdout.strip())
    assert match and match.group(1) == "pulled" and int(match.group(5)) == int(match.group(4))
    assert sha256_file(tmp_path / "copy.bin") == sha256_file(local)
    env["DAVSERVER_PASSWORD"] = "wrong"
    refused = run_cli(tmp_path, "pull", "/docs/f.bin", "copy.bin", env=env)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [refused.stderr.strip()]
    assert "401" in refused.stderr and "wrong user or password" in refused.stderr
    assert "wrong" not in refused.stderr.replace("wrong user", "")


@pytest.mark.slow
def test_a_1_gib_file_with_1_mib_changed_moves_under_8_mib(
    make_server: Any, tmp_path: Path
) -> None:
    """The issue's case, once (embedded stack): push 1 GiB, change 1 MiB in the middle,
    push again; then change 1 MiB remotely (WebDAV PUT) and pull into a local copy."""
    server: RunningServer = make_server("embedded")
    server.add_user(USER, PASSWORD)
    client = Transfers(Remote(server.base, Login(USER, PASSWORD)))
    local = write_data(tmp_path / "mine" / "big.iso", 1024 * MIB)
    assert client.push_file(local, "/docs/big.iso").moved_bytes == 1024 * MIB
    edit_middle(local)
    assert client.push_file(local, "/docs/big.iso").moved_bytes < 8 * MIB
    assert dav_sha256(server, "/docs/big.iso") == sha256_file(local)
    theirs = tmp_path / "theirs.iso"
    shutil.copyfile(local, theirs)
    edit_middle(theirs, seed="their edit")
    with theirs.open("rb") as body:
        assert server.client(USER).put(server.url("/docs/big.iso"), data=body).status_code == 204
    assert client.pull_file("/docs/big.iso", local).moved_bytes < 8 * MIB
    assert sha256_file(local) == sha256_file(theirs)


def test_a_tree_on_the_command_line_and_one_file_that_fails(
    delta_server: RunningServer, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    build_tree(tree, big_bytes=MIB, small_files=3)
    env = cli_env(DAVSERVER_URL=delta_server.base, DAVSERVER_USER=USER)
    env["DAVSERVER_PASSWORD"] = PASSWORD
    pushed = run_cli(tmp_path, "push", "tree", "/t", env=env)
    assert pushed.returncode == 0, pushed.stderr
    files = sum(1 for p in tree.rglob("*") if p.is_file())
    assert pushed.stdout.startswith(f"pushed /t: {files} files, "), pushed.stdout
    blocked = tmp_path / "back" / "sizes" / "size-1.bin"
    blocked.mkdir(parents=True)  # a folder where the tree has a file: that file fails
    pulled = run_cli(tmp_path, "pull", "/t", "back", env=env)
    assert pulled.returncode == 1, pulled.stderr
    assert [line.split(":")[:3] for line in pulled.stderr.splitlines()] == [
        ["davserver", " error", " pull sizes/size-1.bin"]
    ]
    assert pulled.stdout.startswith(f"pulled /t: {files - 1} files, "), pulled.stdout
    blocked.rmdir()
    got, want = set(local_digests(tmp_path / "back")), set(local_digests(tree))
    assert (got - want, want - got) == (set(), {"sizes/size-1.bin"})


@pytest.mark.parametrize("stack", list(STACKS))
def test_urls_that_expire_during_a_transfer_are_asked_for_again(
    make_server: Any, stack: str, tmp_path: Path
) -> None:
    """With 2 s URLs and a client that pauses after its first block, every later URL
    it holds has expired: a push asks `check` again for a direct one, a pull lists
    the blocks again, and both finish."""
    server: RunningServer = make_server(stack.split("-")[0], transfer_url_ttl=2, **STACKS[stack])
    server.add_user(USER, PASSWORD)
    moved: list[int] = []

    def slow_start(size: int, was_moved: bool) -> None:
        if was_moved:
            moved.append(size)
            if len(moved) == 1:
                time.sleep(3)

    remote = Remote(server.base, Login(USER, PASSWORD), workers=1)
    client = Transfers(remote, workers=1, progress=slow_start)
    local = write_data(tmp_path / "mine" / "f.bin", 8 * MIB)
    pushed = client.push_file(local, "/f.bin")
    assert (pushed.moved, pushed.moved_bytes) == (pushed.blocks, 8 * MIB)
    assert dav_sha256(server, "/f.bin") == sha256_file(local)
    moved.clear()
    copy = tmp_path / "copy.bin"
    pulled = client.pull_file("/f.bin", copy)
    assert (pulled.moved, pulled.moved_bytes) == (pulled.blocks, 8 * MIB)
    assert sha256_file(copy) == sha256_file(local)
