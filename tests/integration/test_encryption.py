"""Encryption at rest on real servers, both stacks: nothing readable in the blob store,
dedup across users kept, a plain store turned compressed and encrypted (`reseal`), a
key rotation end to end, and a missing key refused at start."""

from __future__ import annotations

import random
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from davserver.app import build_blobstore
from davserver.settings import Settings
from providers.codec import SEALED, MasterKey, parse_master_key
from tests.conftest import STACKS
from tests.support.cli import without_info_logs
from tests.support.dav import put
from tests.support.servers import RunningServer, stack_settings, start_server
from tests.support.subprocess_server import run_cli

MARKER = b"plaintext-marker-9c41e"
SMALL = {"chunk_min_size": 16 * 1024, "chunk_avg_size": 64 * 1024, "chunk_max_size": 256 * 1024}


def text(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    lines = [
        b"%d %s " % (rng.randrange(10**9), MARKER) + b"word " * 8 + b"\n"
        for _ in range(size // 60 + 1)
    ]
    return b"".join(lines)[:size]


def noise(size: int, seed: int) -> bytes:
    """Random bytes (stored as they are, even with compression on) with the marker in
    every 8 KiB, so a plain store shows it and an encrypted one must not."""
    rng = random.Random(seed)
    return b"".join(rng.randbytes(8192 - len(MARKER)) + MARKER for _ in range(size // 8192))


class Store:
    """One store (a stack's catalog and blob store), served by one server at a time."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path, stack: str) -> None:
        self.settings = stack_settings(request, tmp_path / "data", stack, **SMALL)
        self.server: RunningServer | None = None

    def start(self, **changes: Any) -> RunningServer:
        self.stop()
        self.settings = self.settings.replace(**changes)
        self.server = start_server(self.settings)
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def cli(self, *args: str) -> str:
        """`davserver ARGS` against this store; must succeed; its stdout."""
        done = run_cli(self.settings, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def objects(self) -> dict[str, bytes]:
        """Every object of the blob store, read from the disk or from S3 itself."""
        if not self.settings.uses_s3:
            root = self.settings.data_dir / "blobs"
            return {
                str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
            }
        blobs = build_blobstore(self.settings)
        try:
            return {info.key: blobs.get(info.key) for info in blobs.iter_keys("")}
        finally:
            blobs.close()


@pytest.fixture(params=STACKS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = Store(request, tmp_path, request.param)
    yield made
    made.stop()


def key_file(path: Path) -> str:
    """A new key written by `davserver keys generate`."""
    done = run_cli(Settings(data_dir=path.parent), "keys", "generate", str(path))
    assert done.returncode == 0, done.stderr
    assert "BACK IT UP" in done.stdout
    return str(path)


def chunk_rows(server: RunningServer) -> list[tuple[str, str, str | None]]:
    return [
        (h, loc.codec, loc.key_id) for h, _n, loc in server.services.catalog.locators.all_rows()
    ]


def assert_nothing_readable(store: Store, server: RunningServer) -> None:
    """No marker in any object, and no chunk's plaintext SHA-256 in any object name."""
    objects = store.objects()
    assert objects
    assert not [key for key, data in objects.items() if MARKER in data]
    hashes = {h for h, _codec, _key in chunk_rows(server)}
    assert not [key for key in objects if any(h in key for h in hashes)]


def test_nothing_readable_in_the_blob_store(store: Store, tmp_path: Path) -> None:
    server = store.start(encryption_key_file=key_file(tmp_path / "master.key"))
    bodies = {
        f"{MARKER.decode()}.txt": text(700_000, 1),
        "noise.bin": noise(500_000, 1),
        "small.txt": MARKER * 3,
    }
    for name, body in bodies.items():
        put(server.client(), server.url(name), body)
    assert {codec for _h, codec, _k in chunk_rows(server)} == {SEALED}
    assert_nothing_readable(store, server)
    for name, body in bodies.items():
        assert server.client().get(server.url(name)).content == body


def test_the_same_file_by_two_users_is_stored_once(store: Store, tmp_path: Path) -> None:
    server = store.start(encryption_key_file=key_file(tmp_path / "master.key"))
    server.add_user("carol", "carol-pass")
    body = text(1_200_000, 2) + noise(600_000, 2)
    put(server.client(), server.url("first.bin"), body)
    first = store.objects()
    assert len(first) > 10
    put(server.client("carol"), server.url("copy.bin"), body)
    assert store.objects() == first
    assert server.client("carol").get(server.url("copy.bin")).content == body


def test_a_plain_store_turns_compressed_and_encrypted(store: Store, tmp_path: Path) -> None:
    server = store.start(compression="off")
    old = {"old.txt": text(600_000, 3), "old.bin": noise(300_000, 3)}
    for name, body in old.items():
        put(server.client(), server.url(name), body)
    assert {codec for _h, codec, _k in chunk_rows(server)} == {"raw"}
    assert any(MARKER in data for data in store.objects().values())

    server = store.start(compression="auto", encryption_key_file=key_file(tmp_path / "k"))
    for name, body in old.items():
        assert server.client().get(server.url(name)).content == body
    put(server.client(), server.url("new.txt"), text(400_000, 4))
    rows = chunk_rows(server)
    plain = sum(1 for _h, codec, _k in rows if codec == "raw")
    assert 0 < plain < len(rows)  # old chunks raw, the new file's sealed

    assert f"would store {plain} chunks again" in store.cli("reseal", "--dry-run")
    assert f"stored {plain} chunks again" in store.cli("reseal")  # while the server runs
    assert {codec for _h, codec, _k in chunk_rows(server)} == {SEALED}
    assert "stored 0 chunks again" in store.cli("reseal")
    for name, body in old.items():
        assert server.client().get(server.url(name)).content == body
    assert any(MARKER in data for data in store.objects().values())  # until GC
    store.cli("gc", "--apply", "--grace", "0")
    assert "0 missing, 0 wrong size, 0 corrupt" in store.cli("fsck", "--deep")
    assert_nothing_readable(store, server)
    for name, body in old.items():
        assert server.client().get(server.url(name)).content == body


def test_key_rotation_end_to_end(store: Store, tmp_path: Path) -> None:
    old_key = key_file(tmp_path / "old.key")
    server = store.start(encryption_key_file=old_key)
    bodies = {"a.txt": text(500_000, 5), "b.bin": random.Random(5).randbytes(400_000)}
    for name, body in bodies.items():
        put(server.client(), server.url(name), body)

    new_key = key_file(tmp_path / "new.key")
    old_id, new_id = (
        MasterKey(parse_master_key(Path(k).read_text())).key_id for k in (old_key, new_key)
    )
    server = store.start(encryption_key_file=new_key, encryption_old_key_files=old_key)
    put(server.client(), server.url("c.txt"), text(200_000, 6))
    assert f"{old_id} (retired)" in store.cli("keys", "status")
    store.cli("reseal")
    assert {key for _h, _c, key in chunk_rows(server)} == {new_id}
    store.cli("gc", "--apply", "--grace", "0")
    vault = server.services.files.vault
    wanted = {
        vault.object_key(h, loc) for h, _n, loc in server.services.catalog.locators.all_rows()
    }
    assert set(store.objects()) == wanted

    server = store.start(encryption_old_key_files="")  # the old key dropped
    status = store.cli("keys", "status")
    assert f"current key {new_id}" in status and old_id not in status
    for name, body in bodies.items():
        assert server.client().get(server.url(name)).content == body


def test_a_missing_key_is_refused_in_one_line(store: Store, tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    store.start(encryption_key_file=key_file(key))
    store.stop()
    key.rename(tmp_path / "elsewhere.key")
    done = run_cli(store.settings, "serve", "--port", "0")
    errors = without_info_logs(done.stderr.splitlines())
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert errors[0].startswith("davserver: error: encryption key file") and str(key) in errors[0]

    store.settings = store.settings.replace(encryption_key_file="", encryption=True)
    done = run_cli(store.settings, "serve", "--port", "0")  # never a new key over a sealed store
    errors = without_info_logs(done.stderr.splitlines())
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "no key at" in errors[0] and "encryption_key_file" in errors[0]


def test_the_generated_key_is_private_and_announced(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    server = store.start(encryption=True)
    key = store.settings.data_dir / "encryption.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    parse_master_key(key.read_text())
    note = capsys.readouterr().err
    assert f"Generated the encryption master key {key}. BACK IT UP NOW" in note
    put(server.client(), server.url("f.txt"), text(100_000, 7))
    assert_nothing_readable(store, server)
    server = store.start()  # the same key on the next start, no second note
    assert "Generated" not in capsys.readouterr().err
    assert server.client().get(server.url("f.txt")).content == text(100_000, 7)
