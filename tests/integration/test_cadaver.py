"""cadaver (Debian `cadaver`) against a live server on both stacks.

cadaver is scripted through stdin, one process per step, with credentials from a
`.netrc` in a temporary HOME. The sequence is the one reliability.md section 5.6 lists:
mkcol, put, get, copy, move, propset/propget, lock (another client gets 423), lock
discovery from a second run, unlock from a third run, delete. cadaver keeps lock tokens
only for the life of one process; its `unlock` in a new process prompts for the token,
which the test answers with the token `discover` printed. After each step the server's
state is checked over plain HTTP.
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from tests.support.clients import Cadaver, cadaver_binary
from tests.support.servers import RunningServer

DAV = "{DAV:}"
CADAVER_NS = "{http://webdav.org/cadaver/custom-properties/}"


@pytest.fixture
def cadaver(server: RunningServer, tmp_path: Path) -> Cadaver:
    binary = cadaver_binary()
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin admin\npassword {server.users['admin']}\n")
    netrc.chmod(0o600)  # cadaver, like ftp, ignores a .netrc others can read
    workdir = tmp_path / "work"
    workdir.mkdir()
    return Cadaver(binary, server.dav, home, workdir)


def _props(server: RunningServer, path: str) -> dict[str, ET.Element]:
    """PROPFIND allprop Depth 0 of `path`: {tag: element} of the found properties."""
    response = server.client().request("PROPFIND", server.url(path), headers={"Depth": "0"})
    assert response.status_code == 207, (path, response.status_code)
    props: dict[str, ET.Element] = {}
    for prop in ET.fromstring(response.content).iter(f"{DAV}prop"):
        props.update({child.tag: child for child in prop})
    return props


def _content(server: RunningServer, path: str) -> bytes:
    response = server.client().get(server.url(path))
    assert response.status_code == 200, (path, response.status_code)
    return response.content


def _gone(server: RunningServer, path: str) -> bool:
    return server.client().get(server.url(path)).status_code == 404


def _mkcol_put_get(cadaver: Cadaver, server: RunningServer, body: bytes) -> None:
    (cadaver.workdir / "local.bin").write_bytes(body)
    out = cadaver.run("mkcol cdir")
    assert "Creating `cdir': succeeded." in out
    assert _props(server, "cdir")[f"{DAV}resourcetype"].find(f"{DAV}collection") is not None
    out = cadaver.run('put local.bin "cdir/my file.bin"')
    assert "succeeded." in out
    assert _content(server, "cdir/my file.bin") == body
    out = cadaver.run('get "cdir/my file.bin" fetched.bin')
    assert "succeeded." in out
    assert (cadaver.workdir / "fetched.bin").read_bytes() == body


def _copy_move(cadaver: Cadaver, server: RunningServer, body: bytes) -> None:
    out = cadaver.run('copy "cdir/my file.bin" cdir/copy.bin')
    assert "Copying" in out and "succeeded." in out
    assert _content(server, "cdir/copy.bin") == body
    assert _content(server, "cdir/my file.bin") == body
    out = cadaver.run("move cdir/copy.bin cdir/moved.bin")
    assert "Moving" in out and "succeeded." in out
    assert _gone(server, "cdir/copy.bin")
    assert _content(server, "cdir/moved.bin") == body


def _propset_propget(cadaver: Cadaver, server: RunningServer) -> None:
    out = cadaver.run("propset cdir/moved.bin color 'deep blue'")
    assert "Setting property on `cdir/moved.bin': succeeded." in out
    assert _props(server, "cdir/moved.bin")[f"{CADAVER_NS}color"].text == "deep blue"
    out = cadaver.run("propget cdir/moved.bin color")
    assert "Value of color is: deep blue" in out


def _lock(cadaver: Cadaver, server: RunningServer, body: bytes) -> str:
    """cadaver locks the file and exits; another client is refused writes; the lock
    token in the server's lockdiscovery is returned."""
    out = cadaver.run("lock cdir/moved.bin")
    assert "Locking `cdir/moved.bin': succeeded." in out
    other = requests.Session()
    other.auth = ("admin", server.users["admin"])
    assert other.put(server.url("cdir/moved.bin"), data=b"overwrite").status_code == 423
    assert other.delete(server.url("cdir/moved.bin")).status_code == 423
    assert other.delete(server.url("cdir")).status_code == 423
    assert _content(server, "cdir/moved.bin") == body
    discovery = _props(server, "cdir/moved.bin")[f"{DAV}lockdiscovery"]
    token = discovery.findtext(f".//{DAV}locktoken/{DAV}href")
    assert token is not None and token.startswith("opaquelocktoken:")
    return token


def _discover(cadaver: Cadaver, token: str) -> str:
    """A second cadaver process finds the lock and its token."""
    out = cadaver.run("discover cdir/moved.bin")
    found = re.findall(r"Lock token <([^>]+)>", out)
    assert found == [token], out
    assert "Scope: exclusive" in out
    return found[0]


def _unlock_delete(cadaver: Cadaver, server: RunningServer, token: str) -> None:
    """A third process unlocks with the discovered token (typed at cadaver's prompt)."""
    out = cadaver.run("unlock cdir/moved.bin", token)
    assert "Unlocking `cdir/moved.bin':" in out and "succeeded." in out
    discovery = _props(server, "cdir/moved.bin").get(f"{DAV}lockdiscovery")
    assert discovery is None or len(discovery) == 0, "the lock is gone"
    out = cadaver.run("discover cdir/moved.bin")
    assert "no locks found" in out
    out = cadaver.run("delete cdir/moved.bin", 'delete "cdir/my file.bin"')
    assert out.count("succeeded.") == 2
    assert _gone(server, "cdir/moved.bin") and _gone(server, "cdir/my file.bin")
    out = cadaver.run("rmcol cdir")
    assert "Deleting collection `cdir': succeeded." in out
    assert _gone(server, "cdir")


def test_cadaver_session(cadaver: Cadaver, server: RunningServer) -> None:
    body = random.Random(5).randbytes(700_000)
    _mkcol_put_get(cadaver, server, body)
    _copy_move(cadaver, server, body)
    _propset_propget(cadaver, server)
    token = _lock(cadaver, server, body)
    _unlock_delete(cadaver, server, _discover(cadaver, token))
