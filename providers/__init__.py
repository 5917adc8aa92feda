"""The storage engine under the WebDAV surface.

Start at `providers.dav` (the WsgiDAV provider, a package) and follow it down: `catalog` (SQL
metadata), `filestore` (streaming reads and writes of file content), `chunker`
(content-defined cutting), `blobstore` (where chunk bytes live). Nothing here imports
`davserver`.
"""
