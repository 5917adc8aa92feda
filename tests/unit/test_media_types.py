"""A file's guessed media type (`providers.dav.files._guess_type`), cached by the name's
last two extensions, is what `mimetypes.guess_type` says of the whole name."""

from __future__ import annotations

import mimetypes
import random

import pytest

from providers.dav.files import _guess_type

TRICKY = [
    "README",
    "a.txt",
    "A.TXT",
    "photo.JPG",
    "a.tar.gz",
    "a.b.tar.gz",
    "x.tar.GZ",
    "x.tgz",
    "x.txz",
    "a.svgz",
    "a.json.gz",
    "archive.v1.2.tar.xz",
    "a..gz",
    "a...txt",
    "a.",
    "noext.",
    "..",
    "...gz",
    ".txt",
    ".tar.gz",
    ".bashrc",
    "a:b.txt",
    "data:text/plain,x",
    "ä.html",
    "a b.mp4",
]


def _whole(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


@pytest.mark.parametrize("name", TRICKY)
def test_a_tricky_name_gets_the_type_of_its_whole_name(name: str) -> None:
    assert _guess_type(name) == _whole(name)


def test_names_built_from_every_known_extension_get_the_type_of_their_whole_name() -> None:
    extensions = [
        *mimetypes.types_map,
        *mimetypes.encodings_map,
        *mimetypes.suffix_map,
        ".",
        ".X",
    ]
    stems = ["", "a", "ab.c", ".", "..", "x y", "Z", "a:b", "data:"]
    rng = random.Random(20)
    names = []
    for _ in range(20_000):
        tail = [rng.choice(extensions) for _ in range(rng.randint(0, 4))]
        names.append(
            rng.choice(stems) + "".join(e.upper() if rng.random() < 0.2 else e for e in tail)
        )
    assert [n for n in names if n and _guess_type(n) != _whole(n)] == []
    assert len({_guess_type(n) for n in names}) > 100  # the names reach many types
