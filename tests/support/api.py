"""The JSON API under `/api/v1/` for the integration tests: `api(server, path)` is the
URL of an endpoint, `answer(response, status)` the JSON body of a response that must
have that status and the JSON content type, and `error(response, status)` the reason of
a JSON error answer (`{"error": "..."}`) with that status."""

from __future__ import annotations

from typing import Any

import requests

from tests.support.servers import RunningServer

JSON = "application/json"


def api(server: RunningServer, path: str) -> str:
    return f"{server.base}/api/v1/{path.lstrip('/')}"


def answer(response: requests.Response, status: int) -> Any:
    """The JSON body of `response`, which must have `status` and the JSON type."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == JSON, response.headers
    return response.json()


def error(response: requests.Response, status: int) -> str:
    """The reason of a JSON error answer with `status`."""
    body = answer(response, status)
    assert set(body) == {"error", "request_id"}, body
    assert body["request_id"] == response.headers["X-Request-Id"], (body, response.headers)
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])
