"""The notify_push protocol without a socket (`davserver.nextcloud.push_protocol`,
`pre_auth`, `davserver.auth.credentials`): messages, file ids, debouncing, pre-auth
tokens, and the login steps over a real catalog and login limiter."""

from __future__ import annotations

import pytest

from davserver.auth.credentials import INVALID, LIMITED, PasswordLogins
from davserver.auth.domain import account_secrets
from davserver.auth.passwords import generate_app_password, hash_password
from davserver.auth.ratelimit import MemoryLimiter
from davserver.nextcloud import push_protocol as protocol
from davserver.nextcloud.pre_auth import PreAuthTokens
from providers.catalog import Catalog, UserRecord
from providers.operations.feed import FeedEntry


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def entry(file_id: str) -> FeedEntry:
    return FeedEntry("modified", "/f", "file", file_id, 1, "e", None, 0.0, 0.0)


def test_messages() -> None:
    assert protocol.notification([3, 12], listen_ids=True) == "notify_file_id [3,12]"
    assert protocol.notification([3], listen_ids=False) == "notify_file"
    assert protocol.notification(None, listen_ids=True) == "notify_file"
    assert protocol.error("Invalid credentials") == "err: Invalid credentials"
    assert protocol.wants_file_ids("listen notify_file_id")
    assert not protocol.wants_file_ids(b"listen notify_file_id")
    assert not protocol.wants_file_ids("listen notify_activity")


def test_changed_ids_are_unique_in_order_and_bounded() -> None:
    assert protocol.changed_ids([entry("7"), entry("3"), entry("7")]) == [7, 3]
    assert protocol.changed_ids([]) == []
    many = [entry(str(n)) for n in range(protocol.MAX_IDS + 1)]
    assert protocol.changed_ids(many) is None
    assert protocol.changed_ids([entry("x")]) is None


def test_debounce_interval_scales_with_connections() -> None:
    assert protocol.interval(1, 1.0) == 1.0
    assert protocol.interval(50, 1.0) == 5.0
    assert protocol.interval(10_000, 1.5) == protocol.MAX_DEBOUNCE * 1.5
    assert 0.5 <= protocol.spread() <= 1.5


def test_debounce_settles_then_spaces_notifications() -> None:
    debounce = protocol.Debounce()
    assert debounce.ready_at() is None
    debounce.woken(10.0)
    debounce.woken(10.05)  # the settle time runs from the first wake-up
    assert debounce.ready_at() == pytest.approx(10.0 + protocol.SETTLE)
    debounce.sent(10.1, 2.0)
    assert debounce.ready_at() is None and not debounce.pending
    debounce.woken(10.5)
    assert debounce.ready_at() == pytest.approx(12.1)  # held until the interval passed
    debounce.idle()  # the feed had nothing for this client
    assert debounce.ready_at() is None


def test_pre_auth_tokens_open_once_and_expire() -> None:
    clock = Clock()
    tokens = PreAuthTokens(b"k" * 32, clock=clock)
    alice = UserRecord(
        id=4, name="alice", password_hash="", home_id=1, quota_bytes=None, used_bytes=0
    )
    token = tokens.issue(alice)
    assert PreAuthTokens(b"other key" * 4, clock=clock).redeem(token) is None
    assert tokens.redeem(token) == 4
    assert tokens.redeem(token) is None  # once
    late = tokens.issue(alice)
    clock.now += 16
    assert tokens.redeem(late) is None
    body, _, mac = tokens.issue(alice).rpartition(".")
    assert tokens.redeem(body.replace("4.", "5.", 1) + "." + mac) is None
    assert tokens.redeem("") is None and tokens.redeem("x" * 1000) is None


@pytest.fixture
def users(catalog: Catalog) -> Catalog:
    catalog.users.create("alice", *account_secrets("alice", "alice-pass", digest=False))
    return catalog


def test_login_steps(users: Catalog) -> None:
    limiter = MemoryLimiter({"user": 3, "addr": 100, "link": 3}, 60)
    tokens = PreAuthTokens(b"k" * 32)
    auth = protocol.Authenticator(PasswordLogins(users.users, limiter), tokens, users.users.by_id)
    alice = users.users.get("alice")
    assert alice is not None
    assert auth.login("alice", "alice-pass", "10.0.0.1").user == alice
    key, app = generate_app_password()
    users.app_passwords.add("alice", key, hash_password(app), "phone")
    assert auth.login("alice", app, "10.0.0.1").user == alice
    assert auth.login("", tokens.issue(alice), "10.0.0.1").user == alice
    assert auth.login("", "not a token", "10.0.0.1").refusal == INVALID
    assert auth.login("alice", b"alice-pass", "10.0.0.1").refusal == protocol.INVALID_MESSAGE
    assert auth.login("nobody", "alice-pass", "10.0.0.1").refusal == INVALID
    for _ in range(3):
        assert auth.login("alice", "wrong", "10.0.0.2").refusal == INVALID
    assert auth.login("alice", "alice-pass", "10.0.0.3").refusal == LIMITED
