"""`davserver.http.headers`: Range, If-Range and the conditional headers, as every door
reads them (RFC 9110 sections 13 and 14)."""

from __future__ import annotations

import pytest

from davserver.http.headers import (
    MAX_RANGES,
    ByteRange,
    byte_ranges,
    http_date,
    parse_http_date,
    precondition,
)

SIZE, ETAG, MODIFIED = 10, "abc", 784111777  # Sun, 06 Nov 1994 08:49:37 GMT


def ranges(header: str, **extra: str) -> list[tuple[int, int]] | None:
    found = byte_ranges({"HTTP_RANGE": header, **extra}, SIZE, ETAG, MODIFIED)
    return None if found is None else [(r.start, r.end) for r in found]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=5-8", [(5, 9)]),
        ("Bytes=5-8", [(5, 9)]),  # units are case-insensitive
        ("BYTES = 5-8", [(5, 9)]),
        ("bytes=5-", [(5, 10)]),
        ("bytes=-3", [(7, 10)]),
        ("bytes=-30", [(0, 10)]),  # a suffix longer than the file: all of it
        ("bytes=0-0", [(0, 1)]),
        ("bytes=5-100", [(5, 10)]),  # the end is clipped
        ("bytes=0-1,4-5", [(0, 2), (4, 6)]),
        ("bytes=4-5,0-1", None),  # out of order or overlapping: the whole file (werkzeug)
        ("bytes=0-5,3-8", None),
        ("bytes=0-1,20-30", [(0, 2)]),  # the unsatisfiable one is dropped
        ("bytes=10-", []),  # wholly past the end: 416
        ("bytes=20-30,40-", []),
        ("bytes=-0", []),  # the last 0 bytes
        ("bytes=5-3", None),  # malformed: the whole file
        ("bytes=x-", None),
        ("bytes=", None),
        ("items=1-2", None),  # another unit
        ("bytes=0-1,", None),
    ],
)
def test_byte_ranges(header: str, expected: list[tuple[int, int]] | None) -> None:
    assert ranges(header) == expected


def test_no_range_an_empty_file_or_too_many_ranges_send_everything() -> None:
    assert byte_ranges({}, SIZE, ETAG, MODIFIED) is None
    assert byte_ranges({"HTTP_RANGE": "bytes=0-"}, 0, ETAG, MODIFIED) is None
    many = ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1))
    assert ranges("bytes=" + many) is None
    assert ranges("bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES))) is not None


def test_if_range_needs_the_strong_etag_or_the_exact_date() -> None:
    assert ranges("bytes=1-2", HTTP_IF_RANGE='"abc"') == [(1, 3)]
    assert ranges("bytes=1-2", HTTP_IF_RANGE='"other"') is None
    assert ranges("bytes=1-2", HTTP_IF_RANGE='W/"abc"') is None  # weak: never for ranges
    assert ranges("bytes=1-2", HTTP_IF_RANGE=http_date(MODIFIED)) == [(1, 3)]
    assert ranges("bytes=1-2", HTTP_IF_RANGE=http_date(MODIFIED - 1)) is None
    assert ranges("bytes=1-2", HTTP_IF_RANGE="garbage") is None


def test_byte_range_length() -> None:
    assert ByteRange(5, 9).length == 4


def condition(method: str = "GET", etag: str | None = ETAG, **headers: str) -> int | None:
    environ = {"REQUEST_METHOD": method, **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}
    return precondition(environ, etag, MODIFIED)


def test_if_match_compares_strongly() -> None:
    assert condition(if_match='"abc"') is None
    assert condition(if_match='"x", "abc"') is None
    assert condition(if_match="*") is None
    assert condition(if_match='W/"abc"') == 412
    assert condition(if_match='"x"') == 412
    assert condition(if_match='"x"', etag=None) == 412  # a folder has no entity tag
    assert condition(if_match="*", etag=None) is None  # but it exists


def test_if_none_match_compares_weakly_and_gives_304_only_to_safe_methods() -> None:
    assert condition(if_none_match='"abc"') == 304
    assert condition("HEAD", if_none_match='W/"abc"') == 304
    assert condition(if_none_match='"x"') is None
    assert condition("PUT", if_none_match="*") == 412
    assert condition("DELETE", if_none_match='"abc"') == 412


def test_dates_are_compared_in_whole_seconds() -> None:
    now, before, after = http_date(MODIFIED), http_date(MODIFIED - 60), http_date(MODIFIED + 60)
    assert condition(if_modified_since=now) == 304  # not modified since: equal counts
    assert condition(if_modified_since=after) == 304
    assert condition(if_modified_since=before) is None
    assert condition("PROPPATCH", if_modified_since=now) is None  # only GET and HEAD
    assert condition(if_unmodified_since=before) == 412
    assert condition(if_unmodified_since=now) is None
    assert condition(if_unmodified_since=after) is None
    assert condition(if_modified_since="garbage") is None


def test_rfc_9110_order() -> None:
    # If-Match decides before If-Unmodified-Since; If-None-Match before If-Modified-Since
    assert condition(if_match='"abc"', if_unmodified_since=http_date(0)) is None
    assert condition(if_none_match='"x"', if_modified_since=http_date(MODIFIED)) is None
    assert condition(if_match='"x"', if_none_match='"abc"') == 412


def test_http_dates_in_all_three_formats() -> None:
    assert http_date(MODIFIED) == "Sun, 06 Nov 1994 08:49:37 GMT"
    for text in (
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ):
        assert parse_http_date(text) == MODIFIED, text
    assert parse_http_date("") is None and parse_http_date(None) is None
    assert parse_http_date("not a date") is None
