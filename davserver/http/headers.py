"""Request headers every door reads the same way: byte ranges, conditions, HTTP dates.

The one place that interprets `Range`, `If-Range`, `If-Match`, `If-None-Match`,
`If-Modified-Since` and `If-Unmodified-Since`, and formats HTTP dates. Parsing is
werkzeug's (`werkzeug.http`, a well-kept implementation of the RFC grammars: range
units compared case-insensitively, multiple and suffix ranges, weak and strong
entity tags, the three date formats); this module decides what they mean here, by
RFC 9110:

- `byte_ranges`: None (send everything: no Range, another unit, a malformed header,
  a failed If-Range, an empty file, or more than `MAX_RANGES` ranges); `[]`
  (unsatisfiable: 416); else the satisfiable ranges in the order asked.
- `precondition`: 412, 304 or None (go on), evaluated in the order of 13.2.2; 304
  only for GET and HEAD (any other method gets 412 where a GET would get 304).

Entity tags are given unquoted (`"abc"` on the wire is `abc` here); resources without
one (folders) pass None.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.http import http_date as _http_date
from werkzeug.http import parse_date, parse_etags, parse_if_range_header, parse_range_header

MAX_RANGES = 16  # more than this in one request is answered with the whole file
_NO_BYTES = re.compile(r"\s*-\s*0+\s*")


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end` (exclusive) of a representation."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def http_date(timestamp: float) -> str:
    """An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), whole seconds."""
    return _http_date(int(timestamp))


def parse_http_date(value: str | None) -> int | None:
    """Seconds since the epoch of an HTTP date in any of its three formats; None when
    absent or invalid."""
    if not value:
        return None
    parsed = parse_date(value)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp())


def byte_ranges(
    environ: Mapping[str, Any], size: int, etag: str | None, last_modified: int
) -> list[ByteRange] | None:
    """The ranges a GET asks for (see the module docstring)."""
    header = environ.get("HTTP_RANGE")
    if not header or size == 0:
        return None
    parsed = parse_range_header(header)
    if parsed is None or parsed.units.lower() != "bytes" or len(parsed.ranges) > MAX_RANGES:
        return None
    if not _if_range_holds(environ.get("HTTP_IF_RANGE"), etag, last_modified):
        return None
    if _NO_BYTES.fullmatch(header.partition("=")[2]):
        return []  # `bytes=-0`: the last 0 bytes (werkzeug reads it as `0-`)
    ranges = []
    for start, stop in parsed.ranges:
        if start < 0:  # the final -start bytes
            ranges.append(ByteRange(max(0, size + start), size))
        elif start < size:
            ranges.append(ByteRange(start, size if stop is None else min(stop, size)))
    return ranges


def _if_range_holds(value: str | None, etag: str | None, last_modified: int) -> bool:
    """Whether an If-Range (if any) names the current representation: its strong
    entity tag, or exactly its date."""
    if value is None:
        return True
    condition = parse_if_range_header(value)
    if condition.etag is not None:
        return etag is not None and condition.etag == etag and not value.lstrip().startswith("W/")
    if condition.date is not None:
        return int(condition.date.timestamp()) == last_modified
    return False


def precondition(
    environ: Mapping[str, Any], etag: str | None, last_modified: int | None
) -> int | None:
    """412, 304 or None for an existing resource (see the module docstring)."""
    safe = environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD")
    if_match = environ.get("HTTP_IF_MATCH")
    if if_match is not None:
        tags = parse_etags(if_match)
        if not (tags.star_tag or (etag is not None and tags.contains(etag))):
            return 412
    else:
        since = parse_http_date(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
        if since is not None and last_modified is not None and last_modified > since:
            return 412
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = parse_etags(if_none_match)
        if tags.star_tag or (etag is not None and tags.contains_weak(etag)):
            return 304 if safe else 412
        return None
    modified = parse_http_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    if safe and modified is not None and last_modified is not None and last_modified <= modified:
        return 304
    return None
