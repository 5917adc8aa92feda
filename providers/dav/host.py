"""What WebDAV resources need from the provider that made them (`ResourceHost`).

Resources never import the provider class (it imports them): they see it through this
protocol, and `providers.dav.provider.DavProvider` implements it.
"""

from __future__ import annotations

from typing import Any, Protocol

from wsgidav.dav_provider import _DAVResource

from providers.operations import Actor, Located, Operations, View


class ResourceHost(Protocol):
    """See the module docstring. `ops` changes files; `lock_manager` is WsgiDAV's
    (None until an app sets it)."""

    ops: Operations
    lock_manager: Any

    def actor(self, environ: dict[str, Any]) -> Actor:
        """Who the request acts as: its account or its share link, with the lock
        tokens it submitted."""

    def view(self, environ: dict[str, Any]) -> View:
        """How the request's actor names things."""

    def free_bytes(self) -> int | None:
        """Space left in the blob store for owners without a quota (None: unknown)."""

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        """The resource at `path` of the request's view, or None."""

    def resource(
        self,
        path: str,
        located: Located,
        environ: dict[str, Any],
        props: dict[str, str] | None = None,
    ) -> _DAVResource:
        """The resource for a located node (`props`: its dead properties if loaded)."""
