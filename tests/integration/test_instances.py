"""Two server instances on one PostgreSQL + Redis + S3: what one does, the other sees.

Both instances are built from the same `Settings` (the second does not flush Redis),
as two `davserver serve` processes behind a load balancer would be. GC runs as the
real `davserver gc` command while an upload streams through one instance.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from urllib.parse import unquote, urlsplit

import requests

from davserver.settings import Settings
from tests.support.servers import RunningServer
from tests.support.subprocess_server import run_cli

MiB = 1024 * 1024
TIMEOUT = (5.0, 120.0)
LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>instance A</D:owner></D:lockinfo>"""
# GC grace for the upload race: longer than `davserver gc` takes to start and run, so
# the upload's first chunks (stored after the garbage aged past it) stay protected.
GRACE = 8.0


def _body(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _put(server: RunningServer, path: str, body: bytes, **headers: str) -> int:
    response = server.client().put(server.url(path), data=body, headers=headers, timeout=TIMEOUT)
    return response.status_code


def _get(server: RunningServer, path: str) -> requests.Response:
    return server.client().get(server.url(path), timeout=TIMEOUT)


def _assert_content(server: RunningServer, path: str, expected: bytes) -> None:
    response = _get(server, path)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(expected).hexdigest()


def _names(server: RunningServer, path: str = "/") -> set[str]:
    """Member names of a collection (PROPFIND Depth 1)."""
    url = server.url(path)
    response = server.client().request("PROPFIND", url, headers={"Depth": "1"}, timeout=TIMEOUT)
    assert response.status_code == 207, (response.status_code, response.text[:300])
    own = urlsplit(url).path.rstrip("/")
    hrefs = (el.text or "" for el in ET.fromstring(response.content).iter("{DAV:}href"))
    paths = {urlsplit(href).path.rstrip("/") for href in hrefs}
    return {unquote(p.rsplit("/", 1)[-1]) for p in paths if p != own}


def test_lock_taken_on_a_is_honoured_by_b(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    assert _put(a, "locked.txt", b"v1") == 201
    lock = a.client().request(
        "LOCK", a.url("locked.txt"), data=LOCK_BODY, headers={"Timeout": "Second-300"}
    )
    assert lock.status_code == 200, (lock.status_code, lock.text[:300])
    token = lock.headers["Lock-Token"].strip("<>")

    assert _put(b, "locked.txt", b"intruder") == 423
    assert b.client().delete(b.url("locked.txt")).status_code == 423
    _assert_content(a, "locked.txt", b"v1")
    assert _put(b, "locked.txt", b"v2", If=f"(<{token}>)") == 204
    _assert_content(a, "locked.txt", b"v2")

    unlock = b.client().request("UNLOCK", b.url("locked.txt"), headers={"Lock-Token": f"<{token}>"})
    assert unlock.status_code == 204, (unlock.status_code, unlock.text[:300])
    assert _put(a, "locked.txt", b"v3") == 204
    _assert_content(b, "locked.txt", b"v3")


def test_a_lock_taken_on_b_during_a_put_on_a_fails_the_put(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    """The PUT's locks are checked again at its commit: a lock granted while its body
    arrives (through the other process) makes it a 423, and nothing of it is stored."""
    a, b = pair
    assert _put(a, "edited.txt", b"v1") == 201
    halfway = threading.Event()
    resume = threading.Event()

    def paused_body() -> Iterator[bytes]:
        yield b"first half, "
        halfway.set()
        resume.wait(30)
        yield b"second half"

    outcome: list[int] = []
    put = threading.Thread(
        target=lambda: outcome.append(
            a.client().put(a.url("edited.txt"), data=paused_body(), timeout=TIMEOUT).status_code
        )
    )
    put.start()
    try:
        assert halfway.wait(30)
        lock = b.client().request(
            "LOCK", b.url("edited.txt"), data=LOCK_BODY, headers={"Timeout": "Second-300"}
        )
        assert lock.status_code == 200, (lock.status_code, lock.text[:300])
    finally:
        resume.set()
        put.join(60)
    assert outcome == [423]
    _assert_content(b, "edited.txt", b"v1")


def test_writes_and_moves_on_a_are_seen_by_b(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    first, second = _body(3 * MiB + 11, seed=1), _body(MiB, seed=2)
    assert _put(a, "shared.bin", first) == 201
    _assert_content(b, "shared.bin", first)
    assert _put(b, "shared.bin", second) == 204
    _assert_content(a, "shared.bin", second)

    assert a.client().request("MKCOL", a.url("dir/")).status_code == 201
    assert _put(a, "dir/inner.txt", b"inner") == 201
    assert _names(b) == {"shared.bin", "dir"}
    moves = {"shared.bin": "moved.bin", "dir/": "renamed/"}
    for source, target in moves.items():
        moved = a.client().request("MOVE", a.url(source), headers={"Destination": a.url(target)})
        assert moved.status_code == 201, (source, moved.status_code, moved.text[:300])
    assert _names(b) == {"moved.bin", "renamed"}
    assert _names(b, "renamed/") == {"inner.txt"}
    _assert_content(b, "moved.bin", second)
    _assert_content(b, "renamed/inner.txt", b"inner")
    assert _get(b, "shared.bin").status_code == 404


class _PacedBody:
    """A large PUT body sent in 1 MiB blocks, slowly, with hooks for the GC race.

    After `start_block` blocks it sets `started` (the test launches GC then); before
    block `wait_block` it waits until `gc_done` is set, so GC is certain to run while
    the upload is in the middle, with chunks stored before and after it.
    """

    def __init__(self, blocks: list[bytes], start_block: int, wait_block: int) -> None:
        self.blocks = blocks
        self.start_block, self.wait_block = start_block, wait_block
        self.started, self.gc_done = threading.Event(), threading.Event()
        self.finished = False

    def __len__(self) -> int:
        return sum(len(block) for block in self.blocks)

    def __iter__(self) -> Iterator[bytes]:
        for i, block in enumerate(self.blocks):
            if i == self.start_block:
                self.started.set()
            if i == self.wait_block:
                assert self.gc_done.wait(timeout=90), "gc did not finish"
            time.sleep(0.05)
            yield block
        self.finished = True


def _stream(server: RunningServer, path: str, body: _PacedBody, out: list[object]) -> None:
    """PUT `body` on a thread; `out` gets the status code or the exception."""
    try:
        out.append(server.client().put(server.url(path), data=body, timeout=TIMEOUT).status_code)
    except Exception as e:  # reported by the test, never lost in the thread
        out.append(e)


def _deleted_chunks(gc_output: str) -> int:
    match = re.search(r"gc: deleted (\d+) unreferenced chunks", gc_output)
    assert match, gc_output
    return int(match.group(1))


def test_gc_during_upload_on_other_instance_loses_nothing(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    """Timeline: garbage is made, ages past GRACE; the upload starts; GC starts within
    GRACE of it (so the upload's chunks are protected and the garbage's are not) and
    finishes before the upload's last blocks, which repeat the garbage's bytes: the
    upload needs exactly the chunks GC has just deleted, and must store them again."""
    a, b = pair
    settings: Settings = a.settings
    kept = {f"kept{i}.bin": _body(2 * MiB + i, seed=10 + i) for i in range(3)}
    for name, data in kept.items():
        assert _put(a, name, data) == 201
    garbage = _body(8 * MiB, seed=20)
    assert _put(a, "garbage.bin", garbage) == 201
    assert a.client().delete(a.url("garbage.bin")).status_code == 204
    assert a.client().delete(a.base + "/api/v1/trash").json() == {"purged": 1}
    time.sleep(GRACE + 0.5)  # the garbage's chunks are now older than the grace period

    blocks = [_body(MiB, seed=100 + i) for i in range(56)]
    blocks += [garbage[i : i + MiB] for i in range(0, len(garbage), MiB)]
    body = _PacedBody(blocks, start_block=2, wait_block=40)
    result: list[object] = []
    upload = threading.Thread(target=_stream, args=(b, "big.bin", body, result))
    upload.start()
    try:
        assert body.started.wait(timeout=60)
        gc = run_cli(settings, "gc", "--apply", "--grace", str(GRACE))
        upload_finished_first = body.finished
    finally:
        body.gc_done.set()
        upload.join(timeout=180)
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert not upload_finished_first, "gc ran after the upload, not during it"
    assert _deleted_chunks(gc.stdout) > 0, "gc deleted nothing: the race was not exercised"
    assert result == [201], result

    _assert_content(a, "big.bin", b"".join(blocks))
    _assert_content(b, "big.bin", b"".join(blocks))
    for name, data in kept.items():
        _assert_content(b, name, data)
    fsck = run_cli(settings, "fsck", "--deep")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert re.search(r"checked \d+ chunks: 0 missing, 0 wrong size, 0 corrupt", fsck.stdout)


def test_gc_without_grace_fails_the_upload_instead_of_losing_data(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    """`--grace 0` during an upload is the operator's error (docs/gc.md: the grace must
    cover the longest upload): GC may then delete chunks the upload already stored. The
    commit check must turn that into a failed PUT, never a committed file with missing
    chunks, and the file's previous version must stay readable."""
    a, b = pair
    old = _body(3 * MiB, seed=30)
    assert _put(a, "target.bin", old) == 201
    # the chunker cuts nothing before its 16 MiB window is full: start GC once the
    # first cuts (about 12 MiB) are stored, and let more arrive after it
    blocks = [_body(MiB, seed=300 + i) for i in range(32)]
    body = _PacedBody(blocks, start_block=20, wait_block=24)
    result: list[object] = []
    upload = threading.Thread(target=_stream, args=(b, "target.bin", body, result))
    upload.start()
    try:
        assert body.started.wait(timeout=60)
        gc = run_cli(a.settings, "gc", "--apply", "--grace", "0")
    finally:
        body.gc_done.set()
        upload.join(timeout=180)
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert _deleted_chunks(gc.stdout) > 0, gc.stdout
    assert result == [503], result  # ChunkGone: retrying uploads the chunks again

    _assert_content(a, "target.bin", old)
    _assert_content(b, "target.bin", old)
    fsck = run_cli(a.settings, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    new = b"".join(body.blocks)
    assert _put(b, "target.bin", new) == 204  # a retry stores the chunks again
    _assert_content(a, "target.bin", new)


def test_grant_and_revoke_through_a_apply_on_b_within_a_second(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    """A grant made through A's API shows in B's `Shared/` within 1 s, and so does its
    revocation (B's cache of received grants follows the catalog's `acl` counter)."""
    a, b = pair
    a.add_user("alice", "pw-alice")
    b.users["bob"] = "pw-bob"
    a.add_user("bob", "pw-bob")
    alice = a.client("alice")
    assert alice.request("MKCOL", a.url("proj")).status_code == 201
    assert alice.put(a.url("proj/plan.txt"), data=b"plan").status_code == 201
    bob_on_b = b.client("bob")
    assert bob_on_b.get(b.url("Shared/proj/plan.txt")).status_code == 404  # B caches this

    made = alice.post(a.base + "/api/v1/grants", json={"path": "/proj", "to": "bob", "perm": "r"})
    assert made.status_code == 201, made.text
    visible = lambda: bob_on_b.get(b.url("Shared/proj/plan.txt")).status_code  # noqa: E731
    assert _seconds_until(lambda: visible() == 200) <= 1.0
    assert bob_on_b.get(b.url("Shared/proj/plan.txt")).content == b"plan"

    revoked = alice.delete(a.base + f"/api/v1/grants/{made.json()['id']}")
    assert revoked.status_code == 204
    assert _seconds_until(lambda: visible() == 404) <= 1.0


def _seconds_until(condition: Callable[[], bool], limit: float = 5.0) -> float:
    """How long `condition` took to hold (polled every 50 ms); fails after `limit`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit, "never happened"
        time.sleep(0.05)
    return time.monotonic() - started


def test_gc_keeps_what_history_keeps_and_frees_what_it_let_go(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    """Old versions and trash items written through A survive a GC (their chunks are
    older than the grace) and read back byte for byte through B; once retention drops
    a version and the trash is emptied, the next GC frees their chunks, and nothing
    still kept is touched (design invariant 21)."""
    a, b = pair
    settings: Settings = a.settings
    bodies = [_body(MiB, seed=40 + i) for i in range(3)]
    for body in bodies:
        assert _put(a, "doc.bin", body) in (201, 204)
    folder = {f"f{i}.bin": _body(MiB // 2, seed=50 + i) for i in range(3)}
    assert a.client().request("MKCOL", a.url("dir")).status_code == 201
    for name, body in folder.items():
        assert _put(a, f"dir/{name}", body) == 201
    assert a.client().delete(a.url("dir")).status_code == 204
    time.sleep(1.5)
    gc = run_cli(settings, "gc", "--apply", "--grace", "1")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert _deleted_chunks(gc.stdout) == 0

    api, client = b.base + "/api/v1", b.client()
    versions = client.get(api + "/versions", params={"path": "/doc.bin"}).json()["versions"]
    assert len(versions) == 2
    oldest = {"path": "/doc.bin", "id": versions[-1]["id"]}
    assert client.post(api + "/versions/restore", json=oldest).status_code == 200
    _assert_content(b, "doc.bin", bodies[0])
    (item,) = client.get(api + "/trash").json()["items"]
    assert client.post(api + "/trash/restore", json={"id": item["id"]}).status_code == 200
    for name, body in folder.items():
        _assert_content(b, f"dir/{name}", body)

    # let go: only the newest old version stays, the folder is deleted and purged
    assert client.delete(b.url("dir")).status_code == 204
    assert client.delete(api + "/trash").json() == {"purged": 1}
    time.sleep(1.5)
    keep_one = {"DAVSERVER_VERSIONS_MAX_COUNT": "1"}
    gc = run_cli(settings, "gc", "--apply", "--grace", "1", extra_env=keep_one)
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert _deleted_chunks(gc.stdout) > 0
    left = client.get(api + "/versions", params={"path": "/doc.bin"}).json()["versions"]
    assert [v["sha256"] for v in left] == [hashlib.sha256(bodies[2]).hexdigest()]
    _assert_content(a, "doc.bin", bodies[0])
    again = {"path": "/doc.bin", "id": left[0]["id"]}
    assert client.post(api + "/versions/restore", json=again).status_code == 200
    _assert_content(a, "doc.bin", bodies[2])
    fsck = run_cli(settings, "fsck", "--deep")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert re.search(r"checked \d+ chunks: 0 missing, 0 wrong size, 0 corrupt", fsck.stdout)
