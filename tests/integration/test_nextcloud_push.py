"""The notify_push WebSocket (`davserver.nextcloud.notify_push`), driven as a Nextcloud
client does: the URL from the capabilities, the user name then the password (or `""`
and a pre-auth token) as messages, then `notify_file`, or `notify_file_id [ids]` after
`listen notify_file_id`. On both stacks, and across two instances of the full stack:
a PUT on B reaches a socket on A within 2 s, through Redis."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from davserver.auth.passwords import generate_app_password, hash_password
from tests.integration.test_tls_proxy import serve_https
from tests.support.dav import put
from tests.support.servers import ADMIN_PASSWORD, RunningServer, embedded_settings
from tests.support.subprocess_server import ServeProcess
from tests.support.tls import make_certificate

DELIVERY = 2.0  # seconds from a commit to its notification, on any instance
QUIET = 2.5  # seconds a socket must stay silent to show it was not told
OC = "http://owncloud.org/ns"
FILEID = f'<d:propfind xmlns:d="DAV:" xmlns:oc="{OC}"><d:prop><oc:fileid/></d:prop></d:propfind>'


def endpoints(server: RunningServer | str) -> dict[str, str]:
    """The notify_push endpoints the capabilities of `server` (or a base URL) give."""
    base = server if isinstance(server, str) else server.base
    url = f"{base}/ocs/v2.php/cloud/capabilities?format=json"
    capabilities = requests.get(url, timeout=30).json()["ocs"]["data"]["capabilities"]
    assert capabilities["notify_push"]["type"] == ["files"]
    return dict(capabilities["notify_push"]["endpoints"])


def log_in(server: RunningServer | str, user: str, password: str) -> tuple[ClientConnection, str]:
    """A socket to the advertised URL after the two login messages, and the answer."""
    socket = connect(endpoints(server)["websocket"], open_timeout=30)
    socket.send(user)
    socket.send(password)
    return socket, str(socket.recv(timeout=30))


def signed_in(server: RunningServer, user: str = "admin") -> ClientConnection:
    socket, answer = log_in(server, user, server.users[user])
    assert answer == "authenticated"
    return socket


def message_within(socket: ClientConnection, seconds: float) -> str:
    return str(socket.recv(timeout=seconds))


def silent_for(socket: ClientConnection, seconds: float) -> bool:
    try:
        socket.recv(timeout=seconds)
    except TimeoutError:
        return True
    return False


def file_id(server: RunningServer, user: str, path: str) -> int:
    response = server.client(user).request(
        "PROPFIND", server.url(path), data=FILEID, headers={"Depth": "0"}, timeout=30
    )
    assert response.status_code == 207, response.text
    return int(ElementTree.fromstring(response.content).findtext(f".//{{{OC}}}fileid") or "0")


def closed_with(socket: ClientConnection) -> int | None:
    """The close code once the server closed `socket` (it sends nothing more)."""
    with pytest.raises(ConnectionClosed):
        socket.recv(timeout=30)
    return socket.close_code


def test_capabilities_advertise_the_socket_on_the_host_used(server: RunningServer) -> None:
    found = endpoints(server)
    port = server.services.notify_push.port if server.services.notify_push else 0
    assert found["websocket"] == f"ws://127.0.0.1:{port}/ws"
    assert found["pre_auth"] == f"{server.base}/index.php/apps/notify_push/pre_auth"


def test_a_put_is_notified_then_with_ids_once_asked(server: RunningServer) -> None:
    socket = signed_in(server)
    try:
        put(server.client(), server.url("a.txt"), b"a")
        committed = time.monotonic()
        assert message_within(socket, DELIVERY) == "notify_file"
        assert time.monotonic() - committed < DELIVERY
        socket.send("listen notify_file_id")
        time.sleep(0.2)  # the server reads client messages between its looks at the feed
        put(server.client(), server.url("b.txt"), b"b")
        text = message_within(socket, DELIVERY)
        kind, _, ids = text.partition(" ")
        assert kind == "notify_file_id" and json.loads(ids) == [file_id(server, "admin", "b.txt")]
    finally:
        socket.close()


def test_wrong_password_gets_invalid_credentials(server: RunningServer) -> None:
    socket, answer = log_in(server, "admin", "wrong")
    assert answer == "err: Invalid credentials"
    closed_with(socket)
    socket, answer = log_in(server, "nobody", "wrong")
    assert answer == "err: Invalid credentials"


def test_an_app_password_logs_in(server: RunningServer) -> None:
    key, password = generate_app_password()
    server.services.catalog.app_passwords.add("admin", key, hash_password(password), "phone")
    socket, answer = log_in(server, "admin", password)
    assert answer == "authenticated"
    socket.close()


def test_a_pre_auth_token_logs_in_once(server: RunningServer) -> None:
    url = endpoints(server)["pre_auth"]
    assert requests.post(url, timeout=30).status_code == 401
    assert server.client().get(url, timeout=30).status_code == 405
    response = server.client().post(url, timeout=30)
    assert response.status_code == 200, response.text
    token = response.text
    socket, answer = log_in(server, "", token)
    assert answer == "authenticated"
    put(server.client(), server.url("c.txt"), b"c")
    assert message_within(socket, DELIVERY) == "notify_file"
    socket.close()
    again, answer = log_in(server, "", token)
    assert answer == "err: Invalid credentials"
    forged, answer = log_in(server, "", token[:-4] + "0000")
    assert answer == "err: Invalid credentials"


def test_another_users_change_is_not_notified(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    socket = signed_in(server, "bob")
    try:
        put(server.client(), server.url("admins.txt"), b"not bob's")
        assert silent_for(socket, QUIET)
        put(server.client("bob"), server.url("bobs.txt"), b"bob's")
        assert message_within(socket, DELIVERY) == "notify_file"
    finally:
        socket.close()


def test_failed_logins_count_with_those_of_dav(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server("embedded", login_failures_per_user=2)
    for _ in range(2):
        assert log_in(server, "admin", "wrong")[1] == "err: Invalid credentials"
    refused = log_in(server, "admin", ADMIN_PASSWORD)[1]
    assert refused == "err: Too many failed logins, try again later"
    assert server.client().request("PROPFIND", server.dav).status_code == 429


def test_sockets_are_bounded(make_server: Callable[..., RunningServer]) -> None:
    server = make_server("embedded", push_waiters=1)
    first = signed_in(server)
    try:
        with pytest.raises(InvalidStatus) as refused:
            connect(endpoints(server)["websocket"], open_timeout=30)
        assert refused.value.response.status_code == 503
    finally:
        first.close()


def test_davserver_serve_starts_the_listener(tmp_path: Path) -> None:
    process = ServeProcess(embedded_settings(tmp_path / "data"), tmp_path / "serve.log")
    try:
        base = f"http://127.0.0.1:{process.port}"
        assert f"notify_push on {endpoints(base)['websocket']}" in process.log_tail()
        socket, answer = log_in(base, "admin", ADMIN_PASSWORD)
        assert answer == "authenticated"
        assert process.stop() == 0
        assert closed_with(socket) == 1001
    finally:
        process.kill()


def test_the_socket_speaks_tls_with_the_servers_certificate(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    cert, key = make_certificate(tmp_path / "tls")
    with serve_https(tmp_path, cert, key) as (_process, port):
        base = f"https://127.0.0.1:{port}"
        url = f"{base}/ocs/v2.php/cloud/capabilities?format=json"
        found = requests.get(url, verify=str(cert), timeout=30).json()["ocs"]["data"]
        websocket = found["capabilities"]["notify_push"]["endpoints"]["websocket"]
        assert websocket.startswith("wss://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(cert))
        with connect(websocket, ssl=context, open_timeout=30) as socket:
            socket.send("admin")
            socket.send(ADMIN_PASSWORD)
            assert socket.recv(timeout=30) == "authenticated"


def test_stopping_the_server_closes_sockets(server: RunningServer) -> None:
    socket = signed_in(server)
    server.background.stop()
    assert closed_with(socket) == 1001


@pytest.mark.slow
def test_a_put_on_b_reaches_a_socket_on_a(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    socket = signed_in(a)
    try:
        put(b.client(), b.url("from-b.txt"), b"b")
        committed = time.monotonic()
        assert message_within(socket, DELIVERY) == "notify_file"
        assert time.monotonic() - committed < DELIVERY
        socket.send("listen notify_file_id")
        time.sleep(0.2)
        put(b.client(), b.url("again.txt"), b"again")
        committed = time.monotonic()
        text = message_within(socket, DELIVERY)
        assert time.monotonic() - committed < DELIVERY
        assert text == f"notify_file_id [{file_id(b, 'admin', 'again.txt')}]"
    finally:
        socket.close()
