"""Unit tests of presigned URLs (`providers/blobstore/sigv4.py`)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from providers.blobstore.sigv4 import MAX_EXPIRES, Credentials, presign

CREDS = Credentials("127.0.0.1:9000", "access", "secret")


def _params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.mark.parametrize(
    ("now", "signed_at", "lifetime"),
    [
        (1_800_000_000.0, "20270115T080000Z", "1"),
        (1_800_000_000.9, "20270115T080000Z", "2"),
    ],
)
def test_a_url_lives_at_least_its_seconds_though_its_date_is_whole(
    now: float, signed_at: str, lifetime: str
) -> None:
    params = _params(presign(CREDS, "PUT", "b", "k", expires=1, now=now))
    assert params["X-Amz-Date"] == signed_at and params["X-Amz-Expires"] == lifetime


def test_the_lifetime_never_passes_the_maximum() -> None:
    url = presign(CREDS, "GET", "b", "k", expires=MAX_EXPIRES, now=1_800_000_000.5)
    assert _params(url)["X-Amz-Expires"] == str(MAX_EXPIRES)
    with pytest.raises(ValueError):
        presign(CREDS, "GET", "b", "k", expires=0)
