"""The architecture, read from the source (design invariant 11, docs/architecture.md):
dependencies point down, each third-party library lives where the table says, and
only the operations layer changes the tree."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# library: the modules (path prefixes) allowed to import it
LIBRARIES = {
    "wsgidav": ("providers/dav/", "davserver/dav/", "davserver/auth/domain.py"),
    "lxml": ("providers/dav/", "davserver/dav/"),
    "cheroot": ("davserver/server.py", "davserver/http_gate.py"),
    "werkzeug": ("davserver/http/headers.py",),
    "jinja2": ("davserver/web/render.py",),
    "itsdangerous": ("davserver/links/signer.py",),
    "argon2": ("davserver/auth/passwords.py",),
    "redis": ("providers/redis_store.py",),
    "minio": ("providers/blobstore/s3.py",),
    "urllib3": ("providers/blobstore/s3.py", "davserver/cli/transfer_http.py"),
    "sqlmodel": ("providers/catalog/",),
    "sqlalchemy": ("providers/catalog/",),
    "alembic": ("providers/catalog/migrate.py", "providers/catalog/migrations/"),
    "psycopg": (),
    "pyfastcdc": ("providers/chunker.py",),
    "tqdm": ("davserver/cli/",),
    "prometheus_client": ("davserver/metrics.py",),
    "websockets": ("davserver/nextcloud/notify_push.py",),
    "zstandard": ("providers/codec/compress.py",),
    "cryptography": ("providers/codec/seal.py",),
}
# catalog parts and the calls on them that change what users see: only the operations
# layer (and the catalog itself) may make them
MUTATORS = {
    "tree": {"mkdir", "delete", "move", "copy", "set_prop", "set_mtime"},
    "contents": {"commit_file"},
    "uploads": {"create", "append", "declare_length", "retiring", "record_name", "cancel"},
    "upload_folders": {"open", "add_chunk", "drop_chunk", "retiring", "cancel"},
    "grants": {"grant", "revoke", "revoke_by_id"},
    "links": {"create", "revoke"},
}
MAY_MUTATE = ("providers/operations/", "providers/catalog/")


def modules() -> Iterator[tuple[str, ast.Module]]:
    for package in ("davserver", "providers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield rel, ast.parse(path.read_text(encoding="utf-8"), rel)


def imported(tree: ast.Module) -> Iterator[str]:
    """Top-level names of every module `tree` imports (relative imports are ours)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0]


def test_providers_never_import_davserver() -> None:
    wrong = [
        rel
        for rel, tree in modules()
        if rel.startswith("providers/") and "davserver" in set(imported(tree))
    ]
    assert wrong == []


def test_each_library_lives_where_the_table_says() -> None:
    misplaced = [
        (rel, name)
        for rel, tree in modules()
        for name in set(imported(tree))
        if name in LIBRARIES and not rel.startswith(LIBRARIES[name])
    ]
    assert misplaced == []


def mutations(tree: ast.Module) -> Iterator[str]:
    """`part.call` for each call like `x.catalog.tree.move(...)` in `tree`."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        part = node.func.value
        if not (isinstance(part, ast.Attribute) and _is_catalog(part.value)):
            continue
        if node.func.attr in MUTATORS.get(part.attr, ()):
            yield f"{part.attr}.{node.func.attr}"


def _is_catalog(node: ast.expr) -> bool:
    """`catalog` or `anything.catalog`."""
    if isinstance(node, ast.Name):
        return node.id == "catalog"
    return isinstance(node, ast.Attribute) and node.attr == "catalog"


def test_only_the_operations_layer_changes_the_tree() -> None:
    found = [
        (rel, call)
        for rel, tree in modules()
        if not rel.startswith(MAY_MUTATE)
        for call in mutations(tree)
    ]
    assert found == []


def test_the_checks_above_can_fail() -> None:
    """Each rule finds what it looks for in a sample that breaks it."""
    sample = ast.parse(
        "import redis\nfrom davserver.app import x\nself.catalog.tree.move(1)\n"
        "catalog.links.create()\nself.uploads.create()\ncatalog.links.count_download(1)\n"
    )
    assert set(imported(sample)) == {"redis", "davserver"}
    assert list(mutations(sample)) == ["tree.move", "links.create"]
