"""Opening a store (davserver.store over providers.catalog.migrate): the schema is
created only by `serve` and `db upgrade`, a store made before migrations is adopted as
the baseline, an out-of-date or unknown schema is refused with one line, and the
migrated schema is exactly the models' (design invariant 14)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command as alembic
from sqlalchemy import Engine, create_engine

from davserver.app import build_services
from davserver.cli.main import main
from davserver.settings import Settings
from providers.catalog import Catalog
from providers.catalog.migrate import HEAD, alembic_config, head_revision, metadata_differences
from providers.errors import SchemaMismatch, StoreMissing
from tests.support.cli import without_info_logs
from tests.support.migrations import BASELINE, make_unversioned, stamp


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run from an empty directory, with no `DAVSERVER_*` settings of our own."""
    for name in [n for n in os.environ if n.startswith("DAVSERVER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line on stderr; `serve`'s start-up log lines (info) may precede it."""
    err = without_info_logs(capsys.readouterr().err.splitlines())
    assert len(err) == 1 and err[0].startswith("davserver: error: "), err
    return err[0]


def test_the_head_constant_is_the_newest_script() -> None:
    assert head_revision() == HEAD


def test_a_current_store_opens_without_importing_alembic(tmp_path: Path) -> None:
    """Alembic (and the Mako and Pygments it imports) stays out of a server process
    whose store needs no migration; a store behind is still upgraded (tests below)."""
    url = sqlite_url(tmp_path / "catalog.db")
    catalog = Catalog(url)
    try:
        catalog.prepare_schema(create=True, upgrade=False)
    finally:
        catalog.close()
    probe = (
        "import sys\n"
        "from providers.catalog import Catalog\n"
        f"catalog = Catalog({url!r})\n"
        "change = catalog.prepare_schema(create=False, upgrade=False)\n"
        "catalog.close()\n"
        "print(change.after, sorted({'alembic', 'mako', 'pygments'} & set(sys.modules)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [HEAD, "[]"]


def test_upgrade_head_gives_exactly_the_models_schema(tmp_path: Path) -> None:
    catalog = Catalog(sqlite_url(tmp_path / "catalog.db"))
    try:
        change = catalog.prepare_schema(create=True, upgrade=False)
        assert change.created and change.applied[0] == BASELINE
        assert change.after == head_revision() == catalog.schema_state().revision
        assert metadata_differences(catalog.db) == []
        again = catalog.prepare_schema(create=False, upgrade=False)
        assert again.applied == () and not again.created
    finally:
        catalog.close()


@pytest.mark.parametrize(
    "command",
    [
        ["user", "add", "alice", "--password-stdin"],
        ["group", "list"],
        ["grants", "list"],
        ["share", "list"],
        ["gc"],
        ["fsck"],
        ["db", "current"],
    ],
)
def test_admin_commands_on_a_missing_store_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main(command) == 2
    line = one_error_line(capsys)
    where = tmp_path / "davdata"
    assert f"no davserver store at {where} (catalog.db missing)" in line
    assert "pass --data-dir or --config, or start `davserver serve` once" in line
    assert not where.exists()

    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    assert main([*command, "--data-dir", str(elsewhere)]) == 2
    assert f"no davserver store at {elsewhere} (catalog.db missing)" in one_error_line(capsys)
    assert list(elsewhere.iterdir()) == []


def test_an_empty_catalog_file_is_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "davdata").mkdir()
    sqlite3.connect(tmp_path / "davdata/catalog.db").close()
    assert main(["user", "list"]) == 2
    assert "(catalog.db has no davserver tables)" in one_error_line(capsys)
    assert tables(tmp_path / "davdata/catalog.db") == set()


def test_db_upgrade_creates_and_db_current_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"applied {BASELINE}: Baseline")
    assert (
        out[-1]
        == f"created a new store at {tmp_path}/davdata/catalog.db: schema at {head_revision()}"
    )
    assert main(["db", "current"]) == 0
    assert (
        capsys.readouterr().out == f"{head_revision()} (current: the schema this release needs)\n"
    )
    assert main(["db", "upgrade"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["group", "add", "team"]) == 0


def test_a_store_made_before_migrations_is_adopted_as_the_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "davdata/catalog.db"
    path.parent.mkdir()
    make_unversioned(sqlite_url(path))
    with sqlite3.connect(path) as db:  # an account as that release stored it
        db.execute(
            "INSERT INTO node (id, parent_id, name, name_key, kind, owner_id, size, mtime,"
            " created) VALUES (1, NULL, '', '', 'dir', 1, 0, 0, 0)"
        )
        db.execute(
            "INSERT INTO user (id, name, password_hash, home_id, used_bytes, created_at)"
            " VALUES (1, 'alice', 'hash', 1, 0, 0)"
        )
    assert "alembic_version" not in tables(path)

    # Admin commands and `db current` see it as behind and change nothing.
    assert main(["user", "list"]) == 2
    line = one_error_line(capsys)
    assert line.endswith(
        f"catalog schema is unversioned (made before migrations), this release needs "
        f"{head_revision()}: run `davserver db upgrade`"
    )
    assert main(["db", "current"]) == 1
    assert capsys.readouterr().out.startswith("unversioned (behind: this release needs")
    assert "alembic_version" not in tables(path)

    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"catalog schema upgraded: unversioned -> {head_revision()}"
    )
    catalog = Catalog(sqlite_url(path))
    try:
        assert catalog.schema_state().current
        alice = catalog.users.get("alice")
        assert alice is not None and (alice.id, alice.home_id) == (1, 1)
        assert catalog.tree.get(1) is not None
        assert metadata_differences(catalog.db) == []
    finally:
        catalog.close()


def test_serve_upgrades_unless_auto_migrate_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "davdata", auto_migrate=False)
    settings.data_dir.mkdir()
    make_unversioned(settings.catalog_url)
    with pytest.raises(SchemaMismatch, match="run `davserver db upgrade`") as refused:
        build_services(settings, purpose="serve")
    assert refused.value.upgradable
    assert "alembic_version" not in tables(settings.data_dir / "catalog.db")

    services = build_services(settings.replace(auto_migrate=True), purpose="serve")
    try:
        assert services.catalog.schema_state().current
        said = f"catalog schema upgraded from unversioned to {head_revision()}"
        assert [r.levelname for r in caplog.records if said in r.getMessage()] == ["WARNING"]
    finally:
        services.close()


def test_serve_refuses_one_line_with_auto_migrate_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "davdata").mkdir()
    make_unversioned(sqlite_url(tmp_path / "davdata/catalog.db"))
    monkeypatch.setenv("DAVSERVER_AUTO_MIGRATE", "false")
    assert main(["serve", "--port", "0"]) == 2
    assert one_error_line(capsys).endswith(
        f"this release needs {head_revision()}: run `davserver db upgrade`"
    )


def test_a_schema_newer_than_this_release_is_refused_by_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    stamp(sqlite_url(tmp_path / "davdata/catalog.db"), "9999")
    for command in (["serve", "--port", "0"], ["user", "list"], ["db", "upgrade"]):
        assert main(command) == 2
        assert one_error_line(capsys).endswith(
            f"catalog schema is at 9999, which this release does not know "
            f"(made by a newer davserver?); this release needs {head_revision()}"
        )
    assert main(["db", "current"]) == 1
    assert capsys.readouterr().out.startswith("9999 (unknown to this release")


def test_a_missing_database_is_named_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing) as missing:
        build_services(Settings(data_dir=tmp_path / "d"), purpose="admin")
    assert str(missing.value).startswith(f"no davserver store at {tmp_path / 'd'}")
    assert not (tmp_path / "d").exists()


def test_the_schema_check_sees_a_change_without_a_migration(tmp_path: Path) -> None:
    """The guard above can fail: a column and an index the models lack are found."""
    path = tmp_path / "catalog.db"
    catalog = Catalog(sqlite_url(path))
    try:
        catalog.create_schema()
        with sqlite3.connect(path) as db:
            db.execute('ALTER TABLE "user" ADD COLUMN nickname VARCHAR(64)')
            db.execute("DROP INDEX ix_node_owner_id")
        found = {diff[0] for diff in metadata_differences(catalog.db)}
        assert found == {"remove_column", "add_index"}
    finally:
        catalog.close()


def test_an_interrupted_upgrade_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """All revisions of one upgrade commit together: a failure after a revision ran
    (here, in its progress report) takes back the tables it made and the stamp."""
    path = tmp_path / "catalog.db"
    make_unversioned(sqlite_url(path))
    before = tables(path)

    def fail(revision: str, _description: str) -> None:
        raise RuntimeError(f"interrupted after {revision}")

    old, new = Catalog(sqlite_url(path)), Catalog(sqlite_url(tmp_path / "new.db"))
    try:
        with pytest.raises(RuntimeError, match="interrupted after"):
            old.prepare_schema(create=False, upgrade=True, on_step=fail)
        assert tables(path) == before and "alembic_version" not in before
        with pytest.raises(RuntimeError, match="interrupted after"):
            new.prepare_schema(create=True, upgrade=True, on_step=fail)
        assert tables(tmp_path / "new.db") == set()
    finally:
        old.close()
        new.close()


def dump(path: Path, names: set[str]) -> list[str]:
    """Every row and definition of the tables `names`, as SQL text."""
    with sqlite3.connect(path) as db:
        return [line for line in db.iterdump() if any(f'"{n}"' in line for n in names)]


def migrate(engine: Engine, revision: str, *statements: str, down: bool = False) -> None:
    """Upgrade (or with `down`, downgrade) the store to `revision`, then run
    `statements`, in one transaction."""
    with engine.begin() as conn:
        step = alembic.downgrade if down else alembic.upgrade
        step(alembic_config({"connection": conn}), revision)
        for statement in statements:
            conn.exec_driver_sql(statement)


def assert_upgrade_only_adds(
    engine: Engine, path: Path, old: str, new: str, added: set[str], row: str
) -> tuple[set[str], list[str]]:
    """A store at `old` holding `row` upgraded to `new` gains the tables `added` and
    keeps every other row and definition; (its tables at `old`, their dump)."""
    migrate(engine, old, row)
    tables_before = tables(path)
    before = dump(path, tables_before)
    migrate(engine, new)
    assert tables(path) - tables_before == added
    assert [line for line in dump(path, tables_before) if "alembic_version" not in line] == [
        line for line in before if "alembic_version" not in line
    ]
    return tables_before, before


def test_0008_only_adds_the_shared_state_tables(tmp_path: Path) -> None:
    """A store of the release before (0007) keeps every row and table through the
    upgrade to 0008 and back."""
    path = tmp_path / "catalog.db"
    engine = create_engine(sqlite_url(path))
    try:
        user = (
            "INSERT INTO user (id, name, password_hash, home_id, used_bytes, created_at)"
            " VALUES (1, 'alice', 'hash', 1, 0, 0)"
        )
        added = {"dav_lock", "ephemeral", "expiring_count"}
        old, before = assert_upgrade_only_adds(engine, path, "0007", "0008", added, user)
        migrate(engine, "0007", down=True)
        assert dump(path, old) == before
    finally:
        engine.dispose()


def test_0009_only_adds_chunk_bodies_and_keeps_them(tmp_path: Path) -> None:
    """A store of the release before (0008) keeps every row and table through the
    upgrade to 0009 and back; a downgrade refuses while chunks are kept in the
    catalog, since it would lose their bytes."""
    path = tmp_path / "catalog.db"
    engine = create_engine(sqlite_url(path))
    try:
        chunk = (
            "INSERT INTO chunk (hash, size, state, touched_at, created_at)"
            " VALUES ('ab', 3, 'stored', 0, 0)"
        )
        old, before = assert_upgrade_only_adds(engine, path, "0008", "0009", {"chunk_body"}, chunk)
        migrate(engine, "0009", "INSERT INTO chunk_body VALUES ('ab', 'raw', NULL, x'616263')")
        with pytest.raises(RuntimeError, match="1 chunks are kept in the catalog"):
            migrate(engine, "0008", down=True)
        migrate(engine, "0009", "DELETE FROM chunk_body")
        migrate(engine, "0008", down=True)
        assert dump(path, old) == before
    finally:
        engine.dispose()
