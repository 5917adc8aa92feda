"""What the Nextcloud and ownCloud clients ask before WebDAV: `GET /status.php` and the
OCS endpoints `cloud/capabilities` and `cloud/user` (v1 and v2), as docs/nextcloud.md
lists them.

- OCS answers are `{"ocs":{"meta":{...},"data":{...}}}` in JSON (`format=json`) and the
  same tree in XML otherwise. JSON is written without spaces: ownCloud 2.11 finds
  `statuscode` with the regex `"statuscode":(\\d+),`. v1 says `statuscode` 100 for
  success, v2 says 200; errors keep the HTTP status in both (401, 404).
- Capabilities advertise only what this server implements (`Capabilities`): a feature
  the clients would use without a fallback (`bulkupload`, `tus_support`, locking,
  end-to-end encryption) is never listed, and without chunking `bigfilechunking` is
  sent as false, because ownCloud would otherwise split large files into `OC-Chunked`
  pieces (which we refuse).
- `uploadConflictFiles` is a top-level key of `capabilities` (not under `files`):
  both nextcloudcmd 3.x and owncloudcmd 2.x read it there (`Capabilities::
  uploadConflictFiles()`, overridden by the client's `OWNCLOUD_UPLOAD_CONFLICT_FILES`
  environment variable) and, when true, upload the `NAME (conflicted copy DATE).EXT`
  they make for a file edited on both sides instead of keeping it local.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from davserver import __version__
from davserver.http.environ import StartResponse, WSGIEnvironment
from davserver.http.errors import status_line
from davserver.http.responses import json_response
from providers.catalog import UserRecord
from providers.catalog.history_usage import Usage

# The Nextcloud release whose protocol we follow: clients gate features on it.
NEXTCLOUD_VERSION = (28, 0, 0)
PRODUCT = "davserver"


@dataclass(frozen=True)
class PushEndpoints:
    """Where the notify_push WebSocket and its pre-auth endpoint are (absolute URLs
    made per request, since the host is the one the client used)."""

    websocket: Callable[[WSGIEnvironment], str]
    pre_auth: Callable[[WSGIEnvironment], str]


@dataclass(frozen=True)
class Capabilities:
    """The features the Nextcloud door serves; each turns on what it advertises."""

    chunking: bool = False
    versions: bool = False
    trash: bool = False
    push: PushEndpoints | None = None
    # Ask the clients to upload their conflict copies, so that every device sees
    # both versions of a file edited on two sides and the trees converge.
    upload_conflict_copies: bool = False

    def document(self, environ: WSGIEnvironment) -> dict[str, Any]:
        """The `data` of `cloud/capabilities` for a request (`environ` gives the host
        absolute URLs are made for)."""
        major, minor, micro = NEXTCLOUD_VERSION
        files: dict[str, Any] = {
            "bigfilechunking": self.chunking,
            "blacklisted_files": [".htaccess"],
            "undelete": self.trash,
            "versioning": self.versions,
        }
        capabilities: dict[str, Any] = {
            "core": {"pollinterval": 60, "webdav-root": "remote.php/webdav"},
            "files": files,
            "checksums": {"supportedTypes": ["SHA1"], "preferredUploadType": "SHA1"},
            "dav": {"chunking": "1.0"} if self.chunking else {},
            "uploadConflictFiles": self.upload_conflict_copies,
        }
        if self.push is not None:
            capabilities["notify_push"] = {
                "type": ["files"],
                "endpoints": {
                    "websocket": self.push.websocket(environ),
                    "pre_auth": self.push.pre_auth(environ),
                },
            }
        version = {
            "major": major,
            "minor": minor,
            "micro": micro,
            "string": version_string(),
            "edition": "",
            "extendedSupport": False,
        }
        return {"version": version, "capabilities": capabilities}


def version_string() -> str:
    return ".".join(str(part) for part in NEXTCLOUD_VERSION)


def status(start_response: StartResponse) -> list[bytes]:
    """`GET /status.php`: what nextcloudcmd checks before anything else."""
    body = {
        "installed": True,
        "maintenance": False,
        "needsDbUpgrade": False,
        "version": version_string() + ".0",
        "versionstring": version_string(),
        "edition": "",
        "productname": PRODUCT,
        "extendedSupport": False,
        "davserver": __version__,
    }
    return json_response(start_response, 200, body, [("Access-Control-Allow-Origin", "*")])


def user_document(user: UserRecord, usage: Usage, free: int | None) -> dict[str, Any]:
    """The `data` of `cloud/user`: `id` is the name the DAV paths are built from.
    `quota.free` is what the quota leaves (or the store's free space without one);
    `quota.quota` is -3 (unlimited) without a quota, as Nextcloud says it."""
    if usage.quota is None:
        total, left, limit = None, free, -3
    else:
        left = max(0, usage.quota - usage.charged)
        total, limit = usage.quota, usage.quota
    relative = 0.0 if not total else round(100 * usage.charged / total, 2)
    quota = {
        "free": -3 if left is None else left,
        "used": usage.charged,
        "total": usage.charged + (left or 0) if total is None else total,
        "relative": relative,
        "quota": limit,
    }
    return {
        "enabled": True,
        "id": user.name,
        "display-name": user.name,
        "displayname": user.name,
        "email": None,
        "quota": quota,
    }


def ocs_response(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    status_code: int,
    data: Any,
    message: str = "OK",
) -> Iterable[bytes]:
    """An OCS answer (see the module docstring) with HTTP `status_code`; JSON when the
    query says `format=json` (or the client accepts only JSON), else XML."""
    v2 = "/ocs/v2.php/" in environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    ok = status_code < 400
    meta = {
        "status": "ok" if ok else "failure",
        "statuscode": (200 if v2 else 100) if ok else status_code,
        "message": message,
        "totalitems": "",
        "itemsperpage": "",
    }
    envelope = {"ocs": {"meta": meta, "data": data}}
    if wants_json(environ):
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        content_type = "application/json; charset=utf-8"
    else:
        body = ('<?xml version="1.0"?>\n' + _xml("ocs", envelope["ocs"])).encode()
        content_type = "text/xml; charset=UTF-8"
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    start_response(status_line(status_code), headers)
    return [body]


def wants_json(environ: WSGIEnvironment) -> bool:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "format" in query:
        return bool(query["format"][-1].lower() == "json")
    accept = str(environ.get("HTTP_ACCEPT", ""))
    return "application/json" in accept and "xml" not in accept


def _xml(tag: str, value: Any) -> str:
    """`value` as OCS XML: a dict's keys become elements, a list's items `<element>`."""
    if isinstance(value, dict):
        inner = "".join(_xml(str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(_xml("element", v) for v in value)
    elif value is None:
        inner = ""
    elif isinstance(value, bool):
        inner = "1" if value else ""
    else:
        inner = escape(str(value))
    return f"<{tag}>{inner}</{tag}>"
