"""Checksum headers, both ways: the one module that writes and reads them.

Sent (`checksum_headers`, `put_headers`), from a content's stored checksums
(`providers.checksums.Checksums`, hex):

- `OC-Checksum: SHA1:<hex>` on GET, HEAD and PUT answers: ownCloud's and Nextcloud's
  header (their clients parse one `TYPE:hex` pair, so it names one algorithm, SHA-1,
  the one their `checksums.supportedTypes` lists first). All three are in the
  `oc:checksums` property (`providers.dav.files`, `Checksums.oc_value`).
- RFC 9530 `Repr-Digest: sha-256=:<base64>:` (a structured-field byte sequence) on
  GET/HEAD answers, 200 and 206 alike: it is the digest of the whole file whatever
  part is sent; and on PUT answers, of what was stored.
- RFC 9530 `Content-Digest` on a 200 only: it is the digest of the bytes of this
  message, so a 206 (a part, or multipart framing) would need a digest of its own
  bytes, which is never stored; it is left out there rather than computed per answer.

Read (`announced_checksums`): what a PUT says its body is, for the operations layer to
verify before the commit (`ContentWrites.commit`): `OC-Checksum` (`SHA1:`, `MD5:`,
`SHA256:`, several separated by spaces), RFC 9530 `Content-Digest` and `Repr-Digest`
(`sha-256`, `sha-512`; equal for a PUT, since a body with a `Content-Encoding` is refused),
RFC 3230 `Digest` (`SHA`, `SHA-256`, `SHA-512`, `MD5`, base64) and `Content-MD5`.
Algorithms not in that list (`ADLER32`, `crc32c`, `unixsum`...) are ignored, as the RFCs
ask; a known one with a malformed value is `MalformedChecksum` (400), since ignoring
it would store bytes the client asked to have checked.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from providers.checksums import Checksums

Headers = list[tuple[str, str]]

# header spelling -> hashlib name, per header family
_OC = {"sha1": "sha1", "md5": "md5", "sha256": "sha256", "sha-256": "sha256"}
_RFC9530 = {"sha-256": "sha256", "sha-512": "sha512"}
_RFC3230 = {"sha": "sha1", "sha-256": "sha256", "sha-512": "sha512", "md5": "md5"}
_HEX_LENGTH = {"sha1": 40, "md5": 32, "sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")
_BYTE_SEQUENCE = re.compile(r":([A-Za-z0-9+/=]*):")


class MalformedChecksum(ValueError):
    """A checksum header names an algorithm we know with a value that cannot be one."""


def checksum_headers(checksums: Checksums | None, *, partial: bool) -> Headers:
    """The checksum headers of a GET/HEAD answer (`partial`: a 206)."""
    if checksums is None:
        return []
    digest = _structured("sha-256", checksums.sha256)
    headers = [("OC-Checksum", f"SHA1:{checksums.sha1}"), ("Repr-Digest", digest)]
    if not partial:
        headers.append(("Content-Digest", digest))
    return headers


def put_headers(checksums: Checksums | None) -> Headers:
    """The checksum headers of a PUT's answer: what was stored."""
    if checksums is None:
        return []
    return [
        ("OC-Checksum", f"SHA1:{checksums.sha1}"),
        ("Repr-Digest", _structured("sha-256", checksums.sha256)),
    ]


def announced_checksums(environ: Mapping[str, Any]) -> dict[str, str]:
    """hashlib name -> lowercase hex of every known checksum the request announces
    (module docstring); two headers announcing different values for one algorithm are
    `MalformedChecksum`. `MalformedChecksum` for a malformed known value."""
    found: dict[str, str] = {}
    pairs = [
        *_oc_pairs(environ.get("HTTP_OC_CHECKSUM", "")),
        *_rfc9530_pairs(environ.get("HTTP_CONTENT_DIGEST", "")),
        *_rfc9530_pairs(environ.get("HTTP_REPR_DIGEST", "")),
        *_rfc3230_pairs(environ.get("HTTP_DIGEST", "")),
    ]
    if environ.get("HTTP_CONTENT_MD5"):
        pairs.append(("md5", _from_base64(environ["HTTP_CONTENT_MD5"].strip(), "md5")))
    for algorithm, value in pairs:
        if found.setdefault(algorithm, value) != value:
            raise MalformedChecksum(f"two different {algorithm.upper()} checksums announced")
    return found


def _oc_pairs(header: str) -> list[tuple[str, str]]:
    """`SHA1:<hex> MD5:<hex>` -> [(sha1, hex), (md5, hex)]."""
    pairs = []
    for item in header.split():
        kind, _, value = item.partition(":")
        algorithm = _OC.get(kind.lower())
        if algorithm is not None:
            pairs.append((algorithm, _hex(value, algorithm)))
    return pairs


def _rfc9530_pairs(header: str) -> list[tuple[str, str]]:
    """A structured-field dictionary `sha-256=:<b64>:, sha-512=:<b64>:` (parameters
    after `;` are ignored) -> [(sha256, hex), ...]."""
    pairs = []
    for member in header.split(","):
        key, _, rest = member.strip().partition("=")
        algorithm = _RFC9530.get(key.strip().lower())
        if algorithm is None:
            continue
        match = _BYTE_SEQUENCE.fullmatch(rest.split(";", 1)[0].strip())
        if match is None:
            raise MalformedChecksum(f"{key.strip()} is not a byte sequence (:base64:)")
        pairs.append((algorithm, _from_base64(match.group(1), algorithm)))
    return pairs


def _rfc3230_pairs(header: str) -> list[tuple[str, str]]:
    """`SHA-256=<b64>, MD5=<b64>` -> [(sha256, hex), (md5, hex)]."""
    pairs = []
    for member in header.split(","):
        key, _, value = member.strip().partition("=")
        algorithm = _RFC3230.get(key.strip().lower())
        if algorithm is not None:
            pairs.append((algorithm, _from_base64(value.strip(), algorithm)))
    return pairs


def _hex(value: str, algorithm: str) -> str:
    if len(value) != _HEX_LENGTH[algorithm] or not _HEX.fullmatch(value):
        raise MalformedChecksum(f"not a {algorithm.upper()} checksum: {value[:140]!r}")
    return value.lower()


def _from_base64(value: str, algorithm: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise MalformedChecksum(f"not base64: {value[:100]!r}") from e
    return _hex(raw.hex(), algorithm)


def _structured(key: str, hex_digest: str) -> str:
    """`key=:<base64>:`, an RFC 8941 dictionary member with a byte sequence."""
    return f"{key}=:{base64.b64encode(bytes.fromhex(hex_digest)).decode()}:"
