"""Naming rules: names kept as given, NFC match key, rejected names, path length limit."""

from __future__ import annotations

import unicodedata

import pytest

from providers.errors import InvalidName
from providers.names import MAX_NAME_BYTES, MAX_PATH_BYTES, check_name, name_key, split_path

NFC = unicodedata.normalize("NFC", "Café résumé.txt")
NFD = unicodedata.normalize("NFD", "Café résumé.txt")


def test_names_are_kept_as_given() -> None:
    assert NFD != NFC
    assert check_name(NFD) == NFD
    assert check_name(NFC) == NFC


def test_both_spellings_have_one_key() -> None:
    assert name_key(NFD) == name_key(NFC) == NFC
    assert unicodedata.is_normalized("NFC", name_key(NFD))


def test_plain_names_are_kept_case_sensitively() -> None:
    assert check_name("Report.PDF") == "Report.PDF"
    assert name_key("Report.PDF") != name_key("report.pdf")
    assert check_name("...") == "..."
    assert check_name(" a b ") == " a b "


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "/", "a\x00b", "\x00", "x" * (MAX_NAME_BYTES + 1), "\ud800", "a\udcffb"],
)
def test_rejected_names(name: str) -> None:
    with pytest.raises(InvalidName):
        check_name(name)


def test_name_length_is_counted_in_utf8_bytes_of_the_given_form() -> None:
    assert check_name("x" * MAX_NAME_BYTES) == "x" * MAX_NAME_BYTES
    assert check_name("é" * (MAX_NAME_BYTES // 2)) == "é" * (MAX_NAME_BYTES // 2)
    with pytest.raises(InvalidName):
        check_name("é" * (MAX_NAME_BYTES // 2 + 1))  # 256 bytes, 128 characters
    # NFD "é" is 3 bytes: 85 of them fit (255 bytes), 86 do not, though in NFC they would.
    e_nfd = unicodedata.normalize("NFD", "é")
    assert check_name(e_nfd * 85) == e_nfd * 85
    with pytest.raises(InvalidName):
        check_name(e_nfd * 86)


def test_split_path() -> None:
    assert split_path("") == []
    assert split_path("/") == []
    assert split_path("/a//b/") == ["a", "b"]
    nfd_path = unicodedata.normalize("NFD", "/dir/é")
    assert split_path(nfd_path) == ["dir", unicodedata.normalize("NFD", "é")]


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
