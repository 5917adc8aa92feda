"""The login gate and the in-process limiter, without a server: a stub app stands in
for WsgiDAV and answers 401 unless the password is right."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from davserver.auth.login_gate import (
    INVALID,
    OK,
    STALE,
    DigestNonces,
    LoginGate,
    basic_user,
    digest_params,
)
from davserver.auth.ratelimit import MemoryLimiter


def test_nonces() -> None:
    nonces = DigestNonces(b"k" * 32, ttl=600)
    nonce = nonces.issue()
    assert nonces.check(nonce) == OK
    assert nonces.issue() != nonce
    assert DigestNonces(b"other" * 8).check(nonce) == INVALID
    for bad in (
        "",
        "abc",
        nonce[:-1] + ("0" if nonce[-1] != "0" else "1"),
        "zz.yy." + nonce.split(".")[-1],
    ):
        assert nonces.check(bad) == INVALID
    assert DigestNonces(b"k" * 32, ttl=-120).check(nonce) == STALE


def test_header_parsing() -> None:
    header = 'Digest username="a, b", realm="r", nonce=xyz, uri="/dav/a,b.txt", nc=00000001'
    params = digest_params(header)
    assert params["username"] == "a, b" and params["nonce"] == "xyz" and params["nc"] == "00000001"
    assert basic_user("Basic " + base64.b64encode(b"bob:pw:x").decode()) == "bob"
    assert basic_user("Basic " + base64.b64encode("jürgen:pw".encode()).decode()) == "jürgen"
    assert basic_user("Basic " + base64.b64encode(b"no-colon").decode()) is None
    assert basic_user("Basic !!!") is None
    assert basic_user("Basic " + base64.b64encode(b"bob:\xff\xfe").decode()) is None


def test_memory_limiter_is_bounded() -> None:
    limiter = MemoryLimiter({"user": 1}, window=60, max_entries=10)
    for i in range(25):
        limiter.failed([("user", str(i))])
    assert len(limiter._entries) <= 10


def stub_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("HTTP_AUTHORIZATION", "").endswith(base64.b64encode(b"bob:right").decode()):
        start_response("200 OK", [])
        return [b"ok"]
    start_response("401 Not Authorized", [("WWW-Authenticate", 'Basic realm="x"')])
    return [b"no"]


def call(gate: LoginGate, auth: str | None, addr: str = "10.0.0.1") -> tuple[str, list[Any]]:
    environ = {"REMOTE_ADDR": addr, "REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = auth
    seen: list[Any] = []
    b"".join(gate(environ, lambda status, headers, *a: seen.extend([status, headers])))
    return seen[0], seen[1]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("digest", [True, False])
def test_gate_challenges_and_throttles(digest: bool) -> None:
    limiter = MemoryLimiter({"user": 3, "addr": 5}, window=60)
    gate = LoginGate(stub_app, limiter, "davserver", DigestNonces(b"k" * 32) if digest else None)
    status, headers = call(gate, None)
    schemes = [v.split()[0] for k, v in headers if k == "WWW-Authenticate"]
    assert status.startswith("401") and schemes == (["Digest", "Basic"] if digest else ["Basic"])
    assert call(gate, basic("bob", "right"))[0] == "200 OK"
    for _ in range(3):
        assert call(gate, basic("bob", "wrong"))[0].startswith("401")
    status, headers = call(gate, basic("bob", "right"))  # even the right password now
    assert status.startswith("429") and 0 < int(dict(headers)["Retry-After"]) <= 60
    # Two more failures as other users from the same address block the address.
    call(gate, basic("amy", "x"))
    call(gate, basic("eve", "x"))
    assert call(gate, basic("zed", "x"))[0].startswith("429")
    assert call(gate, basic("zed", "x"), addr="10.0.0.2")[0].startswith("401")


def test_gate_refuses_foreign_and_stale_nonces_without_counting() -> None:
    limiter = MemoryLimiter({"user": 1, "addr": 1}, window=60)
    gate = LoginGate(stub_app, limiter, "davserver", DigestNonces(b"k" * 32, ttl=-120))
    stale = DigestNonces(b"k" * 32, ttl=-120).issue()
    for nonce, is_stale in (("forged", False), (stale, True)):
        status, headers = call(gate, f'Digest username="bob", nonce="{nonce}", response="x"')
        digest = next(v for k, v in headers if v.startswith("Digest"))
        assert status.startswith("401") and ("stale=true" in digest) == is_stale
    assert limiter.blocked_for([("user", "bob")]) == 0
