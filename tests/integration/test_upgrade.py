"""Upgrading keeps data: a store made and filled by the last release before migrations
(2cd74e7, run from `git archive` as subprocesses) is opened by this code (`serve`
adopts it as the baseline and upgrades it), and every file, login, grant and link
still works, and the change feed knows the grant, on both stacks (design invariant
14)."""

from __future__ import annotations

import random
import re
import subprocess
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
import requests

from davserver.settings import Settings
from providers.catalog import Catalog
from providers.catalog.migrate import head_revision, metadata_differences
from tests.support.servers import ADMIN_PASSWORD, stack_settings
from tests.support.subprocess_server import ServeProcess, run_cli

ROOT = Path(__file__).resolve().parents[2]
LAST_RELEASE = "2cd74e7"  # the last release before schema migrations
KIB = 1024
FILES = {  # path in alice's home -> bytes: empty, tiny, one chunk, many chunks
    "empty.txt": b"",
    "projects/a.txt": b"alpha\n",
    "projects/one-chunk.bin": random.Random(1).randbytes(3 * KIB),
    "projects/q3/many-chunks.bin": random.Random(2).randbytes(300 * KIB),
    "photos/2026/big.bin": random.Random(3).randbytes(1100 * KIB),
}
DEAD_PROP = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test"><D:set><D:prop>
<Z:color>blue</Z:color></D:prop></D:set></D:propertyupdate>"""
PROP_FIND = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:Z="urn:test"><D:prop><Z:color/></D:prop></D:propfind>"""


@pytest.fixture(scope="module")
def old_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The code of the last release before migrations, extracted from git history."""
    target = tmp_path_factory.mktemp("release-2cd74e7")
    done = subprocess.run(
        ["git", "-C", str(ROOT), "archive", LAST_RELEASE, "davserver", "providers"],
        capture_output=True,
        timeout=60,
    )
    if done.returncode != 0:  # never a skip: the upgrade is what this test is for
        pytest.fail(
            f"cannot extract release {LAST_RELEASE} with `git archive` (a clone with full "
            f"history is needed): {done.stderr.decode(errors='replace').strip()}",
            pytrace=False,
        )
    with tarfile.open(fileobj=BytesIO(done.stdout)) as archive:
        archive.extractall(target, filter="data")
    return target


class OldStore:
    """The store as the old release made it, and what the checks need to know."""

    def __init__(self) -> None:
        self.passwords = {"admin": ADMIN_PASSWORD, "alice": "alice-pass", "bob": "bob-pass"}
        self.app_password = ""
        self.link_path = ""
        self.link_password = "link-pass"


def old_env(old: Path) -> dict[str, str]:
    """Run the release in `old`: first on the path, and not the working directory's
    code (`python -m` puts the working directory first unless PYTHONSAFEPATH)."""
    return {"PYTHONPATH": str(old), "PYTHONSAFEPATH": "1"}


def old_cli(settings: Settings, old: Path, *args: str, stdin: str = "") -> str:
    done = run_cli(settings, *args, stdin=stdin, extra_env=old_env(old))
    assert done.returncode == 0, done.stderr
    return done.stdout


def fill_with_the_old_release(settings: Settings, old: Path, log: Path) -> OldStore:
    """Users, a group, a grant, a share link with a password, an app password, a
    quota (old CLI), then folders, files and a dead property (old server)."""
    store = OldStore()
    server = ServeProcess(settings, log, extra_env=old_env(old))
    try:
        for name in ("alice", "bob"):
            old_cli(settings, old, "user", "add", name, "--password-stdin", stdin=name + "-pass\n")
        alice = requests.Session()
        alice.auth = ("alice", store.passwords["alice"])
        for folder in ("projects", "projects/q3", "photos", "photos/2026"):
            assert alice.request("MKCOL", server.url(folder)).status_code == 201
        for path, body in FILES.items():
            assert alice.put(server.url(path), data=body).status_code == 201
        answer = alice.request("PROPPATCH", server.url("projects/a.txt"), data=DEAD_PROP)
        assert answer.status_code == 207
    finally:
        assert server.stop() == 0
    old_cli(settings, old, "group", "add", "team")
    old_cli(settings, old, "group", "members", "team", "--add", "bob")
    old_cli(settings, old, "grant", "/projects", "--owner", "alice", "--to", "@team", "--perm", "r")
    old_cli(settings, old, "user", "quota", "bob", "10G")
    made = old_cli(settings, old, "user", "app-password", "bob", "--label", "phone")
    store.app_password = re.findall(r"\(shown once\): (\S+)", made)[0]
    shared = old_cli(
        settings,
        old,
        *("share", "create", "/photos", "--owner", "alice", "--password-stdin"),
        stdin=store.link_password + "\n",
    )
    store.link_path = re.findall(r"^(/s/\S+)$", shared, re.MULTILINE)[0]
    return store


def check_with_this_release(server: ServeProcess, store: OldStore) -> None:
    """Every file's bytes, every login, the grant, the link, the quota, the property."""

    def session(user: str, password: str) -> requests.Session:
        client = requests.Session()
        client.auth = (user, password)
        return client

    logins = [session(user, password) for user, password in store.passwords.items()]
    logins.append(session("bob", store.app_password))
    for client in logins:
        answer = client.request("PROPFIND", server.dav, headers={"Depth": "0"})
        assert answer.status_code == 207, client.auth
    alice, bob = logins[1], logins[2]
    for path, body in FILES.items():
        answer = alice.get(server.url(path))
        assert (answer.status_code, answer.content) == (200, body), path
    depth = {"Depth": "0"}
    prop = alice.request("PROPFIND", server.url("projects/a.txt"), data=PROP_FIND, headers=depth)
    assert prop.status_code == 207 and b"blue" in prop.content
    granted = bob.get(server.url("Shared/projects/q3/many-chunks.bin"))
    assert granted.content == FILES["projects/q3/many-chunks.bin"]
    assert bob.put(server.url("Shared/projects/new.txt"), data=b"no").status_code == 403
    link = f"http://127.0.0.1:{server.port}{store.link_path}/dav/2026/big.bin"
    assert requests.get(link, timeout=30).status_code == 401
    answer = requests.get(link, auth=("x", store.link_password), timeout=30)
    assert answer.content == FILES["photos/2026/big.bin"]
    # The change feed knows the old grant (0002 logs it), and a new write is in it.
    api = f"http://127.0.0.1:{server.port}/api/v1/changes"
    listed = bob.get(api, params={"limit": 1000}).json()
    shared = {e["path"] for e in listed["changes"]}
    assert {"/Shared/projects", "/Shared/projects/q3/many-chunks.bin"} <= shared
    cursor = alice.get(f"{api}/latest").json()["cursor"]
    # New writes work on the upgraded store, and dedup still finds the old chunks.
    assert alice.put(server.url("copy.bin"), data=FILES["photos/2026/big.bin"]).status_code == 201
    entries = alice.get(api, params={"cursor": cursor}).json()["changes"]
    assert [(e["op"], e["path"]) for e in entries] == [("created", "/copy.bin")]


@pytest.fixture
def settings_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    settings = stack_settings(request, tmp_path / "davdata", request.param)
    yield settings.replace(
        chunk_min_size=16 * KIB, chunk_avg_size=64 * KIB, chunk_max_size=256 * KIB
    )


@pytest.mark.parametrize("settings_of", ["embedded", "full"], indirect=True)
def test_a_store_of_the_last_release_upgrades_and_keeps_everything(
    settings_of: Settings, old_release: Path, tmp_path: Path
) -> None:
    settings = settings_of
    log = tmp_path / "serve.log"
    store = fill_with_the_old_release(settings, old_release, log)
    catalog = Catalog(settings.catalog_url)
    try:  # the old release made it: tables, and no schema revision
        before = catalog.schema_state()
        assert (before.empty, before.revision) == (False, None)
    finally:
        catalog.close()

    server = ServeProcess(settings, log)
    try:
        check_with_this_release(server, store)
    finally:
        assert server.stop() == 0
    said = log.read_text(errors="replace")
    assert f"catalog schema upgraded from unversioned to {head_revision()}" in said

    catalog = Catalog(settings.catalog_url)
    try:
        assert catalog.schema_state().current
        assert metadata_differences(catalog.db) == []
        assert catalog.users.get("bob").quota_bytes == 10 * 1024**3
    finally:
        catalog.close()
    current = run_cli(settings, "db", "current")
    assert current.returncode == 0 and current.stdout.startswith(head_revision())
