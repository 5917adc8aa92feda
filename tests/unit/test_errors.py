"""Every engine error has the one HTTP status every door answers it with
(`providers.errors`, design invariant 9), and doors render it alike."""

from __future__ import annotations

import inspect

from davserver.http.errors import HttpError, from_storage, status_line
from providers import errors
from providers.dav.errors import dav_error
from providers.errors import Locked, QuotaExceeded, StorageError

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
    "Forbidden": 403,
    "Locked": 423,
    "QuotaExceeded": 507,
    "IntegrityError": 500,
    "StoreMissing": 503,
    "SchemaMismatch": 503,
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
