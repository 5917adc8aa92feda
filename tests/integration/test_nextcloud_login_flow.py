"""Login Flow v2 (`davserver.nextcloud.login_flow`), as the Nextcloud desktop GUI and
the mobile apps drive it: start with `POST /index.php/login/v2`, open the `login` URL
in a browser, sign in and approve, poll until the credentials come, then sync with
them. The HTTP-level cases run on both stacks (and across two instances); the one with
Chromium and nextcloudcmd once."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from davserver.nextcloud import login_flow
from tests.support.browser import screenshot
from tests.support.servers import RunningServer
from tests.support.sync_clients import sync_ok

DEVICE = "Mozilla/5.0 (Linux) mirall/3.7.3 (Nextcloud, <test> device)"
GRANT = re.compile(r'name="grant" value="([^"]+)"')


def start(base: str, path: str = "/index.php/login/v2") -> dict[str, Any]:
    """Start a flow as the desktop client does (empty POST, its User-Agent)."""
    answer = requests.post(base + path, headers={"User-Agent": DEVICE}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    flow: dict[str, Any] = answer.json()
    return flow


def poll(flow: dict[str, Any]) -> requests.Response:
    """One poll, as the desktop client sends it (urlencoded `token`)."""
    return requests.post(
        flow["poll"]["endpoint"], data={"token": flow["poll"]["token"]}, timeout=10
    )


def sign_in(flow: dict[str, Any], user: str, password: str) -> requests.Response:
    return requests.post(flow["login"], data={"user": user, "password": password}, timeout=10)


def decide(flow: dict[str, Any], page: requests.Response, decision: str) -> requests.Response:
    """Press one of the grant page's buttons."""
    match = GRANT.search(page.text)
    assert match, page.text
    form = {"grant": match.group(1), "decision": decision}
    return requests.post(flow["login"] + "/grant", data=form, timeout=10)


def test_start_answers_the_poll_token_and_the_login_page(server: RunningServer) -> None:
    flow = start(server.base)
    assert len(flow["poll"]["token"]) >= 64
    assert flow["poll"]["endpoint"] == f"{server.base}/index.php/login/v2/poll"
    assert flow["login"].startswith(f"{server.base}/index.php/login/v2/flow/")
    assert len(flow["login"].rsplit("/", 1)[1]) >= 64
    assert start(server.base, "/login/v2")["poll"]["endpoint"].endswith("/login/v2/poll")
    assert requests.get(server.base + "/index.php/login/v2", timeout=10).status_code == 405

    page = requests.get(flow["login"], timeout=10)
    assert page.status_code == 200
    assert "&lt;test&gt; device" in page.text and "<test>" not in page.text  # escaped
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    prefilled = requests.get(flow["login"], params={"user": "admin"}, timeout=10)
    assert 'value="admin"' in prefilled.text

    waiting = poll(flow)
    assert (waiting.status_code, waiting.json()) == (404, [])
    unknown = requests.post(flow["poll"]["endpoint"], data={"token": "x" * 64}, timeout=10)
    assert unknown.status_code == 404
    assert requests.get(flow["login"][:-4] + "abcd", timeout=10).status_code == 404


def test_an_approved_flow_hands_out_an_app_password_once(server: RunningServer) -> None:
    flow = start(server.base)
    granting = sign_in(flow, "admin", server.users["admin"])
    assert granting.status_code == 200 and "Grant access" in granting.text
    assert poll(flow).status_code == 404  # signed in, not yet approved
    done = decide(flow, granting, "approve")
    assert done.status_code == 200 and "Access granted" in done.text

    answer = poll(flow)
    assert answer.status_code == 200
    credentials = answer.json()
    assert credentials["server"] == server.base and credentials["loginName"] == "admin"
    assert poll(flow).status_code == 404  # once only
    assert requests.get(flow["login"], timeout=10).status_code == 404  # the page is gone

    auth = (credentials["loginName"], credentials["appPassword"])
    listing = requests.request(
        "PROPFIND", server.base + "/remote.php/dav/files/admin/", auth=auth,
        headers={"Depth": "0"}, timeout=10,
    )  # fmt: skip
    assert listing.status_code == 207
    issued = server.services.catalog.app_passwords.of_user("admin")
    assert [app.label for app in issued] == [DEVICE]
    # The sign-in page wants the account password: an app password does not sign in.
    assert sign_in(start(server.base), *auth).status_code == 401


def test_wrong_password_deny_and_forged_forms_issue_nothing(server: RunningServer) -> None:
    flow = start(server.base)
    wrong = sign_in(flow, "admin", "not-the-password")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert sign_in(flow, "nobody", "whatever").status_code == 401
    assert poll(flow).status_code == 404

    granting = sign_in(flow, "admin", server.users["admin"])
    tampered = requests.post(
        flow["login"] + "/grant", data={"grant": "x.y.z", "decision": "approve"}, timeout=10
    )
    assert tampered.status_code == 403
    other = start(server.base)  # a grant token of one flow does not approve another
    assert decide(other, granting, "approve").status_code == 403

    denied = decide(flow, granting, "deny")
    assert denied.status_code == 200 and "Access denied" in denied.text
    assert poll(flow).status_code == 404
    assert decide(flow, granting, "approve").status_code == 404  # the flow has ended
    assert poll(flow).status_code == 404
    assert server.services.catalog.app_passwords.of_user("admin") == []


def test_failed_sign_ins_are_rate_limited(make_server: Any) -> None:
    server = make_server("embedded", login_failures_per_user=2)
    flow = start(server.base)
    for _ in range(2):
        assert sign_in(flow, "admin", "wrong").status_code == 401
    blocked = sign_in(flow, "admin", server.users["admin"])  # even the right password
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    limited = requests.get(server.base + "/dav/", auth=("admin", "wrong"), timeout=10)
    assert limited.status_code == 429  # one budget with /dav/'s logins


def test_an_expired_flow_is_gone(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_flow, "FLOW_TTL", 1)
    flow = start(server.base)
    granting = sign_in(flow, "admin", server.users["admin"])
    assert granting.status_code == 200
    time.sleep(1.5)
    assert requests.get(flow["login"], timeout=10).status_code == 404
    assert decide(flow, granting, "approve").status_code in (403, 404)
    assert poll(flow).status_code == 404


def test_a_flow_works_across_instances(pair: tuple[RunningServer, RunningServer]) -> None:
    first, second = pair
    flow = start(first.base)
    on_second = {**flow, "login": flow["login"].replace(first.base, second.base)}
    granting = sign_in(on_second, "admin", first.users["admin"])
    assert decide(on_second, granting, "approve").status_code == 200
    token = {"token": flow["poll"]["token"]}  # as JSON, as newer mobile libraries send it
    answer = requests.post(flow["poll"]["endpoint"], json=token, timeout=10)
    assert answer.json()["loginName"] == "admin"


@pytest.mark.slow
def test_the_browser_flow_gives_nextcloudcmd_a_working_password(
    make_server: Any, page: Any, tmp_path: Path
) -> None:
    server = make_server("embedded")
    flow = start(server.base)
    page.goto(flow["login"])
    screenshot(page, "login-flow-sign-in")
    page.fill("#user", "admin")
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text("main")
    assert poll(flow).status_code == 404
    page.fill("#password", server.users["admin"])
    page.click("button[type=submit]")
    assert "<test> device" in page.inner_text("main")
    screenshot(page, "login-flow-grant")
    page.click("button[value=approve]")
    assert "Access granted" in page.inner_text("h1")

    credentials = poll(flow).json()
    local = tmp_path / "local"
    local.mkdir()
    (local / "from-flow.txt").write_bytes(b"synced with an app password\n")
    login, password = credentials["loginName"], credentials["appPassword"]
    sync_ok("nextcloud", local, credentials["server"], login, password, home=tmp_path / "home")
    back = requests.get(server.url("from-flow.txt"), auth=("admin", server.users["admin"]))
    assert back.status_code == 200 and back.content == b"synced with an app password\n"
