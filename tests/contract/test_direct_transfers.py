"""`DirectTransfers` on a real S3 (SeaweedFS `weed mini`): the presigned PUT lets only
the named bytes in (BadDigest for others, 403 for another length, a changed header or
an expired URL, nothing stored then), the stored object carries the stage token, and
a presigned GET answers the bytes with the immutable Cache-Control."""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable

import requests

from providers.blobstore.base import chunk_key
from providers.blobstore.direct import IMMUTABLE
from providers.blobstore.s3 import S3BlobStore

BLOCK = random.Random(7).randbytes(300_000)
HASH = hashlib.sha256(BLOCK).hexdigest()
KEY = chunk_key(HASH)


def test_a_presigned_put_takes_only_the_named_bytes(
    s3_store_factory: Callable[[], S3BlobStore],
) -> None:
    store = s3_store_factory()
    store.check()
    direct = store.direct()
    url, headers = direct.presign_put(KEY, len(BLOCK), HASH, "tok-1", 60)
    other = bytearray(BLOCK)
    other[1000] ^= 1
    refused = requests.put(url, data=bytes(other), headers=headers, timeout=30)
    assert refused.status_code == 400 and "BadDigest" in refused.text
    longer = requests.put(url, data=BLOCK + b"x", headers=headers, timeout=30)
    assert longer.status_code in (400, 403)
    changed = {**headers, "x-amz-meta-davserver-stage": "tok-2"}
    assert requests.put(url, data=BLOCK, headers=changed, timeout=30).status_code == 403
    assert direct.object_token(KEY) is None and not store.exists(KEY)

    stored = requests.put(url, data=BLOCK, headers=headers, timeout=30)
    assert stored.status_code == 200, stored.text
    assert direct.object_token(KEY) == (len(BLOCK), "tok-1")
    assert store.get(KEY) == BLOCK
    # other bytes sent again for the same key leave the stored object as it was
    url, headers = direct.presign_put(KEY, len(BLOCK), HASH, "tok-3", 60)
    assert requests.put(url, data=bytes(other), headers=headers, timeout=30).status_code == 400
    assert direct.object_token(KEY) == (len(BLOCK), "tok-1") and store.get(KEY) == BLOCK


def test_a_presigned_url_expires(s3_store_factory: Callable[[], S3BlobStore]) -> None:
    store = s3_store_factory()
    store.check()
    url, headers = store.direct().presign_put(KEY, len(BLOCK), HASH, "tok", 1)
    time.sleep(3)  # the URL lives 1 s, plus the fraction its whole-second date cut
    late = requests.put(url, data=BLOCK, headers=headers, timeout=30)
    assert late.status_code == 403 and not store.exists(KEY)


def test_a_presigned_get_is_immutable(s3_store_factory: Callable[[], S3BlobStore]) -> None:
    store = s3_store_factory()
    store.put(KEY, BLOCK)
    url = store.direct().presign_get(KEY, 60)
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == BLOCK
    assert got.headers["Cache-Control"] == IMMUTABLE
    tampered = re.sub(r"X-Amz-Expires=(\d+)", lambda m: f"X-Amz-Expires={int(m[1]) + 1}", url)
    assert tampered != url
    assert requests.get(tampered, timeout=30).status_code == 403
