"""kill -9 of a `davserver serve` process in the middle of uploads, on both stacks.

Several PUTs run at once (overwrites of files with known content, and new files); the
server is SIGKILLed while their bodies stream, then started again on the same
configuration. Every file must then hold its old or its new content, whole (a new
file: absent or complete), a PUT that was answered 2xx must have its new content, and
`davserver fsck` must be clean, before and after `davserver gc` sweeps the leftovers.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests

from davserver.settings import Settings
from tests.support.servers import embedded_settings, full_settings
from tests.support.subprocess_server import ServeProcess, run_cli

MiB = 1024 * 1024
BLOCK = 256 * 1024
TIMEOUT = (5.0, 60.0)
FSCK_CLEAN = re.compile(r"checked \d+ chunks: 0 missing, 0 wrong size, 0 corrupt")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Upload:
    """One PUT racing the kill: its path, bodies, and what the client saw."""

    path: str
    old: bytes | None  # None: a new file
    new: bytes
    sent: int = 0  # bytes handed to the socket so far
    outcome: int | str = "not finished"  # status code, or the exception's repr
    midway: threading.Event = field(default_factory=threading.Event)
    sent_all: threading.Event = field(default_factory=threading.Event)
    held_until: threading.Event | None = None  # set: the body pauses after 1 MiB until then

    def body(self) -> Iterator[bytes]:
        """The new content in small paced blocks; `midway` is set after 1 MiB, `sent_all`
        once the whole body is handed over (the server is then finishing or committing).
        A held upload stops after 1 MiB until `held_until` is set (after the kill)."""
        for start in range(0, len(self.new), BLOCK):
            if self.sent >= MiB:
                self.midway.set()
                if self.held_until is not None:
                    self.held_until.wait(timeout=120)
            time.sleep(0.02)  # about 12 MiB/s: still streaming at the kill
            self.sent += BLOCK
            yield self.new[start : start + BLOCK]
        self.midway.set()
        self.sent_all.set()


@pytest.fixture(params=["embedded", "full"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Configuration for the server processes, on a fresh data dir / database."""
    data_dir = tmp_path / "data"
    if request.param == "embedded":
        return embedded_settings(data_dir)
    services = [request.getfixturevalue(f"{n}_service") for n in ("s3", "postgres", "redis")]
    return full_settings(data_dir, *services)


@pytest.fixture
def serve() -> Iterator[list[ServeProcess]]:
    """Started servers are appended here by the test; all are killed after it."""
    started: list[ServeProcess] = []
    yield started
    for server in started:
        server.kill()


def _uploads(round_no: int, current: dict[str, bytes], killed: threading.Event) -> list[Upload]:
    """Overwrites of every file in `current`, new files, two small quick ones, and one held
    until `killed`: whatever the others' timing, one upload is still streaming at the kill
    (without it, every body could be sent before a large one's answer, on a slow machine)."""
    rng = random.Random(round_no)
    uploads = [
        Upload(path, old, rng.randbytes(rng.randint(8 * MiB, 24 * MiB)))
        for path, old in sorted(current.items())
    ]
    uploads += [
        Upload(f"new-{round_no}-{i}.bin", None, rng.randbytes(rng.randint(8 * MiB, 24 * MiB)))
        for i in range(3)
    ]
    uploads += [Upload(f"quick-{round_no}-{i}.bin", None, rng.randbytes(100_000)) for i in range(2)]
    uploads.append(Upload(f"held-{round_no}.bin", None, rng.randbytes(4 * MiB), held_until=killed))
    return uploads


def _run_upload(server: ServeProcess, upload: Upload) -> None:
    try:
        response = server.client().put(server.url(upload.path), data=upload.body(), timeout=TIMEOUT)
        upload.outcome = response.status_code
    except requests.RequestException as e:  # the expected fate of most: the server died
        upload.outcome = repr(e)
    finally:
        upload.midway.set()


def _large_sent(uploads: list[Upload]) -> bool:
    """A large body was sent whole: the server is storing its last chunks or committing."""
    return any(u.sent_all.is_set() for u in uploads if len(u.new) > MiB)


def _large_answered(uploads: list[Upload]) -> bool:
    """A large upload was answered 2xx: the others may be committing right now."""
    return any(u.outcome in (201, 204) for u in uploads if len(u.new) > MiB)


KILL_POINTS: list[Callable[[list[Upload]], bool]] = [lambda _u: True, _large_sent, _large_answered]


def _kill_mid_upload(
    server: ServeProcess,
    uploads: list[Upload],
    when: Callable[[list[Upload]], bool],
    killed: threading.Event,
) -> None:
    """Start every upload; SIGKILL the server once each has sent 1 MiB (or ended) and
    `when(uploads)` holds, then set `killed`. At least one upload must still be streaming."""
    threads = [threading.Thread(target=_run_upload, args=(server, u)) for u in uploads]
    for thread in threads:
        thread.start()
    for upload in uploads:
        assert upload.midway.wait(timeout=60), f"{upload.path} never got going"
    deadline = time.monotonic() + 60
    while not when(uploads):
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.005)
    server.kill()
    killed.set()
    for thread in threads:
        thread.join(timeout=60)
    unfinished = [u.path for u in uploads if not u.sent_all.is_set()]
    assert unfinished, "every upload finished before the kill: nothing was interrupted"


def _listing(server: ServeProcess) -> set[str]:
    url = server.url("/")
    response = server.client().request("PROPFIND", url, headers={"Depth": "1"}, timeout=TIMEOUT)
    assert response.status_code == 207, (response.status_code, response.text[:300])
    hrefs = {
        urlsplit(el.text or "").path.rstrip("/")
        for el in ET.fromstring(response.content).iter("{DAV:}href")
    }
    own = urlsplit(url).path.rstrip("/")
    return {unquote(href.rsplit("/", 1)[-1]) for href in hrefs if href != own}


def _check_after_restart(server: ServeProcess, uploads: list[Upload]) -> dict[str, bytes]:
    """Every file old or new and whole; 2xx means new. Returns the files now present."""
    present: dict[str, bytes] = {}
    client = server.client()
    for upload in uploads:
        response = client.get(server.url(upload.path), timeout=TIMEOUT)
        allowed = {_sha(upload.new): upload.new}
        if upload.old is not None and upload.outcome not in (201, 204):
            allowed[_sha(upload.old)] = upload.old
        if response.status_code == 404:
            assert upload.old is None and upload.outcome != 201, (upload.path, upload.outcome)
            continue
        assert response.status_code == 200, (upload.path, response.status_code)
        digest = _sha(response.content)
        assert digest in allowed, f"{upload.path}: {len(response.content)} bytes, neither version"
        present[upload.path] = allowed[digest]
    assert _listing(server) == set(present)
    return present


def _assert_fsck_clean(settings: Settings, *args: str) -> None:
    fsck = run_cli(settings, "fsck", *args)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert FSCK_CLEAN.search(fsck.stdout), fsck.stdout


def test_kill_9_mid_upload_leaves_old_or_new(
    settings: Settings, serve: list[ServeProcess], tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    serve.append(ServeProcess(settings, log))
    current = {f"file{i}.bin": random.Random(50 + i).randbytes((i + 2) * MiB) for i in range(3)}
    for path, data in current.items():
        assert serve[-1].client().put(serve[-1].url(path), data=data).status_code == 201

    for round_no, when in enumerate(KILL_POINTS):
        killed = threading.Event()
        uploads = _uploads(round_no, current, killed)
        _kill_mid_upload(serve[-1], uploads, when, killed)
        serve.append(ServeProcess(settings, log))
        current = _check_after_restart(serve[-1], uploads)
        _assert_fsck_clean(settings)

    gc = run_cli(settings, "gc", "--apply", "--grace", "0")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    _assert_fsck_clean(settings, "--deep")
    survivor = serve[-1]
    for path, data in current.items():
        assert _sha(survivor.client().get(survivor.url(path)).content) == _sha(data), path
    again = uploads[0].new  # an interrupted upload's chunks may be half-claimed: redo it
    assert survivor.client().put(survivor.url("redo.bin"), data=again).status_code == 201
    assert _sha(survivor.client().get(survivor.url("redo.bin")).content) == _sha(again)
