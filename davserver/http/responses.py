"""Complete answers with a small body: plain text and JSON (pages are `davserver.web`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from davserver.http.environ import StartResponse
from davserver.http.errors import status_line, with_request_id
from davserver.logs import request_id

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"


def start(
    start_response: StartResponse,
    status: str,
    headers: list[tuple[str, str]],
    exc_info: Any = None,
) -> Any:
    """Call `start_response`, passing `exc_info` only when there is one."""
    if exc_info is None:
        return start_response(status, headers)
    return start_response(status, headers, exc_info)


def plain_response(
    start_response: StartResponse,
    status: int,
    text: str,
    headers: Sequence[tuple[str, str]] = (),
) -> list[bytes]:
    """`status` with `text` (a line) as the body; an error's text ends with the
    request id."""
    if status >= 400 and text:
        text = with_request_id(text)
    body = (text + "\n").encode("utf-8") if text else b""
    start_response(
        status_line(status),
        [("Content-Type", TEXT_TYPE), ("Content-Length", str(len(body))), *headers],
    )
    return [body] if body else []


def json_response(
    start_response: StartResponse,
    status: int,
    body: Any,
    headers: Sequence[tuple[str, str]] = (),
    exc_info: Any = None,
) -> list[bytes]:
    """`status` with `body` as JSON (no body when None), never cached; an error object
    (`{"error": ...}`) gets the `request_id`."""
    out = [("Cache-Control", "no-store"), *headers]
    if status >= 400 and isinstance(body, dict) and "error" in body and request_id():
        body = {**body, "request_id": request_id()}
    data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    if body is not None:
        out += [("Content-Type", JSON_TYPE), ("Content-Length", str(len(data)))]
    start(start_response, status_line(status), out, exc_info)
    return [data] if data else []
