"""Unit-test helper: a file written through a file store and committed straight in the
catalog (no operations layer), for tests of the engine beneath it."""

from __future__ import annotations

from providers.catalog import NodeRecord, UserRecord
from providers.filestore import FileStore


def save(files: FileStore, user: UserRecord, name: str, data: bytes) -> NodeRecord:
    """Store `data` as `name` in `user`'s home; return the node."""
    content = files.writer().write_all([data])
    node, _ = files.catalog.contents.commit_file(
        user.home_id, name, user.id, content,
        mtime=0.0, content_type=None, path=name, author_id=None,
    )  # fmt: skip
    return node
