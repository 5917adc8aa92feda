"""The cost of moving folder ETags: a write at depth 10 sets `rev` of the node and its 10
ancestors in its transaction (design invariant 16). Prints the time of one write (a
property change, the smallest logged mutation) at depth 10, with and without the
ancestor update; not a test, never run in CI.

    python -m tests.bench.ancestor_revs [--postgres] [--writes 2000]

SQLite in a temporary file, or with `--postgres` the test PostgreSQL server
(`tests/services`), started for the run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from providers.catalog import Catalog, changes
from tests.services.postgres import PostgresService


def _depth10(catalog: Catalog) -> int:
    """A user with folders d0/d1/.../d9; the id of d9."""
    user = catalog.users.create("bench", "h")
    parent, path = user.home_id, ""
    for n in range(10):
        path += f"/d{n}"
        parent = catalog.tree.mkdir(parent, f"d{n}", user.id, path).id
    return parent


def _per_write(write: Callable[[int], None], writes: int) -> float:
    """Median seconds of one `write`, over `writes` of them in 10 batches."""
    batches = []
    for batch in range(10):
        started = time.perf_counter()
        for n in range(writes // 10):
            write(batch * writes + n)
        batches.append((time.perf_counter() - started) / (writes // 10))
    return statistics.median(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    if args.postgres:
        service = PostgresService()
        service.start()
        try:
            _run(service.create_database(), args.writes)
        finally:
            service.stop()
    else:
        _run(f"sqlite:///{Path(tempfile.mkdtemp()) / 'revs.db'}", args.writes)


def _run(url: str, writes: int) -> None:
    catalog = Catalog(url)
    catalog.create_schema()
    deep = _depth10(catalog)

    def write(n: int) -> None:
        catalog.tree.set_mtime(deep, float(n), "/d0/d1/d2/d3/d4/d5/d6/d7/d8/d9")

    with_revs = _per_write(write, writes)
    original = changes.bump_revs
    changes.bump_revs = lambda conn, start, seq: None  # type: ignore[assignment]
    try:
        without = _per_write(write, writes)
    finally:
        changes.bump_revs = original
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"ancestor ETag update at depth 10 ({kind}, {writes} writes, median of 10)")
    print(f"  write with the update      {with_revs * 1e3:8.3f} ms")
    print(f"  write without it           {without * 1e3:8.3f} ms")
    print(f"  difference                 {(with_revs - without) * 1e3:8.3f} ms")
    catalog.close()


if __name__ == "__main__":
    main()
