"""Share links for the integration tests: made through the server's operations layer,
addressed by their `/s/<token>` URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.servers import RunningServer


@dataclass
class Link:
    """A link's id and its page URL prefix `http://host/s/<token>` (no trailing '/')."""

    id: int
    url: str
    path: str  # /s/<token>

    @property
    def dav(self) -> str:
        """The link's WebDAV root, `http://host/s/<token>/dav/`."""
        return self.url + "/dav/"


def make_link(
    server: RunningServer, path: str, perm: str = "download", owner: str = "admin", **options: Any
) -> Link:
    """A new link to `owner`'s `path`, as `davserver share create` makes it."""
    names = [name for name in path.split("/") if name]
    record = server.services.ops.create_link(owner, names, perm, **options)
    link_path = server.services.signer.path(record.id)
    return Link(record.id, server.base + link_path, link_path)
