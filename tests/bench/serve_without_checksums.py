"""`python -m davserver` with the whole-content checksums switched off: the baseline of
`tests.bench.checksum_cost`, never a way to run a server (the checksums it stores are
those of no bytes)."""

from __future__ import annotations

import sys

from davserver.cli.main import main
from providers.checksums import Hasher


def _skip(self: Hasher, data: bytes | memoryview) -> None:
    pass


def _skip_one(self: Hasher, algorithm: int, data: bytes | memoryview) -> None:
    pass


Hasher.update = _skip  # type: ignore[method-assign]
Hasher.update_one = _skip_one  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
