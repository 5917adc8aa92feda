"""`SnapshotProvider`: the read-only WebDAV tree of a user's past (issue 16).

Mounted at `/snapshots/` (never inside `/dav/`: sync clients must not download
history), for the account that logged in:

- `/` lists one folder per UTC day with changes in the user's log (within the window
  the log still covers), named by the moment of that day's last change
  (`2026-12-01T17:42:10Z`);
- `/<moment>/...` is the user's home as it was at the end of that second
  (`providers.operations.snapshots`), for any moment in the window, listed or not;
  a malformed or out-of-window moment is not found (404). The virtual `Shared/` is
  not part of it: a snapshot is of the home only.

Files carry their size, mtime, ETag (content digest) and bytes of then; GET and its
Range/conditions are answered by the door like any file's. Every change is refused
(403) here, and again by the door before any method that writes.
"""

from __future__ import annotations

from typing import Any

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider, _DAVResource

from providers.catalog import NodeRecord, UserRecord
from providers.dav.errors import dav_errors
from providers.dav.files import StoredContent
from providers.dav.node import last_modified_of
from providers.dav.provider import request_user
from providers.names import split_path
from providers.operations import Operations
from providers.operations.snapshots import SnapshotState, moment_name, parse_moment

READ_ONLY = "snapshots are read-only"


class SnapshotProvider(DAVProvider):
    """See the module docstring."""

    def __init__(self, ops: Operations) -> None:
        super().__init__()
        self.ops = ops

    def is_readonly(self) -> bool:
        return True

    def user(self, environ: dict[str, Any]) -> UserRecord:
        """The account the request logged in as (looked up once per request)."""
        return request_user(self.ops, environ)

    @dav_errors
    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        names = split_path(path)
        user = self.user(environ)
        if not names:
            return SnapshotList(path, environ, self, user)
        cutoff = parse_moment(names[0])
        if cutoff is None or not self.ops.snapshots.available(cutoff):
            return None
        state = self.ops.snapshots.state(user.id, cutoff)
        node = state.locate(names[1:])
        if node is None:
            return None
        shown = "/" + "/".join([*names[:-1], node.name] if len(names) > 1 else names)
        if path.endswith("/") and node.is_dir:
            shown += "/"
        return self.resource(shown, state, node, environ)

    def resource(
        self, path: str, state: SnapshotState, node: NodeRecord, environ: dict[str, Any]
    ) -> _DAVResource:
        kind = SnapshotFolder if node.is_dir else SnapshotFile
        return kind(path, environ, self, state, node)


class _ReadOnly(_DAVResource):
    """What every snapshot resource refuses."""

    def require_write(self, *, removing: bool = False) -> None:
        raise DAVError(HTTP_FORBIDDEN, READ_ONLY)

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        raise DAVError(HTTP_FORBIDDEN, READ_ONLY)

    def set_last_modified(self, dest_path: str, time_stamp: Any, *, dry_run: bool) -> bool:
        raise DAVError(HTTP_FORBIDDEN, READ_ONLY)

    def handle_delete(self) -> bool:
        raise DAVError(HTTP_FORBIDDEN, READ_ONLY)

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        raise DAVError(HTTP_FORBIDDEN, READ_ONLY)

    def handle_move(self, dest_path: str) -> bool:
        raise DAVError(HTTP_FORBIDDEN, READ_ONLY)

    def delete(self) -> None:
        raise DAVError(HTTP_FORBIDDEN, READ_ONLY)


class _Members(DAVCollection):
    """A snapshot collection's member by name, found as any path is (by the provider)."""

    snapshots: SnapshotProvider

    def get_member(self, name: str) -> _DAVResource | None:
        found: _DAVResource | None = self.snapshots.get_resource_inst(
            util.join_uri(self.path, name), self.environ
        )
        return found


class SnapshotList(_ReadOnly, _Members):
    """`/snapshots/`: one folder per day with changes, named by its last change."""

    def __init__(
        self, path: str, environ: dict[str, Any], provider: SnapshotProvider, user: UserRecord
    ) -> None:
        super().__init__(path, environ)
        self.snapshots = provider
        self.user = user

    def get_display_name(self) -> str:
        return "Snapshots"

    def get_etag(self) -> str | None:
        return None

    def support_etag(self) -> bool:
        return False

    @dav_errors
    def get_member_names(self) -> list[str]:
        """The days' last changes (all after the log's floor: all in the window)."""
        return [moment_name(at) for at in self.snapshots.ops.snapshots.days(self.user.id)]


class SnapshotFolder(_ReadOnly, _Members):
    """A folder as it was (the home itself at `/<moment>/`)."""

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        provider: SnapshotProvider,
        state: SnapshotState,
        node: NodeRecord,
    ) -> None:
        super().__init__(path, environ)
        self.snapshots, self.state, self.node = provider, state, node

    def get_display_name(self) -> str:
        return self.name if self.node.parent_id is not None else moment_name(self.state.cutoff - 1)

    def get_creation_date(self) -> float:
        return self.node.created

    def get_last_modified(self) -> float:
        return last_modified_of(self.node)

    def get_etag(self) -> str:
        """Stable for the snapshot: the folder's id and the moment."""
        return f"{self.node.id}-s{int(self.state.cutoff)}"

    def support_etag(self) -> bool:
        return True

    @dav_errors
    def get_member_names(self) -> list[str]:
        return [node.name for node in self.state.members(self.node.id)]

    @dav_errors
    def get_member_list(self) -> list[_DAVResource]:
        return [
            self.snapshots.resource(
                util.join_uri(self.path, node.name), self.state, node, self.environ
            )
            for node in self.state.members(self.node.id)
        ]


class SnapshotFile(_ReadOnly, StoredContent, DAVNonCollection):
    """A file as it was: its content then."""

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        provider: SnapshotProvider,
        state: SnapshotState,
        node: NodeRecord,
    ) -> None:
        super().__init__(path, environ)
        self.snapshots, self.state, self.node = provider, state, node
        self.ops = provider.ops

    def get_creation_date(self) -> float:
        return self.node.created

    def get_last_modified(self) -> float:
        return last_modified_of(self.node)
