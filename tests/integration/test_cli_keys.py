"""`davserver keys generate|status` and `davserver reseal` as a user runs them: in a
working directory with the embedded default store (`./davdata`), as subprocesses."""

from __future__ import annotations

import random
import re
import stat
from pathlib import Path

from tests.support.cli import Serve, cli_env, fails, run_cli

AUTH = ("admin", "pw")


def serve(cwd: Path, **env: str) -> Serve:
    return Serve(cwd, cli_env(DAVSERVER_ADMIN_PASSWORD="pw", **env))


def ok(cwd: Path, *args: str, **env: str) -> str:
    done = run_cli(cwd, *args, env=cli_env(**env))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_keys_generate_writes_a_private_key_once(tmp_path: Path) -> None:
    out = ok(tmp_path, "keys", "generate", "master.key")
    key = tmp_path / "master.key"
    assert re.fullmatch(r"[0-9a-f]{64}\n", key.read_text())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert re.search(r"key id [0-9a-f]{16}, mode 0600", out) and "BACK IT UP" in out
    before = key.read_text()
    fails(tmp_path, "keys", "generate", "master.key", says="never overwritten")
    assert key.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key"]  # no store, no leftovers


def test_reseal_and_keys_status(tmp_path: Path) -> None:
    # a plain store first; chunks of at most 4 KiB in the catalog, the others objects
    server = serve(tmp_path, DAVSERVER_INLINE_MAX_BYTES="4096")
    bodies = {f"f{n}.bin": random.Random(n).randbytes(40_000) for n in range(3)}
    for name, body in bodies.items():
        assert server.dav("PUT", name, AUTH, data=body).status_code == 201
    assert server.stop() == 0
    status = ok(tmp_path, "keys", "status")
    assert "keys: encryption is off" in status
    raw = re.search(r"^raw +- +(\d+) ", status, re.M)
    inline = re.search(r"^inline:raw +- +(\d+) ", status, re.M)
    assert raw and int(raw.group(1)) > 5 and inline and int(inline.group(1)) > 0
    objects, bodies = int(raw.group(1)), int(inline.group(1))

    ok(tmp_path, "keys", "generate", "master.key")
    sealed = {"DAVSERVER_ENCRYPTION_KEY_FILE": "master.key"}
    dry = ok(tmp_path, "reseal", "--dry-run", **sealed)
    assert f"would store {objects + bodies} chunks again" in dry
    victim = next((tmp_path / "davdata/blobs/chunks").rglob("*"))
    while victim.is_dir():
        victim = next(victim.iterdir())
    damaged = bytearray(victim.read_bytes())
    damaged[100] ^= 0x01
    victim.write_bytes(bytes(damaged))

    done = run_cli(tmp_path, "reseal", env=cli_env(**sealed))
    assert done.returncode == 1, done.stderr
    assert f"stored {objects + bodies - 1} chunks again" in done.stdout
    assert "1 corrupt, 0 missing" in done.stdout
    assert re.search(rf"corrupt: {victim.name} .*\n  damages admin:/f\d\.bin\n", done.stdout)
    status = ok(tmp_path, "keys", "status", **sealed)
    current = re.search(r"current key ([0-9a-f]{16})", status)
    assert current and re.search(
        rf"^sealed +{current.group(1)} \(current\) +{objects - 1} ", status, re.M
    )
    assert re.search(rf"^inline:sealed +{current.group(1)} \(current\) +{bodies} ", status, re.M)
    assert re.search(r"^raw +- +1 ", status, re.M)  # the corrupt one, left as it was
