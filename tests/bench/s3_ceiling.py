"""The S3 server's own rate, beside the full stack's rows (not a test).

Row 6 of issue 20 judges the full stack's big PUT against WsgiDAV writing to the
local disk, with the S3 server (SeaweedFS `weed mini`) on the same machine. What the
S3 server itself accepts bounds that row: `raw_put_get` stores the big payload as
objects of our average chunk size, `in_flight` at a time, through the same S3 client
library as the server (minio), then reads them back, with nothing of ours between.
"""

from __future__ import annotations

import io
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minio import Minio

from tests.services.s3 import S3Service

DEFAULT_OBJECT = 256 * 1024  # davserver's default average chunk size
DEFAULT_IN_FLIGHT = 4  # the best of 1, 2, 4 and 8 for weed mini on 2 cores (perf notes)


def raw_put_get(
    s3: S3Service,
    payload: Path,
    size: int,
    object_size: int = DEFAULT_OBJECT,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> tuple[float, float]:
    """Put the first `size` bytes of `payload` as `object_size` objects into a new
    bucket, `in_flight` requests at a time, then get them all back: (PUT MB/s, GET
    MB/s), MB = 10^6 bytes. The bucket and its objects are removed afterwards."""
    client = Minio(s3.endpoint, s3.access_key, s3.secret_key, secure=s3.secure)
    bucket = f"ceiling-{uuid.uuid4().hex[:16]}"
    client.make_bucket(bucket)
    offsets = range(0, size, object_size)
    try:
        with payload.open("rb") as f:
            pieces = {o: f.read(min(object_size, size - o)) for o in offsets}

        def put(offset: int) -> None:
            body = pieces[offset]
            client.put_object(bucket, f"o{offset}", io.BytesIO(body), len(body))

        def get(offset: int) -> int:
            r = client.get_object(bucket, f"o{offset}")
            try:
                return len(r.read())
            finally:
                r.close()
                r.release_conn()

        with ThreadPoolExecutor(in_flight) as pool:
            started = time.perf_counter()
            list(pool.map(put, offsets))
            put_rate = size / (time.perf_counter() - started) / 1e6
            started = time.perf_counter()
            got = sum(pool.map(get, offsets))
            get_rate = size / (time.perf_counter() - started) / 1e6
        if got != size:
            raise RuntimeError(f"read back {got} bytes of {size}")
        return put_rate, get_rate
    finally:
        for offset in offsets:
            client.remove_object(bucket, f"o{offset}")
        client.remove_bucket(bucket)
