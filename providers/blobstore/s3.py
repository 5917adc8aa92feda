"""A `BlobStore` on an S3-compatible object store (AWS, MinIO, SeaweedFS...).

This is the only module that imports `minio`. `S3DirectTransfers` (made by
`S3BlobStore.direct`) is its `DirectTransfers`, presigned with `providers.blobstore.sigv4`.
Every error the client can raise is translated here: a missing object (`NoSuchKey`)
becomes `BlobNotFound`; anything else (connection refused, timeouts, 5xx after
retries, a missing bucket, refused credentials, a garbled answer) becomes
`Unavailable`, chained from the original error.

The HTTP pool uses short timeouts (connect 3 s, read 30 s) and two retries with a small
backoff, so an endpoint that refuses connections fails within a second or two and one
that drops packets within about ten seconds. The bucket is created on first use when
`create_bucket` is true, so constructing a store never touches the network.
Object mtimes come from S3 `Last-Modified` and so have one-second resolution.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import threading
from collections.abc import Iterator
from datetime import datetime

import urllib3
from minio import Minio
from minio.datatypes import Object
from minio.error import MinioException, S3Error
from minio.helpers import check_bucket_name
from urllib3.util import Retry, Timeout

from providers.blobstore.base import BlobInfo, BlobStore, validate_key
from providers.blobstore.direct import IMMUTABLE, STAGE_META
from providers.blobstore.sigv4 import Credentials, presign
from providers.errors import BlobNotFound, Unavailable

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0
RETRIES = 2
POOL_SIZE = 32

# urllib3 logs a warning per retried connection; a store that is down is reported once,
# as `Unavailable`, by whoever called us (and retried by `serve` at start-up).
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

_BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
_CLIENT_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


def _http_pool() -> urllib3.PoolManager:
    """A connection pool with short timeouts and few retries, sized for ~16 threads."""
    retry = Retry(
        total=RETRIES,
        backoff_factor=0.1,
        status_forcelist=(500, 502, 503, 504),
        redirect=False,
    )
    return urllib3.PoolManager(
        timeout=Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
        retries=retry,
        maxsize=POOL_SIZE,
    )


def _timestamp(when: datetime | None) -> float:
    return when.timestamp() if when is not None else 0.0


class S3BlobStore(BlobStore):
    """Objects stored in one S3 bucket under their keys.

    The constructor validates `bucket` (ValueError for an illegal name) but does no I/O.
    With `create_bucket` the bucket is created on first use if it is missing; without
    it a missing bucket makes every call raise `Unavailable`.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        create_bucket: bool = True,
    ) -> None:
        check_bucket_name(bucket, strict=True)
        self._creds = Credentials(endpoint, access_key, secret_key, region or "us-east-1", secure)
        self._bucket = bucket
        self._region = region
        self._create_bucket = create_bucket
        self._bucket_ready = not create_bucket
        self._bucket_lock = threading.Lock()
        self._http = _http_pool()
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=self._http,
        )

    @property
    def bucket(self) -> str:
        """The bucket holding the objects."""
        return self._bucket

    def put(self, key: str, data: bytes | memoryview) -> None:
        """Upload `data` in one request (multipart above 5 MiB); S3 makes it atomic."""
        validate_key(key)
        self._ensure_bucket()
        with self._translated("put", key):
            self._client.put_object(self._bucket, key, io.BytesIO(data), len(data))

    def get(self, key: str) -> bytes:
        """Download the whole object; a truncated body raises `Unavailable`."""
        validate_key(key)
        self._ensure_bucket()
        with self._translated("get", key):
            response = self._client.get_object(self._bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def stat(self, key: str) -> BlobInfo | None:
        """HEAD the object: its size and Last-Modified time, or None."""
        obj = self._head(key)
        return None if obj is None else BlobInfo(key, obj.size or 0, _timestamp(obj.last_modified))

    def metadata(self, key: str) -> tuple[int, dict[str, str]] | None:
        """HEAD the object: its size and user metadata (lowercase names without the
        `x-amz-meta-` prefix), or None."""
        obj = self._head(key)
        if obj is None:
            return None
        prefix = "x-amz-meta-"
        meta = {
            k.lower().removeprefix(prefix): str(v)
            for k, v in (obj.metadata or {}).items()
            if k.lower().startswith(prefix)
        }
        return obj.size or 0, meta

    def _head(self, key: str) -> Object | None:
        """HEAD the object (None if there is none)."""
        validate_key(key)
        self._ensure_bucket()
        try:
            with self._translated("stat", key):
                return self._client.stat_object(self._bucket, key)
        except BlobNotFound:
            return None

    def direct(self, endpoint: str = "", secure: bool | None = None) -> S3DirectTransfers:
        """Direct transfers to this bucket, presigned for clients that reach the store
        at `endpoint` (`host:port`; default: the one this store uses) over https when
        `secure` (default: as this store)."""
        creds = self._creds
        if endpoint:
            creds = Credentials(
                endpoint,
                creds.access_key,
                creds.secret_key,
                creds.region,
                creds.secure if secure is None else secure,
            )
        return S3DirectTransfers(self, creds)

    def delete(self, key: str) -> None:
        """Remove the object; S3 already treats a missing key as success."""
        validate_key(key)
        self._ensure_bucket()
        with contextlib.suppress(BlobNotFound), self._translated("delete", key):
            self._client.remove_object(self._bucket, key)

    def iter_keys(self, prefix: str = "") -> Iterator[BlobInfo]:
        """List the bucket recursively (paged by the client); errors surface mid-iteration."""
        self._ensure_bucket()
        with self._translated("list", prefix):
            listing = self._client.list_objects(self._bucket, prefix=prefix or None, recursive=True)
            for obj in listing:
                if obj.is_dir or obj.object_name is None:
                    continue
                yield BlobInfo(obj.object_name, obj.size or 0, _timestamp(obj.last_modified))

    def probe(self, prefix: str = "") -> None:
        """`check` first, so a missing bucket is named as such, then the write probe."""
        self.check()
        super().probe(prefix)

    def check(self) -> None:
        """One cheap request (bucket_exists); creates the bucket if allowed and missing."""
        with self._translated("check", self._bucket):
            exists = self._client.bucket_exists(self._bucket)
        if exists:
            return
        if not self._create_bucket:
            raise Unavailable(f"S3 bucket {self._bucket!r} does not exist")
        self._bucket_ready = False
        self._ensure_bucket()

    def close(self) -> None:
        """Drop pooled connections."""
        self._http.clear()

    def _ensure_bucket(self) -> None:
        """Create the bucket once (if allowed); raise `Unavailable` while that fails."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            with self._translated("create bucket", self._bucket):
                if not self._client.bucket_exists(self._bucket):
                    self._make_bucket()
            self._bucket_ready = True

    def _make_bucket(self) -> None:
        try:
            self._client.make_bucket(self._bucket, location=self._region)
        except S3Error as e:
            if e.code not in _BUCKET_EXISTS_CODES:
                raise

    @contextlib.contextmanager
    def _translated(self, action: str, name: str) -> Iterator[None]:
        """Turn client errors raised inside the block into `BlobNotFound`/`Unavailable`."""
        try:
            yield
        except S3Error as e:
            if e.code == "NoSuchKey":
                raise BlobNotFound(name) from e
            if e.code == "NoSuchBucket" and self._create_bucket:
                self._bucket_ready = False
            raise Unavailable(f"S3 {action} {name!r} failed: {e.code}: {e.message}") from e
        except _CLIENT_ERRORS as e:
            raise Unavailable(f"S3 {action} {name!r} failed: {e}") from e


class S3DirectTransfers:
    """`DirectTransfers` (`providers.blobstore.direct`) on an `S3BlobStore`'s bucket.

    A PUT signs `content-length`, `x-amz-checksum-sha256` (base64 of the SHA-256) and
    `x-amz-meta-davserver-stage` (the token); S3 then answers 400 BadDigest to other
    bytes and 403 to another length, header or an expired URL. (`x-amz-content-sha256`
    is not enough: SeaweedFS ignores it.) A GET signs `response-cache-control`, which
    the store echoes as the answer's `Cache-Control`.
    """

    def __init__(self, store: S3BlobStore, creds: Credentials) -> None:
        self._store = store
        self._creds = creds

    def presign_put(
        self, key: str, size: int, sha256: str, token: str, ttl: int
    ) -> tuple[str, dict[str, str]]:
        validate_key(key)
        headers = {
            "Content-Length": str(size),
            "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
            f"x-amz-meta-{STAGE_META}": token,
        }
        url = presign(self._creds, "PUT", self._store.bucket, key, expires=ttl, headers=headers)
        return url, headers

    def presign_get(self, key: str, ttl: int) -> str:
        validate_key(key)
        query = {"response-cache-control": IMMUTABLE}
        return presign(self._creds, "GET", self._store.bucket, key, expires=ttl, query=query)

    def object_token(self, key: str) -> tuple[int, str | None] | None:
        found = self._store.metadata(key)
        if found is None:
            return None
        size, meta = found
        return size, meta.get(STAGE_META)
