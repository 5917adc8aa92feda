"""`zip/<path>`: a shared folder as one streamed zip (`davserver.links.zipstream`),
counted as a download of the link. Memory stays one block whatever the folder holds:
folders are listed as the archive reaches them, files read a block at a time."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

from davserver.http.environ import StartResponse
from davserver.links.files import BLOCK, FILE_CSP, content_disposition
from davserver.links.pages import DOWNLOAD, not_allowed, unavailable
from davserver.links.site import BASE_HEADERS, Action, ShareRequest, not_found
from davserver.links.zipstream import Member, zip_stream
from providers.catalog import Catalog, NodeRecord
from providers.errors import StorageError
from providers.filestore import FileStore, file_label

log = logging.getLogger(__name__)


def actions(catalog: Catalog, files: FileStore) -> dict[str, Action]:
    """The `zip` action, for links that may download."""
    return {"zip": Action(ZipAction(catalog, files), DOWNLOAD)}


class ZipAction:
    """The folder as a zip named after it, streamed; counted once per GET."""

    def __init__(self, catalog: Catalog, files: FileStore) -> None:
        self.catalog = catalog
        self.files = files

    def __call__(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if req.method not in ("GET", "HEAD"):
            return not_allowed(req, start_response)
        node = req.node
        if node is None or not node.is_dir:
            return not_found(start_response)
        headers = [
            ("Content-Type", "application/zip"),
            ("Content-Disposition", content_disposition("attachment", f"{node.name}.zip")),
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", FILE_CSP),
            *BASE_HEADERS,
        ]
        if req.method == "HEAD":
            start_response("200 OK", headers)
            return []
        try:
            children = self.catalog.tree.children(node.id)  # fails here, not mid-stream
        except StorageError as e:
            log.warning("share link %s: %s", req.link.id, e)
            return unavailable(req, start_response)
        if not self.catalog.links.count_download(req.link.id):
            return not_found(start_response)
        start_response("200 OK", headers)
        return _logged(zip_stream(self._members(node, children)), req.link.id)

    def _members(self, root: NodeRecord, children: list[NodeRecord]) -> Iterator[Member]:
        """The folder's subtree, depth first, each folder before what it holds (so
        empty folders are entries too); one `children` query per folder, as it goes."""
        pending: list[tuple[tuple[str, ...], NodeRecord, list[NodeRecord] | None]]
        pending = [((root.name,), root, children)]
        while pending:
            path, folder, members = pending.pop()
            yield Member(path, folder.mtime)
            if members is None:
                members = self.catalog.tree.children(folder.id)
            for child in members:
                if not child.is_dir:
                    read = functools.partial(self._blocks, child)
                    yield Member((*path, child.name), child.mtime, child.size, read)
            subfolders = [child for child in members if child.is_dir]
            pending.extend(((*path, sub.name), sub, None) for sub in reversed(subfolders))

    def _blocks(self, node: NodeRecord) -> Iterator[bytes]:
        reader = self.files.reader(node.content_id, node.size, label=file_label(node))
        try:
            while data := reader.read(BLOCK):
                yield data
        finally:
            reader.close()


def _logged(stream: Iterator[bytes], link_id: int) -> Iterator[bytes]:
    """`stream`, logging a failure that cuts a zip already under way."""
    try:
        yield from stream
    except StorageError as e:
        log.warning("share link %s: zip cut short: %s", link_id, e)
        raise
