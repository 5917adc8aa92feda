"""The delta API (docs/api.md, "Sending only what changed: the delta protocol"):

GET  /api/v1/blocks/params          how the server cuts files, the protocol's limits
POST /api/v1/blocks/check           {"blocks": [{"sha256", "size"}]} -> {"missing",
                                    "upload": {sha256: {"method", "url", "headers",
                                    "auth"}}}
PUT  /api/v1/blocks/<sha256>        the block's bytes -> 201 {"sha256", "size"}
POST /api/v1/files/commit           {"path", "blocks", "size", "mtime"?, "if_match"?,
                                    "parents"?} -> 201 the file
GET  /api/v1/files/blocks?path=P    the file's blocks, each with a signed URL

The engine is `providers.operations.blocks.BlockTransfers`; block URLs on this server
are `davserver.api.block_urls`. Bodies have their own bounds: a check's list
(`CHECK_BODY`), a block (the chunker's maximum size), a commit's list
(`COMMIT_BODY`: about 100 000 blocks, a 100 GB file at the average block size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from davserver.api.app import ApiRequest, Reply, Route, route
from davserver.api.changes import query_params
from davserver.http.body import declared_length, read_body
from davserver.http.environ import base_url
from davserver.http.errors import HttpError
from providers.catalog import NodeRecord
from providers.errors import BadBlocks
from providers.operations import Actor
from providers.operations.blocks import BlockTransfers

CHECK_BODY = 1 << 20
COMMIT_BODY = 8 << 20
COMMIT_FIELDS = ("path", "blocks", "size", "mtime", "if_match", "parents")


def _engine(request: ApiRequest) -> BlockTransfers:
    engine = request.context.blocks
    if engine is None:
        raise HttpError(404, "no such endpoint")
    return engine


def params(request: ApiRequest) -> Reply:
    """`GET /blocks/params`."""
    return Reply(200, _engine(request).params())


def check(request: ApiRequest) -> Reply:
    """`POST /blocks/check` {"blocks": [{"sha256", "size"}]}: what to send, and how."""
    engine = _engine(request)
    body = request.json_object(CHECK_BODY)
    listed = body.get("blocks")
    if set(body) != {"blocks"} or not isinstance(listed, list):
        raise HttpError(400, 'the body is {"blocks": [{"sha256", "size"}, ...]}')
    blocks = [_block(item) for item in listed]
    result = engine.check(Actor(request.user), blocks)
    base = base_url(request.environ, request.context.public_url)
    upload: dict[str, Any] = {}
    for chunk_hash in result.missing:
        direct = result.direct.get(chunk_hash)
        if direct is not None:
            upload[chunk_hash] = {
                "method": "PUT",
                "url": direct.url,
                "headers": direct.headers,
                "auth": False,
            }
        else:
            url = f"{base}/api/v1/blocks/{chunk_hash}"
            upload[chunk_hash] = {"method": "PUT", "url": url, "headers": {}, "auth": True}
    return Reply(200, {"missing": result.missing, "upload": upload})


def put_block(request: ApiRequest) -> Reply:
    """`PUT /blocks/<sha256>`: one block through the server."""
    engine = _engine(request)
    if declared_length(request.environ) is None:
        raise HttpError(411, "Content-Length is required")
    data = read_body(request.environ, engine.max_size)
    chunk_hash = request.params["sha256"]
    size = engine.put_block(Actor(request.user), chunk_hash, data)
    return Reply(201, {"sha256": chunk_hash, "size": size})


@dataclass(frozen=True)
class CommitRequest:
    """The fields of a commit's body, checked."""

    path: str
    blocks: list[str]
    size: int
    mtime: float | None
    if_match: str | None
    parents: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> CommitRequest:
        """The fields of `body`; `HttpError` 400 naming the first bad one."""
        unknown = sorted(set(body) - set(COMMIT_FIELDS))
        if unknown:
            raise HttpError(400, f"unknown field {unknown[0]!r}")
        path, blocks, size = body.get("path"), body.get("blocks"), body.get("size")
        mtime, if_match = body.get("mtime"), body.get("if_match")
        parents = body.get("parents", False)
        if not isinstance(path, str) or not path:
            raise HttpError(400, "'path' must be a non-empty string")
        if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
            raise HttpError(400, "'blocks' must be a list of SHA-256 hex strings")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise HttpError(400, "'size' must be a number of bytes")
        if mtime is not None and (not isinstance(mtime, int | float) or isinstance(mtime, bool)):
            raise HttpError(400, "'mtime' must be seconds since the epoch")
        if if_match is not None and not isinstance(if_match, str):
            raise HttpError(400, "'if_match' must be an ETag")
        if not isinstance(parents, bool):
            raise HttpError(400, "'parents' must be true or false")
        when = None if mtime is None else float(mtime)
        return cls(path, blocks, size, when, if_match, parents)


def commit(request: ApiRequest) -> Reply:
    """`POST /files/commit`: the file as the list of its blocks."""
    engine = _engine(request)
    asked = CommitRequest.of(request.json_object(COMMIT_BODY))
    try:
        done = engine.commit(
            Actor(request.user),
            asked.path,
            asked.blocks,
            asked.size,
            mtime=asked.mtime,
            if_match=asked.if_match,
            parents=asked.parents,
        )
    except BadBlocks as e:
        if not e.missing:
            raise
        return Reply(400, {"error": str(e), "missing": list(e.missing)})  # what to send
    sums = done.checksums
    checksums = {"sha256": sums.sha256, "sha1": sums.sha1, "md5": sums.md5} if sums else {}
    return Reply(201, {**_file_json(asked.path, done.node), "checksums": checksums})


def file_blocks(request: ApiRequest) -> Reply:
    """`GET /files/blocks?path=P`: the file's blocks with their URLs."""
    engine = _engine(request)
    path = query_params(request, ("path",)).get("path")
    if not path:
        raise HttpError(400, "path is required")
    node, extents = engine.file_blocks(Actor(request.user), path)
    urls = request.context.block_urls
    base = base_url(request.environ, request.context.public_url)
    blocks = []
    direct = engine.direct_gets([extent.chunk_hash for extent in extents])
    for extent, url in zip(extents, direct, strict=True):
        if url is None and urls is not None:
            url = urls.url(base, extent.chunk_hash, engine.url_ttl)
        blocks.append(
            {"sha256": extent.chunk_hash, "offset": extent.offset, "size": extent.size, "url": url}
        )
    return Reply(200, {**_file_json(path, node), "blocks": blocks})


def _file_json(path: str, node: NodeRecord) -> dict[str, Any]:
    """What both file endpoints say of the file first."""
    return {"path": path, "size": node.size, "etag": f'"{node.digest}"', "mtime": node.mtime}


def _block(item: Any) -> tuple[str, int]:
    """One `{"sha256", "size"}` of a check's list."""
    if not isinstance(item, dict) or set(item) != {"sha256", "size"}:
        raise HttpError(400, 'each block is {"sha256", "size"}')
    chunk_hash, size = item["sha256"], item["size"]
    if not isinstance(chunk_hash, str) or not _is_int(size):
        raise HttpError(400, 'each block is {"sha256": hex string, "size": bytes}')
    return chunk_hash, size


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


ROUTES: tuple[Route, ...] = (
    route("GET", "/blocks/params", params),
    route("POST", "/blocks/check", check),
    route("PUT", "/blocks/{sha256}", put_block),
    route("POST", "/files/commit", commit),
    route("GET", "/files/blocks", file_blocks),
)
