"""Versions and trash in their Nextcloud form, on the same versions and trash as
`/api/v1/versions`, `/api/v1/trash` and the command line (docs/nextcloud.md,
"Versions and trash"): `dav_doors["versions"]` serves
`/remote.php/dav/versions/<user>/versions/<fileid>/` (`providers.dav.versions`),
`dav_doors["trashbin"]` serves `/remote.php/dav/trashbin/<user>/trash/`
(`providers.dav.trashbin`). Restores (MOVE into `restore/`), purges and emptying
(DELETE) go through the operations layer (design invariant 11); the WsgiDAV apps
are `davserver.dav.history`'s. The router runs them after the account's login and
the request guard (XML body bound, no DTD: `NextcloudSite.signed_in`).
"""

from __future__ import annotations

from davserver.dav import app as dav_app
from davserver.dav import history
from davserver.http.environ import WSGIApplication
from providers.dav.trashbin import TrashbinProvider
from providers.dav.versions import VersionsProvider
from providers.operations import Operations

VERSIONS_PATH = "/remote.php/dav/versions"
TRASHBIN_PATH = "/remote.php/dav/trashbin"


def versions_door(ops: Operations, options: dav_app.DavOptions) -> WSGIApplication:
    """`dav_doors["versions"]`."""
    app: WSGIApplication = history.build(VersionsProvider(ops), VERSIONS_PATH, options)
    return app


def trashbin_door(ops: Operations, options: dav_app.DavOptions) -> WSGIApplication:
    """`dav_doors["trashbin"]`."""
    app: WSGIApplication = history.build(TrashbinProvider(ops), TRASHBIN_PATH, options)
    return app
