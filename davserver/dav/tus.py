"""Resumable uploads (TUS 1.0) for accounts, on every WebDAV collection under `/dav/`
(as ownCloud Infinite Scale offers them), over the engine share links' drop pages use
(`providers.operations.uploads`) and the protocol module both doors share
(`davserver.http.tus`):

    OPTIONS /dav/<folder>/  WsgiDAV's answer plus Tus-Version, Tus-Extension,
                            Tus-Checksum-Algorithm, Tus-Max-Size
                            (`DavRequestServer.do_OPTIONS`)
    POST    /dav/<folder>/  with Tus-Resumable: create. Upload-Length (or
                            Upload-Defer-Length: 1), Upload-Metadata `filename`, optional
                            `mtime` (seconds) and `checksum` ("sha256 <hex>", "sha1 <hex>"
                            or "md5 <hex>": the whole file's, checked at the commit, 460)
                            -> 201, Location: /tus/<id>. A body
                            (application/offset+octet-stream) is the first piece
                            (creation-with-upload). Upload-Concat: partial makes a part of
                            a file to come (no filename needed); Upload-Concat:
                            final;<url> <url>... joins finished partials into the file at
                            once (400 if one is unfinished, 404 if not the caller's)
    HEAD, PATCH, DELETE /tus/<id>   the upload (`davserver.http.tus.UploadUrl`)
    OPTIONS /tus/...        the capabilities

The upload's own URL lives under `/tus/`, a mount of its own behind the very logins of
`/dav/` (Basic with the account or an app password, Digest; the same login gate,
limiter and nonces): under `/dav/` it would be a path in the user's tree, which may
hold any name, so it could shadow a file or be shadowed by one. Only the account that
created an upload reaches it (another account gets 404).

An upload into a name that holds a file replaces it as a PUT would (a new version,
design invariant 19), with a PUT's checks and commit: rights, the folder's or the
file's WebDAV lock (423; lock tokens in `If:` count, as for a PUT), the quota (507 at
the creation before any byte, before each piece, binding at the commit), the change
feed. A POST without Tus-Resumable is WsgiDAV's (405).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from davserver.http import tus
from davserver.http.body import declared_length, is_chunked
from davserver.http.environ import USER, StartResponse, WSGIEnvironment
from davserver.http.errors import HttpError
from providers.catalog import UserRecord
from providers.dav import DavProvider
from providers.errors import NotFound
from providers.names import check_name, split_path
from providers.operations.actor import Actor
from providers.operations.uploads import ResumableUploads

MOUNT_PATH = "/tus"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "checksum",
    "termination",
    "expiration",
    "concatenation",
)


def capabilities() -> tus.Headers:
    """What an OPTIONS of a collection or of `/tus/` adds."""
    return tus.capabilities(EXTENSIONS)


def options_headers() -> tus.Headers:
    """What WsgiDAV's OPTIONS answer of an account's collection gains."""
    return [("Tus-Resumable", tus.TUS_VERSION), *capabilities()]


def wants_tus(environ: dict[str, Any]) -> bool:
    """Whether a POST to a collection is a TUS creation (it says `Tus-Resumable`)."""
    return "HTTP_TUS_RESUMABLE" in environ


def create(
    provider: DavProvider, environ: dict[str, Any], start_response: StartResponse
) -> list[bytes]:
    """POST with Tus-Resumable on the collection at `environ`'s PATH_INFO (see the
    module docstring); every refusal is a TUS answer with a short reason."""
    creator = _Creator(provider, environ)
    try:
        tus.require_version(environ)
        status, headers = creator.run()
    except tus.ANSWERED as e:
        error = tus.refusal(e, "account upload")
        return tus.answer(start_response, error.status, error.headers, error.reason)
    return tus.answer(start_response, status, headers)


class _Creator:
    """One creation request (see `create`)."""

    def __init__(self, provider: DavProvider, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.actor = provider.actor(environ)
        self.engine = ResumableUploads(provider.ops)
        self.upload_url = tus.UploadUrl(self.engine)

    def run(self) -> tuple[int, tus.Headers]:
        creation = tus.parse_creation(self.environ, extended=True)
        if creation.length is not None and creation.length > tus.MAX_UPLOAD:
            raise HttpError(413, f"at most {tus.MAX_UPLOAD} bytes", capabilities())
        folder = self.engine.ops.view(self.actor).locate(split_path(self.environ["PATH_INFO"]))
        if folder is None:
            raise NotFound("no such folder")
        partial = creation.concat == "partial"
        name = creation.metadata.get("filename", "")
        if not partial:
            check_name(name)
        if isinstance(creation.concat, tuple):
            ids = [self._upload_id(url) for url in creation.concat]
            result = self.engine.concatenate(
                self.actor, folder, name, ids, mtime=creation.mtime, checksum=creation.checksum
            )
            return 201, [self._location(result.upload.id), *self.upload_url.state(result.upload)]
        upload = self.engine.create(
            self.actor,
            folder,
            name,
            creation.length,
            mtime=creation.mtime,
            checksum=creation.checksum,
            partial=partial,
        )
        headers = [self._location(upload.id)]
        if upload.length == 0:  # complete at its creation (tuspy sends no PATCH then)
            return 201, headers + self.upload_url.written(self.engine.write(self.actor, upload, []))
        if declared_length(self.environ) or is_chunked(self.environ):
            return 201, headers + self.upload_url.receive(self.environ, self.actor, upload)
        return 201, headers + self.upload_url.state(upload)

    def _location(self, upload_id: str) -> tuple[str, str]:
        """Where the upload is: `/tus/<id>` under the app's root (the prefix a proxy
        gives, if any, is what precedes `/dav` in SCRIPT_NAME)."""
        script = self.environ.get("SCRIPT_NAME", "")
        root = script.rsplit("/dav", 1)[0] if script.endswith("/dav") else script
        return "Location", f"{root}{MOUNT_PATH}/{upload_id}"

    @staticmethod
    def _upload_id(url: str) -> str:
        """The upload id of an upload URL in a final upload's Upload-Concat (absolute
        or a path); 404 for anything that is not one of ours."""
        head, _, upload_id = urlsplit(url).path.rstrip("/").rpartition("/")
        if not head.endswith(MOUNT_PATH) or not upload_id:
            raise NotFound("not an upload URL")
        return upload_id


class TusMount:
    """The `/tus/` mount (see the module docstring), to be served behind `/dav/`'s
    authentication; `provider` is `/dav/`'s, for the request's actor (its account and
    the lock tokens it submitted)."""

    def __init__(self, provider: DavProvider) -> None:
        self._provider = provider
        self._upload_url = tus.UploadUrl(ResumableUploads(provider.ops))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        names = [n for n in environ.get("PATH_INFO", "").split("/") if n]
        if tus.method_of(environ) == "OPTIONS":
            return tus.answer(start_response, 204, capabilities())
        if len(names) != 1:
            return tus.answer(start_response, 404, [], "no such upload")
        if not isinstance(environ.get(USER), UserRecord):
            return tus.answer(start_response, 403, [], "no such user")

        def actor() -> Actor:
            return self._provider.actor(environ)

        return self._upload_url(environ, start_response, actor, names[0], "account upload")
