"""Naming rules: NFC storage form, rejected names, path length limit."""

from __future__ import annotations

import unicodedata

import pytest

from providers.errors import InvalidName
from providers.names import MAX_NAME_BYTES, MAX_PATH_BYTES, normalize_name, split_path


def test_nfd_input_is_stored_as_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Café résumé.txt")
    assert nfd != "Café résumé.txt"
    assert normalize_name(nfd) == "Café résumé.txt"
    assert unicodedata.is_normalized("NFC", normalize_name(nfd))


def test_plain_names_are_kept_case_sensitively() -> None:
    assert normalize_name("Report.PDF") == "Report.PDF"
    assert normalize_name("...") == "..."
    assert normalize_name(" a b ") == " a b "


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "/", "a\x00b", "\x00", "x" * (MAX_NAME_BYTES + 1), "\ud800", "a\udcffb"],
)
def test_rejected_names(name: str) -> None:
    with pytest.raises(InvalidName):
        normalize_name(name)


def test_name_length_is_counted_in_utf8_bytes() -> None:
    assert normalize_name("x" * MAX_NAME_BYTES) == "x" * MAX_NAME_BYTES
    assert normalize_name("é" * (MAX_NAME_BYTES // 2)) == "é" * (MAX_NAME_BYTES // 2)
    with pytest.raises(InvalidName):
        normalize_name("é" * (MAX_NAME_BYTES // 2 + 1))  # 256 bytes, 128 characters


def test_split_path() -> None:
    assert split_path("") == []
    assert split_path("/") == []
    assert split_path("/a//b/") == ["a", "b"]
    assert split_path(unicodedata.normalize("NFD", "/dir/é")) == ["dir", "é"]


@pytest.mark.parametrize("path", ["/a/../b", "/a/./b", "/ok/\x00", "/ok/\ud800"])
def test_split_path_rejects_bad_segments(path: str) -> None:
    with pytest.raises(InvalidName):
        split_path(path)


def test_split_path_length_limit() -> None:
    segment = "d" * 200
    at_limit = "/".join([segment] * 21)[: MAX_PATH_BYTES - 1] + "e"
    assert len(at_limit.encode()) == MAX_PATH_BYTES
    assert len(split_path(at_limit)) == 21
    with pytest.raises(InvalidName):
        split_path(at_limit + "f")
