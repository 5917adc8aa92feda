"""AWS Signature Version 4 presigned URLs (query authentication), with the standard
library only: the S3 client library signs only `host` in a presigned URL, and the
delta API's direct PUTs must sign more (`x-amz-checksum-sha256`, `content-length`, the
stage token), so that the object store itself refuses bytes that are not the block.

The algorithm is AWS's ("Authenticating Requests: Using Query Parameters"): a
canonical request (method, URI-encoded path, sorted query, the signed headers, the
payload hash `UNSIGNED-PAYLOAD`), a string to sign over its SHA-256 and the
credential scope, and an HMAC-SHA256 chain from the secret key over date, region,
service and `aws4_request`. Path-style URLs (`<endpoint>/<bucket>/<key>`), which every
S3-compatible store accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_EXPIRES = 7 * 24 * 3600  # SigV4's own bound on X-Amz-Expires


def _encode(text: str, *, keep_slash: bool = False) -> str:
    """URI-encode as SigV4 wants: everything but unreserved characters (and '/')."""
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _signature(creds: Credentials, canonical: str, amz_date: str, day: str) -> str:
    """The signature of a canonical request: the string to sign over its SHA-256,
    HMAC'd under the key derived from the secret for that day, region and S3."""
    scope = f"{day}/{creds.region}/s3/aws4_request"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
    signing_key = ("AWS4" + creds.secret_key).encode("utf-8")
    for part in (day, creds.region, "s3", "aws4_request"):
        signing_key = _hmac(signing_key, part)
    return hmac.new(signing_key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to sign: `endpoint` is `host[:port]` as clients reach it,
    `secure` https or http, `region` the store's (S3-compatible stores accept
    `us-east-1`)."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    secure: bool = False


def presign(
    creds: Credentials,
    method: str,
    bucket: str,
    key: str,
    *,
    expires: int,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    now: float | None = None,
) -> str:
    """A URL that lets its holder send `method` on object `key` of `bucket` for
    `expires` seconds (1..7 days), without credentials. `headers` are signed: the
    request must carry exactly these values (`host` is always signed). `query`
    parameters (e.g. `response-cache-control`) are signed into the URL. The URL
    stays valid for at least `expires` seconds from `now`."""
    if not 1 <= expires <= MAX_EXPIRES:
        raise ValueError(f"expires must be 1..{MAX_EXPIRES} seconds")
    moment = time.time() if now is None else now
    stamp = time.gmtime(moment)
    # X-Amz-Date has whole seconds: the fraction cut from `moment` is added back to
    # the lifetime, else a 1 s URL signed at x.9 s would live 0.1 s.
    lifetime = min(expires + math.ceil(moment - math.floor(moment)), MAX_EXPIRES)
    amz_date, day = time.strftime("%Y%m%dT%H%M%SZ", stamp), time.strftime("%Y%m%d", stamp)
    scope = f"{day}/{creds.region}/s3/aws4_request"
    signed = {"host": creds.endpoint, **{k.lower(): v.strip() for k, v in (headers or {}).items()}}
    names = ";".join(sorted(signed))
    params = {
        **(query or {}),
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{creds.access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(lifetime),
        "X-Amz-SignedHeaders": names,
    }
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))
    path = _encode(f"/{bucket}/{key}", keep_slash=True)
    canonical = "\n".join(
        (
            method,
            path,
            canonical_query,
            "".join(f"{name}:{signed[name]}\n" for name in sorted(signed)),
            names,
            UNSIGNED_PAYLOAD,
        )
    )
    signature = _signature(creds, canonical, amz_date, day)
    scheme = "https" if creds.secure else "http"
    return f"{scheme}://{creds.endpoint}{path}?{canonical_query}&X-Amz-Signature={signature}"
