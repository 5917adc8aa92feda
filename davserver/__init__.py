"""davserver: a WebDAV server over chunked, deduplicated storage.

Start at `davserver.app.build_app` (the composition root); `davserver.cli.main` is the
command line and `davserver.server` runs the WSGI app on cheroot.
"""

__version__ = "0.1.0"
