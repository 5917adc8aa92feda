"""The Nextcloud door: the protocol the Nextcloud and ownCloud sync clients (desktop,
command line, mobile) and rclone's `nextcloud` vendor speak around WebDAV, served over
the same operations layer as `/dav/` (docs/nextcloud.md)."""
