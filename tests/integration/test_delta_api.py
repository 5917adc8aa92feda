"""The delta API over HTTP (docs/api.md, "Sending only what changed"), on both stacks:
a push cut with the published parameters sends only the blocks the server lacks for
the caller and commits like a PUT (versions, feed, if_match, locks, quota); block URLs
serve the bytes without a login, immutable, and refuse a tampered or expired
signature; another user can neither learn of a block nor commit it unsent. Direct
transfers to S3 (full stack): the store refuses other bytes and expired URLs, and a
correct direct push reads back equal."""

from __future__ import annotations

import random
import time
from typing import Any

import requests

from tests.support.api import answer, api, error
from tests.support.dav import LOCK_BODY, put
from tests.support.delta import check, cut, push, send, sha
from tests.support.servers import RunningServer

MIB = 1 << 20


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def edited(data: bytes, seed: int) -> bytes:
    """`data` with 1 MiB in the middle replaced."""
    middle = len(data) // 2
    return data[:middle] + payload(MIB, seed) + data[middle + MIB :]


def commit(session: requests.Session, server: RunningServer, **body: Any) -> requests.Response:
    return session.post(api(server, "files/commit"), json=body)


def test_a_second_push_sends_only_what_changed(server: RunningServer) -> None:
    admin = server.client()
    data = payload(12 * MIB, 1)
    first = push(admin, server, "/docs/big.bin", data, parents=True, mtime=1_700_000_000.5)
    done = answer(first.commit, 201)
    blocks = cut(admin, server, data)
    assert first.sent == [sha(b) for b in blocks]  # all new (and each once)
    assert done["size"] == len(data) and done["mtime"] == 1_700_000_000.5
    assert done["checksums"] == {}  # never read back (docs/api.md)
    assert admin.get(server.url("docs/big.bin")).content == data
    cursor = answer(admin.get(api(server, "changes/latest")), 200)["cursor"]

    changed = edited(data, 2)
    second = push(admin, server, "/docs/big.bin", changed, if_match=done["etag"])
    again = answer(second.commit, 201)
    new_blocks = {sha(b): len(b) for b in cut(admin, server, changed)}
    assert set(second.sent) == set(new_blocks) - {sha(b) for b in blocks}
    assert 0 < sum(new_blocks[h] for h in second.sent) < 8 * MIB
    assert admin.get(server.url("docs/big.bin")).content == changed
    assert again["etag"] != done["etag"]
    (old,) = answer(admin.get(api(server, "versions?path=/docs/big.bin")), 200)["versions"]
    assert old["size"] == len(data)
    feed = answer(admin.get(api(server, "changes"), params={"cursor": cursor}), 200)
    assert [c["path"] for c in feed["changes"]] == ["/docs/big.bin"]

    stale = commit(admin, server, path="/docs/big.bin", blocks=[], size=0, if_match=done["etag"])
    assert error(stale, 412)
    same = push(admin, server, "/docs/copy.bin", changed, parents=False)
    assert same.sent == []
    # the full GET above computed the content's checksums: an equal content has them
    assert answer(same.commit, 201)["checksums"]["sha256"] == sha(changed)


def test_commit_names_what_is_missing_and_checks_sizes(server: RunningServer) -> None:
    admin = server.client()
    blocks = cut(admin, server, payload(3 * MIB, 3))
    hashes = [sha(b) for b in blocks]
    refused = commit(admin, server, path="/f.bin", blocks=hashes, size=3 * MIB)
    assert answer(refused, 400)["missing"] == hashes
    found = check(admin, server, blocks)
    assert found["missing"] == hashes and all(u["auth"] for u in found["upload"].values())
    for block in blocks:
        assert send(admin, found["upload"][sha(block)], block).status_code == 201
    wrong = commit(admin, server, path="/f.bin", blocks=hashes, size=3 * MIB + 1)
    assert "add up" in error(wrong, 400)
    url = api(server, f"blocks/{hashes[0]}")
    assert error(admin.put(url, data=blocks[1]), 400)
    assert error(admin.put(url, data=b""), 400)
    assert error(commit(admin, server, path="/no/f.bin", blocks=hashes, size=3 * MIB), 409)
    assert answer(commit(admin, server, path="/f.bin", blocks=hashes, size=3 * MIB), 201)
    assert error(admin.post(api(server, "blocks/check"), json={"blocks": [{"sha256": "x"}]}), 400)


def test_quota_and_locks_bind_a_commit(server: RunningServer) -> None:
    admin = server.client()
    data = payload(2 * MIB, 4)
    answer(push(admin, server, "/locked.bin", data).commit, 201)
    lock = admin.request("LOCK", server.url("locked.bin"), data=LOCK_BODY)
    assert lock.status_code == 200
    assert error(push(admin, server, "/locked.bin", edited(data, 5)).commit, 423)

    server.services.catalog.users.set_quota("admin", 3 * MIB)
    more = cut(admin, server, payload(2 * MIB, 6))
    listed = [{"sha256": sha(b), "size": len(b)} for b in more]
    assert error(admin.post(api(server, "blocks/check"), json={"blocks": listed}), 507)


def test_block_urls_need_no_login_and_refuse_tampering(server: RunningServer) -> None:
    admin = server.client()
    data = payload(3 * MIB, 7)
    put(admin, server.url("f.bin"), data)
    listed = answer(admin.get(api(server, "files/blocks?path=/f.bin")), 200)
    assert listed["size"] == len(data) and len(listed["blocks"]) > 1
    parts = []
    for block in listed["blocks"]:
        got = requests.get(block["url"], timeout=30)
        assert got.status_code == 200
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert sha(got.content) == block["sha256"]
        parts.append(got.content)
    assert b"".join(parts) == data
    url = listed["blocks"][0]["url"]
    other = listed["blocks"][1]["sha256"]
    assert (
        requests.get(url.replace(listed["blocks"][0]["sha256"], other), timeout=30).status_code
        == 403
    )
    assert requests.get(url[:-1] + ("0" if url[-1] != "0" else "1"), timeout=30).status_code == 403
    assert error(admin.get(api(server, "files/blocks?path=/nothing")), 404)
    unsigned = requests.get(f"{server.base}/blocks/{listed['blocks'][0]['sha256']}", timeout=30)
    assert unsigned.status_code == 403
    assert error(requests.get(api(server, "files/blocks?path=/f.bin"), timeout=30), 401)
    assert error(requests.put(api(server, f"blocks/{other}"), data=b"x", timeout=30), 401)


def test_block_urls_expire(make_server: Any) -> None:
    server = make_server("embedded", transfer_url_ttl=1)
    admin = server.client()
    put(admin, server.url("f.bin"), payload(50_000, 8))  # under the minimum chunk: one block
    (block,) = answer(admin.get(api(server, "files/blocks?path=/f.bin")), 200)["blocks"]
    time.sleep(2.1)
    assert requests.get(block["url"], timeout=30).status_code == 403


def test_another_user_learns_nothing_and_takes_nothing(server: RunningServer) -> None:
    admin = server.client()
    data = payload(2 * MIB, 9)
    answer(push(admin, server, "/secret.bin", data).commit, 201)
    server.add_user("bob", "bob-pass")
    bob = server.client("bob")
    blocks = cut(bob, server, data)
    hashes = [sha(b) for b in blocks]
    assert check(bob, server, blocks)["missing"] == hashes
    taken = commit(bob, server, path="/mine.bin", blocks=hashes, size=len(data))
    assert answer(taken, 400)["missing"] == hashes
    assert error(bob.get(api(server, "files/blocks?path=/secret.bin")), 404)
    grant = {"path": "/secret.bin", "to": "bob", "perm": "r"}
    answer(admin.post(api(server, "grants"), json=grant), 201)
    assert check(bob, server, blocks)["missing"] == []  # he can read it now
    answer(commit(bob, server, path="/mine.bin", blocks=hashes, size=len(data)), 201)
    assert bob.get(server.url("mine.bin")).content == data


def server_bytes(server: RunningServer) -> int:
    """Request and response body bytes the API door (and /blocks/) moved so far."""
    registry = server.services.metrics.registry
    names = ("davserver_request_bytes_total", "davserver_response_bytes_total")
    return int(sum(registry.get_sample_value(n, {"door": "api"}) or 0 for n in names))


def test_direct_transfers_go_to_s3_and_only_the_right_bytes_commit(make_server: Any) -> None:
    server = make_server("full", direct_transfers=True)
    admin = server.client()
    params = answer(admin.get(api(server, "blocks/params")), 200)
    assert params["direct"] is True
    data = payload(5 * MIB, 10)
    blocks = cut(admin, server, data)
    hashes = [sha(b) for b in blocks]
    found = check(admin, server, blocks)
    assert found["missing"] == hashes and not any(u["auth"] for u in found["upload"].values())
    wrong = bytearray(blocks[0])
    wrong[10] ^= 1
    refused = send(admin, found["upload"][hashes[0]], bytes(wrong))
    assert refused.status_code == 400 and "BadDigest" in refused.text
    for block in blocks[1:]:
        assert send(admin, found["upload"][sha(block)], block).status_code == 200
    body = {"path": "/direct.bin", "blocks": hashes, "size": len(data)}
    assert answer(admin.post(api(server, "files/commit"), json=body), 400)["missing"] == [hashes[0]]
    again = check(admin, server, blocks)
    assert again["missing"] == [hashes[0]]  # the others arrived, with this caller's token
    assert send(admin, again["upload"][hashes[0]], blocks[0]).status_code == 200
    answer(admin.post(api(server, "files/commit"), json=body), 201)
    # the server's own traffic for the push: JSON only, a small fraction of the file
    assert server_bytes(server) < len(data) // 50, server_bytes(server)
    assert admin.get(server.url("direct.bin")).content == data

    listed = answer(admin.get(api(server, "files/blocks?path=/direct.bin")), 200)["blocks"]
    for block, expected in zip(listed, blocks, strict=True):
        got = requests.get(block["url"], timeout=30)
        assert got.content == expected
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_an_expired_direct_url_is_refused(make_server: Any) -> None:
    server = make_server("full", direct_transfers=True, transfer_url_ttl=1)
    admin = server.client()
    (block,) = cut(admin, server, payload(100_000, 11))
    found = check(admin, server, [block])
    time.sleep(2.5)
    assert send(admin, found["upload"][sha(block)], block).status_code == 403
    body = {"path": "/late.bin", "blocks": [sha(block)], "size": len(block)}
    assert answer(admin.post(api(server, "files/commit"), json=body), 400)["missing"]
