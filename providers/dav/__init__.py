"""WebDAV resources over the operations layer, for WsgiDAV (`DavProvider`).

Each request is served in its actor's view (an account's home and `Shared/`, or a
share link's folder); reads go to the catalog and the filestore, every change to the
operations layer (`providers.operations`), which checks rights, locks, quota and names.
Engine errors become `DAVError`s only in `providers.dav.errors`. COPY, MOVE and DELETE
are handled whole (`handle_*` return True). Dead properties live in the catalog and are
loaded for a whole listing in one query, so a PROPFIND costs a constant number of
queries whatever the folder size. Folder ETags move with anything below them
(`Node.rev`); `oc:fileid` and `oc:id` are live properties (the node id, kept by
MOVE). `providers.dav.locks` holds WsgiDAV's lock manager, its storages and the lock
view the operations layer checks.
"""

from providers.dav.errors import dav_errors
from providers.dav.files import (
    ANNOUNCED_CHECKSUMS,
    STORED_CHECKSUMS,
    FileResource,
    client_mtime,
    content_type_of,
)
from providers.dav.folders import FolderResource
from providers.dav.node import DEST, DEST_CREATED, etag_of, last_modified_of, oc_ids
from providers.dav.oc_props import (
    OC_CHECKSUMS,
    OC_FILEID,
    OC_ID,
    OC_NS,
    OC_PERMISSIONS,
    OC_SIZE,
    oc_permissions,
)
from providers.dav.provider import LINK, USER, DavProvider, lookups_kept

__all__ = [
    "ANNOUNCED_CHECKSUMS",
    "DEST_CREATED",
    "DEST",
    "LINK",
    "OC_CHECKSUMS",
    "OC_FILEID",
    "OC_ID",
    "OC_NS",
    "OC_PERMISSIONS",
    "OC_SIZE",
    "STORED_CHECKSUMS",
    "USER",
    "DavProvider",
    "FileResource",
    "FolderResource",
    "client_mtime",
    "content_type_of",
    "etag_of",
    "dav_errors",
    "last_modified_of",
    "lookups_kept",
    "oc_ids",
    "oc_permissions",
]
