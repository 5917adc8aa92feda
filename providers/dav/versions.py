"""A file's old versions as Nextcloud serves them, at
`/remote.php/dav/versions/<user>/versions/<fileid>/` (layout: `providers.dav.history_tree`).

- `versions/` itself lists nothing (a client asks for one file id);
- `versions/<fileid>/` is the file with that `oc:fileid` as the caller sees it (its
  own, a file shared with it, with the rights of that share): a collection of the
  file's old versions, newest first, without its current content. Not found (404):
  an id the caller does not see, a folder, a trashed file;
- each version is named by its version id, a number that never changes and no other
  version of any file has (`/api/v1/versions`'s `id`; Nextcloud names versions by
  their mtime in seconds, which two writes in one second share). It has the version's
  size, mtime (`getlastmodified`), ETag (the file's ETag while that content was
  current), the file's media type, `nc:version-author` (the author's account name,
  when known); GET streams its bytes (Range, conditions, checksums as any file);
- `MOVE <version>` with `Destination: .../versions/<user>/restore/<any name>` makes it
  the file's current content (`Operations.restore_version`: write rights, locks,
  quota; the replaced content is kept as a version, one `modified` change): 201.
"""

from __future__ import annotations

from typing import Any

from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, _DAVResource

from providers.catalog import NodeRecord, VersionRecord
from providers.dav.errors import dav_error_context, dav_errors
from providers.dav.files import StoredContent
from providers.dav.history_tree import HistoryProvider, Refusing, nc_name
from providers.dav.node import DEST_CREATED, last_modified_of
from providers.errors import NotFound
from providers.operations import Located

VERSION_AUTHOR = nc_name("version-author")


class VersionsProvider(HistoryProvider):
    """See the module docstring."""

    collection = "versions"

    def below(self, path: str, environ: dict[str, Any], names: list[str]) -> _DAVResource | None:
        if not names:
            return VersionRoot(path, environ)
        if len(names) > 2 or not names[0].isdigit():
            return None
        actor = self.actor(environ)
        try:
            located = self.ops.locate_id(actor, int(names[0]))
        except NotFound:
            return None
        if located.node is None or located.node.is_dir:
            return None
        folder = VersionFolder(path, environ, self, located)
        return folder if len(names) == 1 else folder.get_member(names[1])


class VersionRoot(Refusing, DAVCollection):
    """`versions/`: no members listed (every file id would be one)."""

    def get_member_names(self) -> list[str]:
        return []


class VersionFolder(Refusing, DAVCollection):
    """`versions/<fileid>/`: the file's old versions (read when first asked for)."""

    def __init__(
        self, path: str, environ: dict[str, Any], provider: VersionsProvider, located: Located
    ) -> None:
        super().__init__(path, environ)
        self.history = provider
        self.located = located
        self._versions: list[VersionRecord] | None = None
        self._authors: dict[int, str] | None = None

    @property
    def file(self) -> NodeRecord:
        assert self.located.node is not None  # the provider makes one for files only
        return self.located.node

    def get_last_modified(self) -> float:
        return last_modified_of(self.file)

    @dav_errors
    def versions(self) -> list[VersionRecord]:
        if self._versions is None:
            ops = self.history.ops
            self._versions = ops.versions(self.history.actor(self.environ), self.located)
            authors = (v.author_id for v in self._versions)
            self._authors = ops.catalog.users.names_by_id(authors)
        return self._versions

    def get_member_names(self) -> list[str]:
        return [str(version.id) for version in self.versions()]

    def get_member_list(self) -> list[_DAVResource]:
        return [self._member(version) for version in self.versions()]

    def get_member(self, name: str) -> _DAVResource | None:
        found = [version for version in self.versions() if str(version.id) == name]
        return self._member(found[0]) if found else None

    def _member(self, version: VersionRecord) -> VersionFile:
        author = None
        if version.author_id is not None and self._authors is not None:
            author = self._authors.get(version.author_id)
        path = f"{self.path.rstrip('/')}/{version.id}"
        return VersionFile(path, self.environ, self, version, author)


class VersionFile(Refusing, StoredContent, DAVNonCollection):
    """One old version: the file as it was (see the module docstring)."""

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        folder: VersionFolder,
        version: VersionRecord,
        author: str | None,
    ) -> None:
        super().__init__(path, environ)
        self.history, self.ops = folder.history, folder.history.ops
        self.folder = folder
        self.version = version
        self.author = author
        mtime = version.mtime if version.mtime is not None else version.created
        self.node = folder.file._replace(
            content_id=version.content_id, size=version.size, digest=version.digest, mtime=mtime
        )

    def get_creation_date(self) -> float:
        return self.version.created

    def get_last_modified(self) -> float:
        return last_modified_of(self.node)

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = super().get_property_names(is_allprop=is_allprop)
        return [*names, VERSION_AUTHOR] if self.author is not None else names

    def get_property_value(self, name: str) -> Any:
        if name == VERSION_AUTHOR and self.author is not None:
            return self.author
        return super().get_property_value(name)

    def handle_move(self, dest_path: str) -> bool:
        """Restore: this version becomes the file's current content (201)."""
        self.history.require_restore(self.environ, dest_path)
        actor = self.history.actor(self.environ)
        with dav_error_context():
            self.history.ops.restore_version(actor, self.folder.located, self.version.id)
        self.environ[DEST_CREATED] = True
        return True

    def handle_delete(self) -> bool:
        raise DAVError(HTTP_FORBIDDEN, "versions are kept by retention; restore one instead")
