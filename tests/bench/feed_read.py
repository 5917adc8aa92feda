"""Feed read throughput: entries per second reading 100,000 changes of one user through
`Feed.read` in pages of 1000 (what `GET /api/v1/changes` does, less HTTP and JSON);
not a test, never run in CI.

    python -m tests.bench.feed_read [--postgres] [--changes 100000]

The rows are inserted straight into the log (as `created` file rows of the user's
tree): this measures reading, not writing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from providers.catalog import Catalog
from providers.catalog.schema import Change
from providers.operations import Actor, Feed
from tests.services.postgres import PostgresService


def _fill(catalog: Catalog, user_id: int, count: int) -> None:
    now = time.time()
    rows = [
        {
            "owner_id": user_id,
            "node_id": n + 1000,
            "kind": "created",
            "path": f"/bench/f{n:06d}.txt",
            "at": now,
            "node_kind": "file",
            "size": n,
            "etag": f"{n:064x}",
            "mtime": now,
        }
        for n in range(count)
    ]
    with catalog.db.connection(write=True) as conn:
        for start in range(0, count, 5000):
            conn.execute(insert(Change), rows[start : start + 5000])


def _run(url: str, count: int) -> None:
    catalog = Catalog(url)
    catalog.create_schema()
    user = catalog.users.create("bench", "h")
    feed = Feed(catalog)
    cursor: str | None = feed.latest(Actor(user))
    _fill(catalog, user.id, count)
    started, read, pages = time.perf_counter(), 0, 0
    while True:
        page = feed.read(Actor(user), cursor, 1000)
        read, pages, cursor = read + len(page.entries), pages + 1, page.cursor
        if not page.has_more:
            break
    took = time.perf_counter() - started
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"feed read ({kind}): {read} entries in {pages} pages, {took:.2f} s")
    print(f"  {read / took:,.0f} entries/s")
    catalog.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--changes", type=int, default=100_000)
    args = parser.parse_args()
    if args.postgres:
        service = PostgresService()
        service.start()
        try:
            _run(service.create_database(), args.changes)
        finally:
            service.stop()
    else:
        _run(f"sqlite:///{Path(tempfile.mkdtemp()) / 'feed.db'}", args.changes)


if __name__ == "__main__":
    main()
