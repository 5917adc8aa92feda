"""What history costs (issue 16); not a test, never run in CI.

    python -m tests.bench.history_cost [--postgres] [--files 1000 100000] [--rounds 5]
    python -m tests.bench.history_cost --storage [--size-mib 100]

Delete and restore: a folder of N files (100 subfolders) is deleted by a WebDAV
DELETE through the whole WSGI app (in process, no socket) and put back with
`POST /api/v1/trash/restore`, `--rounds` times; medians per N. The tree's rows are
inserted straight into the catalog (all files share one content): this measures
deleting and restoring, not writing.

Snapshots (`--snapshot`): PROPFIND Depth 1 of one folder of `/snapshots/<moment>/`
over the same tree: the first answer builds the snapshot's state, the next finds it
cached.

Storage: a file of `--size-mib` random bytes, then 10 versions of it, each with 10
small edits (64 bytes at random places) over the previous one, through the
operations layer on the embedded default (a local blob directory, production
chunking, or `--avg-kib`); prints the bytes under the blob directory after the first version and
after all, and what the quota is charged for history.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import insert
from werkzeug.test import Client

from davserver.app import Services, build_app, build_services
from davserver.auth.passwords import hash_password
from davserver.settings import Settings
from providers.catalog.schema import Node
from providers.operations import Actor
from tests.services.postgres import PostgresService

PASSWORD = "bench-pass"
MiB = 1024 * 1024


@contextmanager
def _services(database_url: str = "", avg_kib: int = 1024) -> Iterator[Services]:
    data = Path(tempfile.mkdtemp(prefix="history-bench-"))
    chunking = {
        "chunk_min_size": avg_kib * 1024 // 4,
        "chunk_avg_size": avg_kib * 1024,
        "chunk_max_size": avg_kib * 1024 * 4,
    }
    settings = Settings(
        data_dir=data, database_url=database_url, verbose=0, log_level="error", **chunking
    )
    services = build_services(settings)
    try:
        yield services
    finally:
        services.close()


def _fill(services: Services, home_id: int, owner_id: int, files: int) -> None:
    """/big with 100 folders holding `files` files between them, sharing one content."""
    catalog = services.catalog
    now = time.time()
    big = catalog.tree.mkdir(home_id, "big", owner_id, "/big")
    folders = [
        catalog.tree.mkdir(big.id, f"d{n:03d}", owner_id, f"/big/d{n:03d}") for n in range(100)
    ]
    rows = [
        {
            "parent_id": folders[n % 100].id,
            "name": f"f{n:06d}.txt",
            "name_key": f"f{n:06d}.txt",
            "kind": "file",
            "owner_id": owner_id,
            "size": 0,
            "mtime": now,
            "created": now,
        }
        for n in range(files)
    ]
    with catalog.db.connection(write=True) as conn:
        for start in range(0, files, 5000):
            conn.execute(insert(Node), rows[start : start + 5000])


def _delete_restore(database_url: str, files: int, rounds: int) -> tuple[float, float]:
    with _services(database_url) as services:
        user = services.catalog.users.create("bench", hash_password(PASSWORD))
        _fill(services, user.home_id, user.id, files)
        client = Client(build_app(services))
        token = base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
        auth = {"Authorization": f"Basic {token}"}
        deletes, restores = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            answer = client.delete("/dav/big", headers=auth)
            deletes.append(time.perf_counter() - started)
            assert answer.status_code == 204, answer.status_code
            items = json.loads(client.get("/api/v1/trash", headers=auth).data)["items"]
            body = json.dumps({"id": items[0]["id"]})
            started = time.perf_counter()
            answer = client.post(
                "/api/v1/trash/restore",
                data=body,
                headers={**auth, "Content-Type": "application/json"},
            )
            restores.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.data
        services.push.close()
        return statistics.median(deletes), statistics.median(restores)


def _snapshot(database_url: str, files: int, rounds: int) -> tuple[float, float]:
    """PROPFIND Depth 1 of one folder of a snapshot of a home of `files` files: the
    first answer builds the snapshot's state, the next ones find it cached."""
    with _services(database_url) as services:
        user = services.catalog.users.create("bench", hash_password(PASSWORD))
        _fill(services, user.home_id, user.id, files)
        time.sleep(1.1)  # the moment's second is over: its state may be cached
        moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        client = Client(build_app(services))
        token = base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Depth": "1"}
        url = f"/snapshots/{moment}/big/d000/"
        built, cached = [], []
        for _ in range(rounds):
            services.ops.snapshots.forget()
            for times in (built, cached):
                started = time.perf_counter()
                answer = client.open(url, method="PROPFIND", headers=headers)
                times.append(time.perf_counter() - started)
                assert answer.status_code == 207, answer.status_code
        services.push.close()
        return statistics.median(built), statistics.median(cached)


def _edited(body: bytes, rng: random.Random) -> bytes:
    edited = bytearray(body)
    for _ in range(10):
        at = rng.randrange(len(edited) - 64)
        edited[at : at + 64] = rng.randbytes(64)
    return bytes(edited)


def _blob_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "blobs").rglob("*") if p.is_file())


def _storage(size_mib: int, avg_kib: int) -> None:
    with _services(avg_kib=avg_kib) as services:
        ops, catalog = services.ops, services.catalog
        user = catalog.users.create("bench", "unused")
        actor = Actor(user)
        rng = random.Random(16)
        body = rng.randbytes(size_mib * MiB)
        for version in range(11):
            target = ops.view(actor).locate(["big.bin"])
            home = ops.view(actor).locate([])
            assert home is not None
            pending = (
                ops.create_file(actor, home, "big.bin", announced=len(body))
                if target is None
                else ops.overwrite(actor, target, announced=len(body))
            )
            pending.writer.writelines([body[i : i + MiB] for i in range(0, len(body), MiB)])
            ops.commit(actor, pending, pending.writer.finish(), mtime=time.time())
            if version == 0:
                first = _blob_bytes(services.settings.data_dir)
            body = _edited(body, rng)
        total = _blob_bytes(services.settings.data_dir)
        usage = catalog.history_usage.usage(user.id)
        exact = catalog.history_usage.refresh(user.id)
        print(f"{size_mib} MiB file, 10 versions of 10 small edits each, chunks of {avg_kib} KiB")
        print(f"  stored after the first version: {first:,} bytes")
        print(f"  stored after all 11:            {total:,} bytes ({total / first:.3f}x the first)")
        print(f"  quota charge for history: {usage.versions:,} running, {exact:,} exact")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--storage", action="store_true")
    parser.add_argument("--snapshot", action="store_true", help="time snapshot listings")
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--avg-kib", type=int, default=1024, help="average chunk size")
    args = parser.parse_args()
    if args.storage:
        _storage(args.size_mib, args.avg_kib)
        return
    service = PostgresService() if args.postgres else None
    if service is not None:
        service.start()
    try:
        for files in args.files:
            url = service.create_database() if service is not None else ""
            kind = "PostgreSQL" if service is not None else "SQLite"
            if args.snapshot:
                built, cached = _snapshot(url, files, args.rounds)
                print(
                    f"{kind} {files:>7,} files: snapshot folder listing {built * 1000:.1f} ms"
                    f" building the state, {cached * 1000:.1f} ms cached (medians)"
                )
                continue
            delete, restore = _delete_restore(url, files, args.rounds)
            print(
                f"{kind} {files:>7,} files: DELETE {delete * 1000:.1f} ms,"
                f" restore {restore * 1000:.1f} ms (medians of {args.rounds})"
            )
    finally:
        if service is not None:
            service.stop()


if __name__ == "__main__":
    main()
