"""Logins through a real server: Digest with real clients, app passwords and their
revocation, failed-login throttling (in-process and in Redis shared by two instances),
and no difference between an unknown user and a wrong password."""

from __future__ import annotations

import base64
import shutil
import statistics
import subprocess
import time
from typing import Any

import pytest
import requests
from requests.auth import HTTPDigestAuth

from davserver.auth.passwords import generate_app_password, hash_password
from tests.support.servers import ADMIN_PASSWORD, RunningServer, start_server

PROPFIND0 = {"Depth": "0"}


def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is not installed (apt-get install curl)", pytrace=False)
    return path


def curl_status(server: RunningServer, *args: str) -> int:
    done = subprocess.run(
        [curl(), "-s", "-o", "/dev/null", "-w", "%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def schemes(response: requests.Response) -> list[str]:
    raw = response.raw.headers.getlist("WWW-Authenticate")
    return [value.split()[0] for value in raw]


def test_digest_with_curl_and_requests(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    anonymous = requests.request("PROPFIND", server.dav, headers=PROPFIND0, timeout=30)
    assert anonymous.status_code == 401 and schemes(anonymous) == ["Digest", "Basic"]

    for user, password in (("admin", ADMIN_PASSWORD), ("bob", "bob-pass")):
        ok = curl_status(
            server,
            "--digest",
            "-u",
            f"{user}:{password}",
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            server.dav,
        )
        assert ok == 207
        assert curl_status(server, "--digest", "-u", f"{user}:nope", server.dav) == 401

    digest = HTTPDigestAuth("bob", "bob-pass")
    put = requests.put(server.url("d.txt"), data=b"digest!", auth=digest, timeout=30)
    assert put.status_code == 201
    got = requests.get(server.url("d.txt"), auth=digest, timeout=30)
    assert got.status_code == 200 and got.content == b"digest!"
    session = requests.Session()
    session.auth = HTTPDigestAuth("bob", "bob-pass")
    for _ in range(3):  # the nonce is reused with a growing nc
        assert session.request("PROPFIND", server.dav, headers=PROPFIND0).status_code == 207
    wrong = requests.get(server.url("d.txt"), auth=HTTPDigestAuth("bob", "nope"), timeout=30)
    assert wrong.status_code == 401


def test_digest_off(make_server: Any) -> None:
    server = make_server("embedded", digest_auth=False)
    server.add_user("bob", "bob-pass")
    anonymous = requests.get(server.dav, timeout=30)
    assert anonymous.status_code == 401 and schemes(anonymous) == ["Basic"]
    digest = requests.get(server.dav, auth=HTTPDigestAuth("bob", "bob-pass"), timeout=30)
    assert digest.status_code == 401
    assert server.services.catalog.users.get("bob").digest is None  # type: ignore[union-attr]
    assert (
        server.client("bob").request("PROPFIND", server.dav, headers=PROPFIND0).status_code == 207
    )


def test_a_replayed_or_forged_digest_nonce_is_refused(make_server: Any) -> None:
    server = make_server("embedded")
    digest = HTTPDigestAuth("admin", ADMIN_PASSWORD)
    assert requests.get(server.dav, auth=digest, timeout=30).status_code == 200
    header = digest.build_digest_header("GET", server.dav)
    assert header is not None
    forged = header.replace(digest._thread_local.chal["nonce"], "1.2.3")
    answer = requests.get(server.dav, headers={"Authorization": forged}, timeout=30)
    assert answer.status_code == 401


def add_app_password(server: RunningServer, user: str, label: str) -> tuple[int, str]:
    key, password = generate_app_password()
    record = server.services.catalog.app_passwords.add(user, key, hash_password(password), label)
    return record.id, password


def test_app_password_works_until_revoked(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    first, phone = add_app_password(server, "bob", "phone")
    _second, laptop = add_app_password(server, "bob", "laptop")

    def status(password: str) -> int:
        auth = ("bob", password)
        return requests.request("PROPFIND", server.dav, headers=PROPFIND0, auth=auth).status_code

    for _ in range(2):  # the second time from the verification cache
        assert status(phone) == 207 and status(laptop) == 207 and status("bob-pass") == 207
    apps = server.services.catalog.app_passwords
    assert apps.of_user("bob")[0].last_used_at is not None
    # Digest has no secret for app passwords: Basic only.
    digest = HTTPDigestAuth("bob", phone)
    assert requests.get(server.dav, auth=digest, timeout=30).status_code == 401
    assert status(phone.replace(phone[-1], "a" if phone[-1] != "a" else "b")) == 401

    apps.revoke("bob", first)
    assert status(phone) == 401  # at once, though the cache still holds it
    assert status(laptop) == 207 and status("bob-pass") == 207
    # Another user's name with bob's app password does not log in.
    server.add_user("amy", "amy-pass")
    assert requests.get(server.dav, auth=("amy", laptop), timeout=30).status_code == 401


def propfind_status(server: RunningServer, user: str, password: str) -> requests.Response:
    return requests.request(
        "PROPFIND", server.dav, headers=PROPFIND0, auth=(user, password), timeout=30
    )


@pytest.mark.parametrize("stack", ["embedded", "full"])
def test_too_many_failures_get_429(make_server: Any, stack: str) -> None:
    server = make_server(
        stack, login_failures_per_user=3, login_failures_per_address=6, login_failure_window=30
    )
    server.add_user("bob", "bob-pass")
    for _ in range(3):
        assert propfind_status(server, "bob", "wrong").status_code == 401
    blocked = propfind_status(server, "bob", "bob-pass")  # the right one too: no oracle
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 30
    digest = requests.get(server.dav, auth=HTTPDigestAuth("bob", "bob-pass"), timeout=30)
    assert digest.status_code == 429
    assert propfind_status(server, "admin", ADMIN_PASSWORD).status_code == 207
    # Three more failures from this address, as names that do not exist, block it.
    for name in ("x1", "x2", "x3"):
        assert propfind_status(server, name, "wrong").status_code == 401
    assert propfind_status(server, "admin", ADMIN_PASSWORD).status_code == 429


def test_two_instances_share_the_redis_limiter(make_server: Any) -> None:
    first = make_server("full", login_failures_per_user=4, login_failure_window=30)
    second = start_server(first.settings, flush_redis=False)
    try:
        first.add_user("bob", "bob-pass")
        for server in (first, second, first, second):
            assert propfind_status(server, "bob", "wrong").status_code == 401
        for server in (first, second):
            answer = propfind_status(server, "bob", "bob-pass")
            assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0
    finally:
        second.stop()


def timed(server: RunningServer, user: str, password: str) -> tuple[float, requests.Response]:
    start = time.perf_counter()
    answer = propfind_status(server, user, password)
    return time.perf_counter() - start, answer


@pytest.mark.parametrize("stack", ["embedded", "full"])
def test_unknown_user_and_wrong_password_look_alike(make_server: Any, stack: str) -> None:
    server = make_server(stack, login_failures_per_user=100, login_failures_per_address=100)
    server.add_user("bob", "bob-pass")
    _id, app = add_app_password(server, "bob", "phone")
    attempts = {
        "wrong password": ("bob", "wrong"),
        "unknown user": ("nobody", "wrong"),
        "wrong app password": ("bob", app[:-1] + ("a" if app[-1] != "a" else "b")),
        "unknown user, app-shaped": ("nobody", app),
    }
    times: dict[str, list[float]] = {k: [] for k in attempts}
    answers: dict[str, requests.Response] = {}
    for _ in range(5):  # interleaved, so load on the machine hits all alike
        for kind, (user, password) in attempts.items():
            took, answers[kind] = timed(server, user, password)
            times[kind].append(took)
    shapes = {  # the same but for the request id each answer names
        (
            a.status_code,
            a.text.replace(a.headers["X-Request-Id"], "<id>"),
            tuple(sorted(k for k in a.headers if k != "Date")),
            *schemes(a),
        )
        for a in answers.values()
    }
    assert len(shapes) == 1, shapes
    medians = {k: statistics.median(v) for k, v in times.items()}
    # Each costs one argon2id run; a skipped run would be many times faster.
    assert max(medians.values()) < 2.5 * min(medians.values()), medians


def test_basic_credentials_that_are_not_utf8_get_a_challenge(make_server: Any) -> None:
    """Bad input in the Authorization header is the client's: 401, never a 500."""
    server = make_server("embedded")
    header = "Basic " + base64.b64encode(b"admin:\xff\xfe").decode()
    for url in (server.dav, server.base + "/api/v1/me"):
        headers = {"Authorization": header, "Depth": "0"}
        response = requests.request("PROPFIND", url, headers=headers)
        assert response.status_code == 401, (url, response.status_code)
