"""Unit tests of what `davserver.server` does before it serves."""

from __future__ import annotations

import gc

from davserver.server import freeze_startup_objects


def test_startup_objects_are_left_out_of_later_collections() -> None:
    started_with = gc.get_freeze_count()
    kept: list[list[int]] = [[] for _ in range(1000)]  # as start-up builds the app
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= started_with + len(kept)
    finally:
        gc.unfreeze()
