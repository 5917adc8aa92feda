"""Every engine error has the one HTTP status every door answers it with
(`providers.errors`, design invariant 9), and doors render it alike."""

from __future__ import annotations

import inspect

from wsgidav.dav_error import DAVError

from davserver.dav.errors import ShortError
from davserver.http.errors import HttpError, from_storage, status_line, with_request_id
from davserver.logs import reset_request_id, set_request_id
from providers import errors
from providers.dav.errors import dav_error
from providers.errors import IntegrityError, Locked, QuotaExceeded, StorageError, Unavailable

EXPECTED = {
    "StorageError": 500,
    "Unavailable": 503,
    "ChunkGone": 503,
    "NotFound": 404,
    "BlobNotFound": 404,
    "Conflict": 409,
    "LeaseHeld": 409,
    "LeaseLost": 409,
    "InvalidName": 400,
    "ChecksumMismatch": 400,
    "UploadChecksumMismatch": 460,
    "InvalidUpload": 400,
    "Forbidden": 403,
    "BadCursor": 400,
    "CursorExpired": 410,
    "Locked": 423,
    "QuotaExceeded": 507,
    "IntegrityError": 500,
    "CorruptChunk": 500,
    "StoreMissing": 503,
    "SchemaMismatch": 503,
    "TooBusy": 503,
    "BadBlocks": 400,
    "PreconditionFailed": 412,
}


def test_every_error_class_names_its_own_status() -> None:
    classes = {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, StorageError)
    }
    assert set(classes) == set(EXPECTED), "a new error class needs its status here"
    for name, cls in classes.items():
        assert "http_status" in vars(cls), f"{name} inherits its status: say it"
        assert cls.http_status == EXPECTED[name], name


def test_doors_answer_an_engine_error_with_its_status() -> None:
    quota = QuotaExceeded("quota exceeded: 10 bytes left")
    assert (from_storage(quota).status, from_storage(quota).reason) == (507, str(quota))
    assert from_storage(quota).status_line == "507 Insufficient Storage"
    assert dav_error(quota).value == 507
    locked = dav_error(Locked("locked", ["/%00/1/a.txt"]))
    assert locked.value == 423 and locked.err_condition is not None
    assert locked.err_condition.hrefs == ["/%00/1/a.txt"]


def test_status_lines_use_rfc_9110_phrases() -> None:
    assert status_line(413) == "413 Content Too Large"
    assert status_line(416) == "416 Range Not Satisfiable"
    assert HttpError(404, "no such thing").status_line == "404 Not Found"


def test_a_server_side_failure_reaches_the_client_without_its_detail() -> None:
    token = set_request_id("rid123")
    try:
        down = from_storage(Unavailable("S3: HTTPConnectionPool(host='127.0.0.1', port=1)"))
        broken = from_storage(IntegrityError("/var/lib/davserver/blobs/chunks/ab: EIO"))
        assert (down.status, down.reason) == (503, "storage unavailable")
        assert (broken.status, broken.reason) == (500, "internal error")
        assert with_request_id(down.reason) == "storage unavailable (request id rid123)"
    finally:
        reset_request_id(token)
    assert with_request_id("no request") == "no request"


def test_webdav_errors_are_short_text_or_their_condition_xml() -> None:
    token = set_request_id("rid456")
    try:
        down = ShortError(dav_error(Unavailable("HTTPConnectionPool(host='10.0.0.9')")))
        content_type, body = down.get_response_page()
        assert content_type.startswith("text/plain")
        assert body == b"storage unavailable (request id rid456)\n"
        missing = ShortError(DAVError(404, "/a.txt"))
        assert missing.get_response_page()[1] == b"not found: /a.txt (request id rid456)\n"
        elsewhere = ShortError(DAVError(502, "Source and destination must have the same scheme."))
        assert b"same scheme" in elsewhere.get_response_page()[1]  # WsgiDAV's own words
        crashed = ShortError(DAVError(502, "at 10.0.0.9", src_exception=OSError("10.0.0.9")))
        assert crashed.get_response_page()[1] == b"internal error (request id rid456)\n"
        locked = ShortError(dav_error(Locked("locked", ["/a.txt"])))
        content_type, body = locked.get_response_page()
        assert content_type.startswith("application/xml") and b"no-conflicting-lock" in body
    finally:
        reset_request_id(token)
