"""The first admin's generated password kept in `<data_dir>/initial-admin-password`."""

from __future__ import annotations

import stat
from pathlib import Path

from davserver.auth import initial_password
from davserver.auth.passwords import hash_password


def test_written_private_and_recognised_until_changed(tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet"
    saved = initial_password.write(data_dir, "Abc123")
    assert saved == data_dir / "initial-admin-password"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert saved.read_text(encoding="utf-8") == "Abc123\n"
    assert [p.name for p in data_dir.iterdir()] == [saved.name]  # no temporary left

    assert initial_password.still_initial(data_dir, hash_password("Abc123")) == saved
    assert initial_password.still_initial(data_dir, hash_password("changed")) is None
    assert not saved.exists()  # stale: deleted
    assert initial_password.still_initial(data_dir, None) is None


def test_forget(tmp_path: Path) -> None:
    initial_password.write(tmp_path, "x")
    assert initial_password.forget(tmp_path) is True
    assert initial_password.forget(tmp_path) is False
