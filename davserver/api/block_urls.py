"""Signed block URLs on this server: `/blocks/<sha256>?expires=<epoch>&sig=<hex>`.

The delta API (`GET /api/v1/files/blocks`) hands these out when blocks are not
fetched straight from the object store. The URL is its own credential: no login is
asked (a CDN in front forwards none), the signature is an HMAC-SHA256 over the hash
and the expiry under a key kept in the catalog (every instance signs and verifies
alike), and it is refused (403) once expired or if anything in it was changed. The
answer carries `Cache-Control: public, max-age=31536000, immutable`: a block is
named by its bytes, so it never changes.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Iterable
from urllib.parse import parse_qs

from davserver.http.environ import StartResponse, WSGIEnvironment
from davserver.http.errors import from_storage
from davserver.http.responses import plain_response, start
from providers.blobstore.direct import IMMUTABLE
from providers.errors import StorageError
from providers.filestore import FileStore
from providers.operations.blocks import SHA256_HEX

BLOCKS_PATH = "/blocks"


class BlockUrls:
    """Makes and checks the signatures of block URLs under one secret key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _signature(self, chunk_hash: str, expires: int) -> str:
        message = f"{chunk_hash}.{expires}".encode("ascii")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def url(self, base: str, chunk_hash: str, ttl: int) -> str:
        """An absolute URL (on `base`) of block `chunk_hash`, valid for `ttl` seconds."""
        expires = math.ceil(time.time()) + ttl  # whole seconds, never shorter than `ttl`
        sig = self._signature(chunk_hash, expires)
        return f"{base}{BLOCKS_PATH}/{chunk_hash}?expires={expires}&sig={sig}"

    def valid(self, chunk_hash: str, expires: str, sig: str) -> bool:
        """Whether the URL's parts are ours and not expired."""
        if not (expires.isascii() and expires.isdigit() and int(expires) >= time.time()):
            return False
        return hmac.compare_digest(self._signature(chunk_hash, int(expires)), sig)


class BlockSite:
    """The WSGI app under `BLOCKS_PATH`: GET (or HEAD) of a signed block URL."""

    def __init__(self, urls: BlockUrls, files: FileStore) -> None:
        self._urls = urls
        self._files = files

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            headers = [("Allow", "GET, HEAD")]
            return plain_response(start_response, 405, "only GET here", headers)
        chunk_hash = environ.get("PATH_INFO", "")[len(BLOCKS_PATH) + 1 :]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        expires, sig = (query.get(name, [""])[0] for name in ("expires", "sig"))
        if not SHA256_HEX.fullmatch(chunk_hash) or not self._urls.valid(chunk_hash, expires, sig):
            return plain_response(start_response, 403, "this block URL is invalid or expired")
        try:
            data = self._files.read_chunk(chunk_hash)
        except StorageError as e:
            error = from_storage(e, f"block {chunk_hash}")
            return plain_response(start_response, error.status, error.reason)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", IMMUTABLE),
            ("ETag", f'"{chunk_hash}"'),
        ]
        start(start_response, "200 OK", headers)
        return [] if method == "HEAD" else [data]
