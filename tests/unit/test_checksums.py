"""Whole-content checksums: computed as an upload streams, stored with the content,
verified against what a client announced before anything commits, filled later for
contents that lack them; and the headers that carry them (`davserver.http.digests`)."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from davserver.http.digests import (
    MalformedChecksum,
    announced_checksums,
    checksum_headers,
    put_headers,
)
from providers.blobstore.base import chunk_key
from providers.catalog import Catalog, NewContent, UserRecord
from providers.catalog.migrate import alembic_config, head_revision
from providers.checksum_fill import fill_checksums
from providers.checksums import Checksums, Hasher, checksums_of, verify
from providers.chunker import FastCDCChunker
from providers.errors import ChecksumMismatch
from providers.filestore import FileStore
from providers.operations import Actor, Located, Operations
from tests.support.stores import SlowBlobStore

KIB = 1024
DATA = b"The quick brown fox jumps over the lazy dog"


def sums_of(data: bytes) -> Checksums:
    return Checksums(
        sha1=hashlib.sha1(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def b64(algorithm: str, data: bytes) -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


# --- the engine: hashing and verifying ------------------------------------------------------


def test_the_hasher_gives_hashlibs_digests_over_pieces() -> None:
    hasher = Hasher(extra=["sha512", "crc32"])  # an unknown extra is ignored
    for start in range(0, len(DATA), 5):
        hasher.update(memoryview(DATA)[start : start + 5])
    assert hasher.checksums() == sums_of(DATA)
    assert hasher.hexdigests()["sha512"] == hashlib.sha512(DATA).hexdigest()
    assert set(hasher.hexdigests()) == {"sha1", "md5", "sha256", "sha512"}
    assert checksums_of([b""]) == sums_of(b"")
    assert sums_of(DATA).oc_value == (
        f"SHA1:{hashlib.sha1(DATA).hexdigest()} MD5:{hashlib.md5(DATA).hexdigest()} "
        f"SHA256:{hashlib.sha256(DATA).hexdigest()}"
    )


def test_a_resumed_hasher_covers_both_and_verifies_its_own_bytes() -> None:
    first, second = DATA[:7], DATA[7:]
    before = Hasher()
    before.update(first)
    hasher = Hasher(extra=["sha1"], resume=before)
    hasher.update(second)
    assert hasher.checksums() == sums_of(DATA)  # the stored ones continue
    assert hasher.hexdigests() == {"sha1": hashlib.sha1(second).hexdigest()}  # the piece's
    assert before.checksums() == sums_of(first)  # resuming copies, never changes it


def test_verify_refuses_a_mismatch_and_skips_what_was_not_computed() -> None:
    computed = Hasher()
    computed.update(DATA)
    digests = computed.hexdigests()
    verify({"sha1": digests["sha1"].upper(), "adler32": "00"}, digests)
    with pytest.raises(ChecksumMismatch) as refused:
        verify({"md5": hashlib.md5(b"other").hexdigest()}, digests)
    assert refused.value.http_status == 400 and "MD5" in str(refused.value)


def test_an_upload_is_checksummed_as_it_streams(files: FileStore) -> None:
    data = os.urandom(300 * KIB + 11)  # many chunks of 1-16 KiB
    writer = files.writer()
    writer.writelines(data[i : i + 7000] for i in range(0, len(data), 7000))
    content = writer.finish()
    assert content.checksums == sums_of(data)
    empty = files.writer()
    empty.writelines([])
    assert empty.finish().checksums == sums_of(b"")


def test_batches_hashed_in_the_pool_give_the_checksums_of_the_whole(catalog: Catalog) -> None:
    chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    store = FileStore(catalog, SlowBlobStore(0.001), chunker, workers=4, batch_bytes=32 * KIB)
    bodies = [os.urandom(700 * KIB + n) for n in range(4)]  # ~25 batches each
    results: dict[int, NewContent] = {}

    def upload(n: int) -> None:
        writer = store.writer(extra=["sha512"])
        writer.writelines(bodies[n][i : i + 3000] for i in range(0, len(bodies[n]), 3000))
        results[n] = writer.finish()
        assert writer.hexdigests()["sha512"] == hashlib.sha512(bodies[n]).hexdigest()

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {n: c.checksums for n, c in results.items()} == {
        n: sums_of(body) for n, body in enumerate(bodies)
    }
    assert store.buffers.lent == 0
    store.close()


def test_an_upload_cut_by_a_pool_shutdown_ends_without_hanging(catalog: Catalog) -> None:
    """Batches whose store or hash tasks the shut-down pool never runs still hand
    their buffers back, so `abort` returns."""
    chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    store = FileStore(catalog, SlowBlobStore(0.001), chunker, workers=1, batch_bytes=16 * KIB)
    writer = store.writer()
    outcome: list[BaseException | None] = []

    def upload() -> None:
        def blocks() -> Iterator[bytes]:
            for n in range(200):
                if n == 20:
                    store.close()  # cancels what is queued; later submits fail
                yield os.urandom(3000)

        try:
            writer.writelines(blocks())
            writer.finish()
            outcome.append(None)
        except BaseException as e:
            writer.abort()
            outcome.append(e)

    thread = threading.Thread(target=upload)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the upload hung"
    assert outcome and outcome[0] is not None
    assert store.buffers.lent == 0


# --- the operations layer: verified before the commit ---------------------------------------


def _home(ops: Operations, user: UserRecord) -> Located:
    found = ops.view(Actor(user)).locate([])
    assert found is not None
    return found


def _put(ops: Operations, user: UserRecord, name: str, data: bytes, **expected: str) -> None:
    home, actor = _home(ops, user), Actor(user)
    target = ops.view(actor).locate([name])
    if target is None:
        pending = ops.create_file(actor, home, name, expected=expected)
    else:
        pending = ops.overwrite(actor, target, expected=expected)
    pending.writer.writelines([data])
    ops.commit(actor, pending, pending.writer.finish(), mtime=1.0)


def _read(ops: Operations, user: UserRecord, name: str) -> bytes:
    found = ops.view(Actor(user)).locate([name])
    assert found is not None and found.node is not None
    return ops.files.reader(found.node.content_id, found.node.size).readall()


def test_a_body_that_is_not_what_was_announced_commits_nothing(
    ops: Operations, user: UserRecord, catalog: Catalog
) -> None:
    _put(ops, user, "a.txt", b"first", sha1=hashlib.sha1(b"first").hexdigest())
    found = ops.view(Actor(user)).locate(["a.txt"])
    assert found is not None and found.node is not None
    assert ops.checksums(found.node) == sums_of(b"first")
    for algorithm in ("sha1", "md5", "sha256", "sha512"):
        wrong = {algorithm: hashlib.new(algorithm, b"not this").hexdigest()}
        with pytest.raises(ChecksumMismatch):
            _put(ops, user, "a.txt", b"second", **wrong)
        with pytest.raises(ChecksumMismatch):
            _put(ops, user, "new.txt", b"second", **wrong)
    assert _read(ops, user, "a.txt") == b"first"
    assert ops.view(Actor(user)).locate(["new.txt"]) is None
    _put(ops, user, "a.txt", b"second", sha512=hashlib.sha512(b"second").hexdigest(), x="1")
    assert _read(ops, user, "a.txt") == b"second"


# --- contents without checksums: filled later -----------------------------------------------


def _legacy_file(files: FileStore, user: UserRecord, name: str, data: bytes) -> int:
    """A file committed as a release before checksums did: its content has none."""
    writer = files.writer()
    writer.writelines([data])
    content = writer.finish()
    bare = NewContent(content.size, content.digest, content.extents)
    node, _ = files.catalog.contents.commit_file(
        user.home_id, name, user.id, bare,
        mtime=0.0, content_type=None, path=f"/{name}", author_id=None,
    )  # fmt: skip
    assert node.content_id is not None
    return node.content_id


def test_the_maintenance_fill_reads_each_content_without_checksums_once(
    files: FileStore, catalog: Catalog, user: UserRecord
) -> None:
    olds = {_legacy_file(files, user, f"old{i}", os.urandom(20 * KIB + i)): i for i in range(3)}
    writer = files.writer()
    writer.writelines([b"new"])
    catalog.contents.commit_file(
        user.home_id, "new", user.id, writer.finish(),
        mtime=0.0, content_type=None, path="/new", author_id=None,
    )  # fmt: skip
    assert catalog.checksums.of(olds) == {}
    dry = fill_checksums(catalog, files, apply=False)
    assert (dry.missing, dry.filled, dry.ok) == (3, 0, True)
    assert dry.missing_bytes == sum(20 * KIB + i for i in range(3))
    assert catalog.checksums.of(olds) == {}
    seen: list[str] = []

    def progress(items: list[tuple[int, int]], label: str) -> list[tuple[int, int]]:
        seen.append(label)
        return items

    done = fill_checksums(catalog, files, apply=True, progress=progress)  # type: ignore[arg-type]
    assert (done.missing, done.filled, done.ok, seen) == (3, 3, True, ["contents"])
    for content_id, stored in catalog.checksums.of(olds).items():
        extents = catalog.contents.extents(content_id)
        data = files.extents_reader(extents).readall()
        assert stored == sums_of(data)
    again = fill_checksums(catalog, files, apply=True)
    assert (again.missing, again.filled) == (0, 0)
    # filling only ever writes NULL checksums: a second filler changes nothing
    first = next(iter(olds))
    assert not catalog.checksums.fill(first, sums_of(b"something else"))


def test_a_content_whose_chunks_are_gone_is_reported_and_the_others_filled(
    files: FileStore, catalog: Catalog, user: UserRecord
) -> None:
    broken = _legacy_file(files, user, "broken", os.urandom(40 * KIB))
    fine = _legacy_file(files, user, "fine", os.urandom(40 * KIB))
    for extent in catalog.contents.extents(broken)[:1]:
        files.blobs.delete(chunk_key(extent.chunk_hash, files.key_prefix))
    report = fill_checksums(catalog, files, apply=True)
    assert report.failed == [broken] and report.filled == 1 and not report.ok
    assert set(catalog.checksums.of([broken, fine])) == {fine}


# --- the headers ----------------------------------------------------------------------------


def test_the_answer_headers_carry_sha1_and_sha256() -> None:
    sums = sums_of(DATA)
    whole = dict(checksum_headers(sums, partial=False))
    sha256 = f"sha-256=:{b64('sha256', DATA)}:"
    assert whole == {
        "OC-Checksum": f"SHA1:{sums.sha1}",
        "Repr-Digest": sha256,
        "Content-Digest": sha256,
    }
    part = dict(checksum_headers(sums, partial=True))
    assert "Content-Digest" not in part and part["Repr-Digest"] == sha256
    assert dict(put_headers(sums)) == {"OC-Checksum": f"SHA1:{sums.sha1}", "Repr-Digest": sha256}
    assert checksum_headers(None, partial=False) == put_headers(None) == []


def test_every_announcing_header_is_read_and_unknown_algorithms_ignored() -> None:
    sums = sums_of(DATA)
    environ = {
        "HTTP_OC_CHECKSUM": f"SHA1:{sums.sha1.upper()} ADLER32:084b021f MD5:{sums.md5}",
        "HTTP_CONTENT_DIGEST": f"sha-512=:{b64('sha512', DATA)}:, crc32c=:AAAAAA==:",
        "HTTP_REPR_DIGEST": f"sha-256=:{b64('sha256', DATA)}:;param=1",
        "HTTP_DIGEST": f"SHA={b64('sha1', DATA)}, UNIXsum=30637",
        "HTTP_CONTENT_MD5": b64("md5", DATA),
    }
    assert announced_checksums(environ) == {
        "sha1": sums.sha1,
        "md5": sums.md5,
        "sha256": sums.sha256,
        "sha512": hashlib.sha512(DATA).hexdigest(),
    }
    assert announced_checksums({"HTTP_DIGEST": f"sha-256={b64('sha256', DATA)}"}) == {
        "sha256": sums.sha256
    }
    assert announced_checksums({"HTTP_OC_CHECKSUM": "Adler32:084b021f"}) == {}
    assert announced_checksums({}) == {}


@pytest.mark.parametrize(
    "environ",
    [
        {"HTTP_OC_CHECKSUM": "SHA1:abc"},  # too short
        {"HTTP_OC_CHECKSUM": "MD5:" + "z" * 32},  # not hex
        {"HTTP_CONTENT_DIGEST": "sha-256=abc"},  # not a byte sequence
        {"HTTP_CONTENT_DIGEST": "sha-256=:!!!!:"},  # not base64
        {"HTTP_DIGEST": "SHA-256=" + base64.b64encode(b"short").decode()},  # wrong length
        {"HTTP_OC_CHECKSUM": f"SHA1:{'0' * 40}", "HTTP_DIGEST": f"SHA={b64('sha1', DATA)}"},
    ],
)
def test_a_malformed_or_contradictory_announcement_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(MalformedChecksum):
        announced_checksums(environ)


def test_a_store_at_the_previous_revision_keeps_its_contents(tmp_path: Path) -> None:
    """0002 -> 0003 adds the columns, NULL for every content written before (the
    maintenance fill computes them later: tests above)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config({"connection": conn}), "0002")
        conn.execute(
            text("INSERT INTO content (id, size, digest, created_at) VALUES (7, 3, 'd', 0)")
        )
    engine.dispose()
    old = Catalog(url)
    try:
        change = old.prepare_schema(create=False, upgrade=True)
        assert change.applied[-1] == head_revision()
        assert old.checksums.of([7]) == {}
        with old.db.connection() as conn:
            row = conn.execute(text("SELECT size, digest, sha1 FROM content WHERE id = 7")).one()
        assert tuple(row) == (3, "d", None)
    finally:
        old.close()
