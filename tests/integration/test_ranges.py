"""The same Range (and condition) gets the same answer at every door that sends file
bytes: `/dav/`, a link's `/s/<t>/download/`, its `/s/<t>/raw/` (previews) and its
WebDAV `/s/<t>/dav/` (design invariant 13). And a link's download limit counts what
the answer carries, whatever the spelling of the header: byte 0 counts, later bytes
do not."""

from __future__ import annotations

import email
import email.policy

import pytest
import requests

from tests.support.links import make_link
from tests.support.servers import RunningServer

BODY = bytes(range(256)) * 40  # 10240 bytes
NAME = "notes.txt"  # a text file: the raw door previews it
CASES = [
    "bytes=5-10",
    "Bytes=5-10",  # the unit is case-insensitive
    "BYTES=0-0",
    "bytes=0-1,4-5",  # several: multipart/byteranges
    "bytes=9000-",
    "bytes=-3",
    "bytes=20000-",  # unsatisfiable: 416
    "bytes=-0",
    "bytes=5-3",  # malformed: everything
    "items=1-2",  # another unit: everything
    "bytes=x-",
]


@pytest.fixture
def doors(server: RunningServer) -> dict[str, str]:
    """The URL of one file at every door."""
    session = server.client()
    assert session.request("MKCOL", server.url("box")).status_code == 201
    assert session.put(server.url(f"box/{NAME}"), data=BODY).status_code == 201
    link = make_link(server, "box", "download")
    return {
        "dav": server.url(f"box/{NAME}"),
        "download": f"{link.url}/download/{NAME}",
        "raw": f"{link.url}/raw/{NAME}",
        "link dav": f"{link.dav}{NAME}",
    }


def answer(response: requests.Response) -> tuple[object, ...]:
    """What must be equal everywhere: status, Content-Range, and the bytes sent (the
    parts of a multipart answer, with their ranges)."""
    kind = response.headers.get("Content-Type", "")
    if kind.startswith("multipart/byteranges"):
        message = email.message_from_bytes(
            f"Content-Type: {kind}\r\n\r\n".encode() + response.content, policy=email.policy.HTTP
        )
        parts = [(p["Content-Range"], p.get_payload(decode=True)) for p in message.iter_parts()]
        return response.status_code, "multipart", tuple(parts)
    return response.status_code, response.headers.get("Content-Range"), response.content


@pytest.mark.parametrize("header", CASES)
def test_every_door_answers_a_range_alike(
    server: RunningServer, doors: dict[str, str], header: str
) -> None:
    session = server.client()
    answers = {}
    for door, url in doors.items():
        client = session if door == "dav" else requests.Session()
        answers[door] = answer(client.get(url, headers={"Range": header}, timeout=30))
    assert len(set(answers.values())) == 1, answers
    status = answers["dav"][0]
    assert status in (200, 206, 416)
    if header.lower().startswith("bytes=5-10"):
        assert answers["dav"] == (206, f"bytes 5-10/{len(BODY)}", BODY[5:11])


def test_conditions_and_if_range_alike(server: RunningServer, doors: dict[str, str]) -> None:
    session = server.client()
    first = session.get(doors["dav"])
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    cases = [
        {"If-None-Match": etag},
        {"If-None-Match": f"W/{etag}"},
        {"If-Modified-Since": modified},
        {"If-Match": '"other"'},
        {"If-Unmodified-Since": "Sat, 12 Sep 2020 12:00:00 GMT"},
        {"Range": "bytes=1-2", "If-Range": etag},
        {"Range": "bytes=1-2", "If-Range": '"stale"'},
        {"Range": "bytes=1-2", "If-Range": modified},
    ]
    for headers in cases:
        statuses = {
            door: (session if door == "dav" else requests.Session()).get(url, headers=headers)
            for door, url in doors.items()
        }
        seen = {door: answer(response) for door, response in statuses.items()}
        assert len(set(seen.values())) == 1, (headers, seen)
        etags = {response.headers.get("ETag") for response in statuses.values()}
        assert etags == {etag}, headers


@pytest.mark.parametrize("door", ["download", "link dav"])
def test_a_download_counts_once_when_it_carries_byte_zero(server: RunningServer, door: str) -> None:
    session = server.client()
    session.request("MKCOL", server.url("once"))
    session.put(server.url(f"once/{NAME}"), data=BODY)
    link = make_link(server, "once", "download", max_downloads=1)
    url = f"{link.url}/download/{NAME}" if door == "download" else f"{link.dav}{NAME}"
    for later in ("Bytes=5-10", "bytes=100-", "bytes=-10", "BYTES=5-6,9-9"):
        response = requests.get(url, headers={"Range": later})
        assert response.status_code == 206, later  # a resumption: free
    assert requests.get(url, headers={"Range": "bytes=0-9"}).status_code == 206  # counted
    assert requests.get(url, headers={"Range": "bytes=0-9"}).status_code == 404  # used up
    assert requests.get(url).status_code == 404
