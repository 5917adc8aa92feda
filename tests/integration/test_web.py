"""The server's own pages and static files: the landing page is a template under the
pages' Content-Security-Policy, and CSS and JavaScript are static files whose URLs
carry their digest, cached for a year (a stale digest revalidates)."""

from __future__ import annotations

import re

import requests

from tests.support.servers import RunningServer


def test_landing_page_and_static_files(server: RunningServer) -> None:
    page = requests.get(server.base + "/")
    assert page.status_code == 200 and "/dav/" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    found = re.search(r'href="(/static/([0-9a-f]+)/share\.css)"', page.text)
    assert found is not None
    url, digest = server.base + found.group(1), found.group(2)
    css = requests.get(url)
    assert css.status_code == 200 and css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert css.headers["ETag"] == f'"{digest}"' and "--accent" in css.text
    again = requests.get(url, headers={"If-None-Match": css.headers["ETag"]})
    assert (again.status_code, again.content) == (304, b"")
    stale = requests.get(f"{server.base}/static/0123456789abcdef/share.css")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "public, no-cache"
    assert stale.content == css.content
    for missing in ("/static/x/nothing.css", "/static/x/../app.py", "/static/"):
        assert requests.get(server.base + missing).status_code == 404, missing
    assert requests.post(url).status_code == 405
    assert requests.head(url).headers["Content-Length"] == str(len(css.content))
