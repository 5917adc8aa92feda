"""The connect page's URL (`davserver.web.connect.endpoint`) and the helpers of the
WebDAV folder and status pages (`davserver.dav.folder_pages`)."""

from __future__ import annotations

import pytest

from davserver.dav.folder_pages import Crumb, _is_status_page, _reason, _trail
from davserver.web.connect import endpoint


def environ(**values: str) -> dict[str, str]:
    return {"wsgi.url_scheme": "http", **values}


def test_public_url_wins_and_keeps_its_path() -> None:
    where = endpoint(environ(HTTP_HOST="internal:8080"), "https://files.example.org/", "/dav")
    assert where.dav == "https://files.example.org/dav/" and where.secure
    where = endpoint(environ(), "https://example.org/files", "/dav")
    assert where.dav == "https://example.org/files/dav/"
    assert where.as_scheme("davs") == "davs://example.org/files/dav/"


def test_the_request_gives_scheme_and_host() -> None:
    where = endpoint(environ(HTTP_HOST="[2001:db8::1]:8443"), "", "/dav")
    assert where.dav == "http://[2001:db8::1]:8443/dav/" and not where.secure
    https = {"wsgi.url_scheme": "https", "HTTP_HOST": "files.example.org"}
    assert endpoint(https, "", "/dav").dav == "https://files.example.org/dav/"


def test_without_a_host_header_the_server_name_and_port() -> None:
    bare = environ(SERVER_NAME="127.0.0.1", SERVER_PORT="8080")
    assert endpoint(bare, "", "/dav").dav == "http://127.0.0.1:8080/dav/"
    default = environ(SERVER_NAME="example.org", SERVER_PORT="80")
    assert endpoint(default, "", "/dav").dav == "http://example.org/dav/"


@pytest.mark.parametrize("host", ['x"><b>', "a b", "example.org/path", "h:port", ""])
def test_a_host_that_is_no_host_becomes_a_placeholder(host: str) -> None:
    where = endpoint({"wsgi.url_scheme": "gopher", "HTTP_HOST": host}, "", "/dav")
    assert where.dav == "http://SERVER/dav/"


def test_breadcrumbs_quote_names_and_end_at_the_folder() -> None:
    assert _trail("/dav", "/", "Home") == [Crumb("Home", None)]
    assert _trail("/s/tok/dav", "/a b/<c>", "Shared folder") == [
        Crumb("Shared folder", "/s/tok/dav/"),
        Crumb("a b", "/s/tok/dav/a%20b/"),
        Crumb("<c>", None),
    ]


def test_wsgidav_status_pages_become_their_reason() -> None:
    html = [("Content-Type", "text/html; charset=utf-8")]
    assert _is_status_page("404 Not Found", html)
    assert _is_status_page("201 Created", html)
    assert not _is_status_page("200 OK", html)  # a file or a folder page
    assert not _is_status_page("206 Partial Content", html)
    assert not _is_status_page("409 Conflict", [("Content-Type", "application/xml")])
    page = b"<html><title>x</title><h1>404 Not Found</h1><p>404 Not Found: /a&amp;b</p>"
    assert _reason("404 Not Found", page) == b"404 Not Found: /a&b\n"
    assert _reason("201 Created", b"<p>201 Created</p>") == b"201 Created\n"
    assert _reason("500 Internal Server Error", b"junk") == b"500 Internal Server Error\n"
    leaky = b"<p>500 Internal Server Error: boom\n    Source exception: OSError('/srv/x')</p>"
    assert _reason("500 Internal Server Error", leaky) == b"500 Internal Server Error\n"
    failed = b"<p>503 Service Unavailable: S3 unavailable\n    Source exception: X('10.0.0.5')</p>"
    assert (
        _reason("503 Service Unavailable", failed) == b"503 Service Unavailable: S3 unavailable\n"
    )
