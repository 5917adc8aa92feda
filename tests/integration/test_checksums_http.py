"""Checksums over HTTP, on both stacks: what PUT, GET, HEAD and PROPFIND carry, PUTs
verified against what they announce (a mismatch is 400 and the old content stays),
share-link downloads and uploads, and files stored without checksums (a release before
them) getting them from a full GET or from `davserver checksums --apply`. rclone's
view of them is in `test_rclone.py`."""

from __future__ import annotations

import base64
import hashlib
import os
import re

import requests
from sqlalchemy import text

from tests.support.links import make_link
from tests.support.servers import RunningServer
from tests.support.subprocess_server import run_cli

KIB = 1024
OC_PROPS = (
    b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">'
    b"<d:prop><d:displayname/><d:getcontentlength/><oc:checksums/></d:prop></d:propfind>"
)
CHECKSUM = re.compile(r"<([\w-]+:)?checksum(\s[^>]*)?>([^<]*)</")


def sums(data: bytes) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in ("sha1", "md5", "sha256")}


def b64(algorithm: str, data: bytes) -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def oc_value(data: bytes) -> str:
    s = sums(data)
    return f"SHA1:{s['sha1']} MD5:{s['md5']} SHA256:{s['sha256']}"


def listed_checksums(session: requests.Session, url: str, depth: str) -> dict[str, str | None]:
    """href -> the `oc:checksum` text of each response of a PROPFIND (None: 404)."""
    answer = session.request("PROPFIND", url, data=OC_PROPS, headers={"Depth": depth})
    assert answer.status_code == 207, answer.text
    found: dict[str, str | None] = {}
    for response in re.findall(r"<D:response>(.*?)</D:response>", answer.text, re.S):
        href = re.search(r"<D:href>([^<]*)</D:href>", response)
        assert href is not None
        value = CHECKSUM.search(response)
        found[href.group(1)] = value.group(3) if value else None
    return found


def test_put_get_head_and_propfind_carry_the_checksums(server: RunningServer) -> None:
    client = server.client()
    data = os.urandom(300 * KIB + 5)
    put = client.put(server.url("a.bin"), data=data)
    assert put.status_code == 201
    assert put.headers["OC-Checksum"] == f"SHA1:{sums(data)['sha1']}"
    assert put.headers["Repr-Digest"] == f"sha-256=:{b64('sha256', data)}:"

    for method in ("GET", "HEAD"):
        answer = client.request(method, server.url("a.bin"))
        assert answer.status_code == 200
        assert answer.headers["OC-Checksum"] == f"SHA1:{sums(data)['sha1']}"
        assert answer.headers["Repr-Digest"] == f"sha-256=:{b64('sha256', data)}:"
        assert answer.headers["Content-Digest"] == f"sha-256=:{b64('sha256', data)}:"
    part = client.get(server.url("a.bin"), headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == data[10:100]
    assert part.headers["Repr-Digest"] == f"sha-256=:{b64('sha256', data)}:"
    assert "Content-Digest" not in part.headers  # that would be of these 90 bytes

    client.request("MKCOL", server.url("dir/"))
    client.put(server.url("dir/b.txt"), data=b"bee")
    client.put(server.url("dir/empty"), data=b"")
    listed = listed_checksums(client, server.url("dir/"), "1")
    assert listed == {
        "/dav/dir/": None,
        "/dav/dir/b.txt": oc_value(b"bee"),
        "/dav/dir/empty": oc_value(b""),
    }
    assert listed_checksums(client, server.url("a.bin"), "0") == {"/dav/a.bin": oc_value(data)}
    # a COPY shares the content, and so its checksums
    copy = client.request("COPY", server.url("a.bin"), headers={"Destination": "/dav/c.bin"})
    assert copy.status_code == 201
    assert client.head(server.url("c.bin")).headers["OC-Checksum"] == put.headers["OC-Checksum"]


def _announce_cases(good: bytes, bad: bytes) -> list[dict[str, str]]:
    """Headers announcing the checksum of `bad` (for a body `good`), one family each."""
    return [
        {"OC-Checksum": f"SHA1:{sums(bad)['sha1']}"},
        {"OC-Checksum": f"MD5:{sums(bad)['md5']}"},
        {"Content-Digest": f"sha-256=:{b64('sha256', bad)}:"},
        {"Content-Digest": f"sha-512=:{b64('sha512', bad)}:"},
        {"Repr-Digest": f"sha-256=:{b64('sha256', bad)}:"},
        {"Digest": f"SHA-256={b64('sha256', bad)}"},
        {"Digest": f"MD5={b64('md5', bad)}"},
        {"Content-MD5": b64("md5", bad)},
    ]


def test_a_put_whose_checksum_does_not_match_is_400_and_changes_nothing(
    server: RunningServer,
) -> None:
    client = server.client()
    old, new = b"old content\n", os.urandom(100 * KIB)
    assert client.put(server.url("f.txt"), data=old).status_code == 201
    etag = client.head(server.url("f.txt")).headers["ETag"]
    for headers in _announce_cases(new, b"something else"):
        refused = client.put(server.url("f.txt"), data=new, headers=headers)
        assert refused.status_code == 400, (headers, refused.text)
        assert "checksum mismatch" in refused.text and "request id" in refused.text
        created = client.put(server.url("n.txt"), data=new, headers=headers)
        assert created.status_code == 400
    assert client.get(server.url("f.txt")).content == old
    assert client.head(server.url("f.txt")).headers["ETag"] == etag
    assert client.head(server.url("n.txt")).status_code == 404

    malformed = client.put(server.url("f.txt"), data=new, headers={"OC-Checksum": "SHA1:xyz"})
    assert malformed.status_code == 400 and client.get(server.url("f.txt")).content == old

    for headers in _announce_cases(new, new):
        headers["OC-Checksum"] = headers.get("OC-Checksum", "ADLER32:00000001")  # ignored
        assert client.put(server.url("f.txt"), data=new, headers=headers).status_code == 204
    assert client.get(server.url("f.txt")).content == new


def test_share_links_send_and_upload_with_checksums(server: RunningServer) -> None:
    client = server.client()
    data = os.urandom(50 * KIB)
    client.request("MKCOL", server.url("pub/"))
    client.put(server.url("pub/p.bin"), data=data)
    link = make_link(server, "pub", "edit")
    download = requests.get(f"{link.url}/download/p.bin")
    assert download.status_code == 200 and download.content == data
    assert download.headers["OC-Checksum"] == f"SHA1:{sums(data)['sha1']}"
    assert download.headers["Content-Digest"] == f"sha-256=:{b64('sha256', data)}:"
    # the link's own WebDAV verifies and answers like /dav/
    wrong = {"OC-Checksum": f"SHA1:{sums(b'x')['sha1']}"}
    assert requests.put(link.dav + "q.bin", data=data, headers=wrong).status_code == 400
    right = {"OC-Checksum": f"SHA1:{sums(data)['sha1']}"}
    put = requests.put(link.dav + "q.bin", data=data, headers=right)
    assert put.status_code == 201 and put.headers["OC-Checksum"] == right["OC-Checksum"]
    assert listed_checksums(client, server.url("pub/q.bin"), "0") == {
        "/dav/pub/q.bin": oc_value(data)
    }
    # a whole download through the link keeps what it computed for a file without them
    _forget_checksums(server)
    assert "OC-Checksum" not in requests.get(f"{link.url}/download/p.bin").headers
    assert (
        client.head(server.url("pub/p.bin")).headers["OC-Checksum"] == f"SHA1:{sums(data)['sha1']}"
    )


def _forget_checksums(server: RunningServer) -> None:
    """Make every stored content look written by a release before checksums."""
    with server.services.catalog.db.connection(write=True) as conn:
        conn.execute(text("UPDATE content SET sha1 = NULL, md5 = NULL, sha256 = NULL"))


def test_files_stored_without_checksums_get_them_later(server: RunningServer) -> None:
    client = server.client()
    first, second = os.urandom(80 * KIB), os.urandom(90 * KIB)
    client.put(server.url("one.bin"), data=first)
    client.put(server.url("two.bin"), data=second)
    _forget_checksums(server)
    assert listed_checksums(client, server.dav, "1")["/dav/one.bin"] is None
    head = client.head(server.url("one.bin"))
    assert head.status_code == 200 and "OC-Checksum" not in head.headers
    part = client.get(server.url("one.bin"), headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and "Repr-Digest" not in part.headers

    # a full GET streams every byte anyway: it computes them and keeps them
    assert client.get(server.url("one.bin")).content == first
    assert (
        client.head(server.url("one.bin")).headers["OC-Checksum"] == f"SHA1:{sums(first)['sha1']}"
    )

    dry = run_cli(server.settings, "checksums")
    assert dry.returncode == 0, dry.stderr
    assert f"1 files' contents ({len(second)} bytes) have no checksums" in dry.stdout
    assert listed_checksums(client, server.dav, "1")["/dav/two.bin"] is None
    applied = run_cli(server.settings, "checksums", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "computed 1 of 1 contents" in applied.stdout
    listed = listed_checksums(client, server.dav, "1")
    assert listed["/dav/one.bin"] == oc_value(first)
    assert listed["/dav/two.bin"] == oc_value(second)
    again = run_cli(server.settings, "checksums", "--apply")
    assert "computed 0 of 0 contents" in again.stdout


def test_a_client_cannot_set_checksums_with_proppatch(server: RunningServer) -> None:
    client = server.client()
    client.put(server.url("m.txt"), data=b"mine")
    body = (
        '<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">'
        "<d:set><d:prop><oc:checksums><oc:checksum>SHA1:0000000000000000000000000000000000000000"
        "</oc:checksum></oc:checksums></d:prop></d:set></d:propertyupdate>"
    )
    answer = client.request("PROPPATCH", server.url("m.txt"), data=body)
    assert answer.status_code == 207 and "200 OK" in answer.text  # rclone's PROPPATCH works
    assert listed_checksums(client, server.url("m.txt"), "0") == {"/dav/m.txt": oc_value(b"mine")}
