"""The tree of files the share-link page tests share a link to: `TREE` names every
folder (keys ending in '/') and file under `folder/` with its bytes and mtime, chosen to
exercise previews, icons, sorting and escaping (markup, quotes and non-ASCII in names,
an executable SVG, a file past the text preview). `build_tree(server)` puts it over
WebDAV as the admin with fixed mtimes (X-OC-Mtime), so sorting is deterministic;
`png_bytes()` is a valid PNG a browser can decode and size.
"""

from __future__ import annotations

import struct
import zlib
from urllib.parse import quote

from tests.support.servers import RunningServer

MARKUP = "<img src=x onerror=alert(1)>.txt"
QUOTED = "say \"hi\" & 'bye' <i>.md"
UNICODE = "résumé €.txt"
BIG = bytes(range(256)) * 1200  # 300 KiB: longer than the text preview
HELLO_PY = b"""def greet(name: str) -> str:
    \"\"\"Say hello (and show that <tags> & "quotes" stay text).\"\"\"
    return f"Hello, {name}!"


if __name__ == "__main__":
    print(greet("world"))
"""


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    """A valid RGB PNG (a gradient), so a browser can decode and size it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 6 % 256, y * 8 % 256, 160)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# name -> (bytes, mtime); folders are the keys ending in '/'
TREE: dict[str, tuple[bytes, int]] = {
    "folder/": (b"", 0),
    "folder/a.txt": (b"alpha\n", 1_600_000_300),
    "folder/big.bin": (BIG, 1_600_000_100),
    "folder/notes.log": (BIG, 1_600_000_200),
    "folder/photo.png": (png_bytes(), 1_600_000_400),
    "folder/doc.pdf": (b"%PDF-1.4\n%%EOF\n", 1_600_000_500),
    "folder/song.mp3": (b"ID3" + bytes(100), 1_600_000_600),
    "folder/clip.mp4": (bytes(64), 1_600_000_700),
    "folder/logo.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>', 1),
    "folder/page.html": (b"<script>alert(1)</script>", 1_600_000_800),
    "folder/hello.py": (HELLO_PY, 1_600_000_850),
    f"folder/{MARKUP}": (b"<script>alert(2)</script>", 1_600_000_900),
    f"folder/{QUOTED}": (b"# quoted & <b>\n", 1_600_001_000),
    f"folder/{UNICODE}": ("résumé".encode(), 1_600_001_100),
    "folder/sub/": (b"", 0),
    "folder/sub/deep.txt": (b"deep", 1_600_002_000),
    "folder/sub/empty/": (b"", 0),
    "folder/zeta/": (b"", 0),
}


def build_tree(server: RunningServer) -> None:
    """Put `TREE` into the admin's home over WebDAV, each file with its mtime."""
    client = server.client()
    for name, (data, mtime) in TREE.items():
        if name.endswith("/"):
            assert client.request("MKCOL", server.url(quote(name))).status_code == 201
        else:
            headers = {"X-OC-Mtime": str(mtime)}
            response = client.put(server.url(quote(name)), data=data, headers=headers)
            assert response.status_code == 201, name
