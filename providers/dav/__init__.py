"""The WsgiDAV provider: WebDAV resources over the catalog and the filestore.

Each authenticated user sees their own home (`environ["wsgidav.auth.user_name"]`).
Engine errors become `DAVError`s only in `providers.dav.errors`.
COPY, MOVE and DELETE are handled whole (`handle_*` return True), each as one catalog
transaction; locks of removed or moved paths are dropped here. Dead properties live in
the catalog and are loaded for a whole listing in one query, so a PROPFIND costs a
constant number of queries whatever the folder size.
"""

from providers.dav.errors import dav_errors
from providers.dav.files import FileResource, content_type_of
from providers.dav.folders import FolderResource
from providers.dav.node import DEST_CREATED, last_modified_of
from providers.dav.provider import HomeProvider

__all__ = [
    "DEST_CREATED",
    "FileResource",
    "FolderResource",
    "HomeProvider",
    "content_type_of",
    "dav_errors",
    "last_modified_of",
]
