"""The reverse-proxy middleware: forwarded headers count only from trusted proxies, and a
Destination on the request's own origin reaches WsgiDAV as a path."""

from __future__ import annotations

import re
from typing import Any

import pytest

from davserver.http.proxy import ProxyHeaders, local_destination, public_destination
from davserver.settings import SettingsError, load, parse_networks

FORWARDED_KEYS = {
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
}


def seen_by_app(trusted: str, **environ: str) -> dict[str, Any]:
    """The environ the wrapped app receives for a request with `environ`."""
    seen: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env)
        return []

    request = {"wsgi.url_scheme": "http", "HTTP_HOST": "backend:8080", "SERVER_PORT": "8080"}
    ProxyHeaders(app, parse_networks(trusted))({**request, **environ}, lambda *a: None)
    return seen


PUBLIC = {
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_HOST": "files.example.org",
    "HTTP_X_FORWARDED_FOR": "198.51.100.7",
}


def test_trusted_proxy_sets_scheme_host_and_client() -> None:
    env = seen_by_app("10.0.0.0/8", REMOTE_ADDR="10.1.2.3", **PUBLIC)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "files.example.org"
    assert env["REMOTE_ADDR"] == "198.51.100.7"
    assert not FORWARDED_KEYS & env.keys()  # consumed: nothing behind can re-read them


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8", "127.0.0.2"])
def test_untrusted_peer_headers_are_removed_unused(trusted: str) -> None:
    env = seen_by_app(trusted, REMOTE_ADDR="127.0.0.1", **PUBLIC, HTTP_X_FORWARDED_PORT="443")
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "backend:8080"
    assert env["SERVER_PORT"] == "8080"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert not FORWARDED_KEYS & env.keys()


def test_ipv4_mapped_peer_is_matched_against_ipv4_networks() -> None:
    env = seen_by_app("127.0.0.1", REMOTE_ADDR="::ffff:127.0.0.1", **PUBLIC)
    assert env["REMOTE_ADDR"] == "198.51.100.7"


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        # the rightmost hop that is not a trusted proxy is the client...
        ("198.51.100.7, 10.0.0.5, 10.0.0.6", "198.51.100.7"),
        # ...so an address the client wrote in front of it is not believed
        ("203.0.113.66, 198.51.100.7", "198.51.100.7"),
        ("203.0.113.66, 198.51.100.7, 10.0.0.5", "198.51.100.7"),
        # every hop a proxy: the leftmost one is the best we know
        ("10.0.0.5, 10.0.0.6", "10.0.0.5"),
        # ports and brackets as some proxies write them; IPv6
        ("198.51.100.7:51234", "198.51.100.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("2001:db8::7", "2001:db8::7"),
        # garbage ends the walk at the last address that parsed
        ("198.51.100.7, unknown", "10.0.0.1"),
        ("unknown, 10.0.0.5", "10.0.0.5"),
    ],
)
def test_forwarded_for_chain(chain: str, client: str) -> None:
    env = seen_by_app("10.0.0.0/8", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=chain)
    assert env["REMOTE_ADDR"] == client


@pytest.mark.parametrize("proto", ["ftp", "https, http", "HTTPS ", ""])
def test_only_http_or_https_is_taken_as_scheme(proto: str) -> None:
    env = seen_by_app("127.0.0.1", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO=proto)
    expected = "https" if proto.strip().lower() == "https" else "http"
    assert env["wsgi.url_scheme"] == expected


@pytest.mark.parametrize("host", ["evil.example/path", "a b", "x@evil.example", "host:port", ""])
def test_malformed_forwarded_host_is_ignored(host: str) -> None:
    env = seen_by_app("127.0.0.1", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_HOST=host)
    assert env["HTTP_HOST"] == "backend:8080"


@pytest.mark.parametrize(
    ("headers", "host", "port"),
    [
        ({"HTTP_X_FORWARDED_PORT": "8443"}, "files.example.org:8443", "8443"),
        ({"HTTP_X_FORWARDED_PORT": "443"}, "files.example.org", "443"),
        ({"HTTP_X_FORWARDED_PORT": "99999"}, "files.example.org", "8080"),
    ],
)
def test_forwarded_port(headers: dict[str, str], host: str, port: str) -> None:
    env = seen_by_app("127.0.0.1", REMOTE_ADDR="127.0.0.1", **PUBLIC, **headers)
    assert (env["HTTP_HOST"], env["SERVER_PORT"]) == (host, port)


@pytest.mark.parametrize(
    ("destination", "scheme", "host", "result"),
    [
        ("https://files.example.org/dav/b.txt", "https", "files.example.org", "/dav/b.txt"),
        ("https://files.example.org:443/dav/b", "https", "files.example.org", "/dav/b"),
        ("https://Files.Example.org/dav/b", "https", "files.example.org:443", "/dav/b"),
        ("http://[::1]:8080/dav/a%20b", "http", "[::1]:8080", "/dav/a%20b"),
        ("https://u@files.example.org/dav/b", "https", "files.example.org", "/dav/b"),
        # another origin (scheme, host or port) is WsgiDAV's to refuse
        ("https://files.example.org/dav/b", "http", "files.example.org", None),
        ("https://other.example/dav/b", "https", "files.example.org", None),
        ("https://files.example.org:8443/dav/b", "https", "files.example.org", None),
        ("https://files.example.org:bad/dav/b", "https", "files.example.org", None),
        ("https://files.example.org", "https", "files.example.org", None),
        ("/dav/b", "https", "files.example.org", None),
    ],
)
def test_local_destination(destination: str, scheme: str, host: str, result: str | None) -> None:
    assert local_destination(destination, scheme, host) == (result or destination)


def test_destination_is_judged_after_the_forwarded_headers() -> None:
    destination = "https://files.example.org/dav/b.txt"
    trusted = seen_by_app(
        "127.0.0.1", REMOTE_ADDR="127.0.0.1", HTTP_DESTINATION=destination, **PUBLIC
    )
    assert trusted["HTTP_DESTINATION"] == "/dav/b.txt"
    untrusted = seen_by_app("", REMOTE_ADDR="127.0.0.1", HTTP_DESTINATION=destination, **PUBLIC)
    assert untrusted["HTTP_DESTINATION"] == destination


def test_trusted_proxies_setting() -> None:
    settings = load(None, environ={"DAVSERVER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1,"})
    assert [str(n) for n in settings.trusted_networks] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert load(None, environ={}).trusted_networks == ()


@pytest.mark.parametrize("value", ["10.0.0.1/8", "proxy.internal", "10.0.0.0/33", "*"])
def test_bad_trusted_proxies_entry_names_the_key(value: str) -> None:
    with pytest.raises(SettingsError, match="trusted_proxies: '" + re.escape(value)):
        load(None, environ={"DAVSERVER_TRUSTED_PROXIES": f"127.0.0.1,{value}"})


@pytest.mark.parametrize(
    ("destination", "public", "result"),
    [
        ("https://dav.example.com/dav/b.txt", "https://dav.example.com", "/dav/b.txt"),
        ("https://DAV.example.com:443/dav/b%20c", "https://dav.example.com/", "/dav/b%20c"),
        ("https://example.com/files/dav/b.txt", "https://example.com/files", "/dav/b.txt"),
        ("https://example.com/other/dav/b.txt", "https://example.com/files", None),
        ("http://dav.example.com/dav/b.txt", "https://dav.example.com", None),
        ("https://evil.example/dav/b.txt", "https://dav.example.com", None),
        ("/dav/b.txt", "https://dav.example.com", None),
        ("https://dav.example.com/dav/b.txt", "", None),
    ],
)
def test_public_destination(destination: str, public: str, result: str | None) -> None:
    assert public_destination(destination, public) == (result or destination)


def test_destination_on_the_public_url_needs_no_forwarded_host() -> None:
    """Behind a proxy that forwards neither Host nor X-Forwarded-*, a MOVE naming the
    public address still reaches WsgiDAV as a path on this server."""
    seen: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env)
        return []

    request = {
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "backend:8080",
        "HTTP_DESTINATION": "https://dav.example.com/dav/b.txt",
    }
    ProxyHeaders(app, (), "https://dav.example.com")(request, lambda *a: None)
    assert seen["HTTP_DESTINATION"] == "/dav/b.txt"


def test_client_address_of_a_connection_outside_wsgi() -> None:
    proxy = ProxyHeaders(lambda environ, start_response: [], parse_networks("10.0.0.0/8"))
    assert proxy.client_address("10.0.0.5", "203.0.113.7, 10.0.0.9") == "203.0.113.7"
    assert proxy.client_address("198.51.100.2", "203.0.113.7") == "198.51.100.2"  # untrusted
    assert proxy.client_address("10.0.0.5", "") == "10.0.0.5"
