"""The TUS protocol module both doors share (`davserver.http.tus`): creation headers,
metadata, Upload-Checksum, the checksum metadata, capabilities."""

from __future__ import annotations

import base64
import hashlib

import pytest

from davserver.http import tus


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_pairs_are_decoded_and_malformed_ones_refused() -> None:
    value = f"filename {b64('vidéo.bin')},mtime {b64('1700000000.5')},empty"
    assert tus.parse_metadata(value) == {
        "filename": "vidéo.bin",
        "mtime": "1700000000.5",
        "empty": "",
    }
    for bad in ("filename !!!", f"a {b64('x')},a {b64('y')}", "clé eA=="):
        with pytest.raises(ValueError):
            tus.parse_metadata(bad)


def test_numbers_are_non_negative_decimals() -> None:
    assert tus.number("42", "Upload-Offset") == 42
    for bad in (None, "-1", "1e3", " 4", "٣"):
        with pytest.raises(ValueError):
            tus.number(bad, "Upload-Offset")


def test_a_creation_gives_a_length_or_defers_it() -> None:
    meta = f"filename {b64('a.bin')},checksum {b64('SHA256 ' + 'A' * 64)},mtime {b64('12.5')}"
    creation = tus.parse_creation(
        {"HTTP_UPLOAD_LENGTH": "10", "HTTP_UPLOAD_METADATA": meta}, extended=True
    )
    assert creation.length == 10 and creation.mtime == 12.5
    assert creation.checksum == ("sha256", "a" * 64)
    deferred = tus.parse_creation({"HTTP_UPLOAD_DEFER_LENGTH": "1"}, extended=True)
    assert deferred.length is None
    with pytest.raises(ValueError):  # links: no deferral
        tus.parse_creation({"HTTP_UPLOAD_DEFER_LENGTH": "1"}, extended=False)
    with pytest.raises(ValueError):
        tus.parse_creation({}, extended=True)  # neither
    link = tus.parse_creation(
        {"HTTP_UPLOAD_LENGTH": "3", "HTTP_UPLOAD_METADATA": meta}, extended=False
    )
    assert link.checksum is None and link.mtime is None  # links ignore both


def test_concatenation_headers() -> None:
    partial = tus.parse_creation(
        {"HTTP_UPLOAD_CONCAT": "partial", "HTTP_UPLOAD_LENGTH": "5"}, extended=True
    )
    assert partial.concat == "partial"
    final = tus.parse_creation({"HTTP_UPLOAD_CONCAT": "final;/tus/a http://h/tus/b"}, extended=True)
    assert final.concat == ("/tus/a", "http://h/tus/b") and final.length is None
    for bad in ("final;", "whole", "final;/tus/a"):
        env = {"HTTP_UPLOAD_CONCAT": bad}
        if bad == "final;/tus/a":
            env["HTTP_UPLOAD_LENGTH"] = "3"  # a final upload has no length of its own
        with pytest.raises(ValueError):
            tus.parse_creation(env, extended=True)


def test_upload_checksum_is_base64_and_becomes_hex() -> None:
    digest = hashlib.sha1(b"piece").digest()
    value = f"sha1 {base64.b64encode(digest).decode()}"
    assert tus.parse_upload_checksum(value) == ("sha1", digest.hex())
    assert tus.parse_upload_checksum(None) is None
    for bad in ("crc32 AAAA", "sha1 !!", f"sha256 {base64.b64encode(digest).decode()}"):
        with pytest.raises(ValueError):
            tus.parse_upload_checksum(bad)


def test_checksum_metadata_is_an_algorithm_and_hex() -> None:
    assert tus.parse_checksum_metadata("md5 " + "F" * 32) == ("md5", "f" * 32)
    for bad in ("md5 abc", "sha512 " + "0" * 128, "sha1 " + "g" * 40, "sha1"):
        with pytest.raises(ValueError):
            tus.parse_checksum_metadata(bad)


def test_capabilities_name_the_checksum_algorithms_only_with_checksum() -> None:
    with_sums = dict(tus.capabilities(["creation", "checksum"]))
    assert with_sums["Tus-Checksum-Algorithm"] == "sha256,sha1,md5"
    assert with_sums["Tus-Extension"] == "creation,checksum"
    assert "Tus-Checksum-Algorithm" not in dict(tus.capabilities(["creation"]))


def test_an_error_answer_carries_tus_resumable_and_no_caching() -> None:
    seen: list[tuple[str, list[tuple[str, str]]]] = []
    body = tus.answer(lambda s, h: seen.append((s, h)), 460, [], "checksum mismatch")
    status, headers = seen[0]
    assert status == "460 Checksum Mismatch"
    assert ("Tus-Resumable", "1.0.0") in headers and ("Cache-Control", "no-store") in headers
    assert b"checksum mismatch" in b"".join(body)
