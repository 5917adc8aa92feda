"""SQL tables of the catalog (sqlmodel). Only `providers.catalog` queries them.

The tree is an edge table: a node names its parent, so MOVE of a whole tree is one
UPDATE of one row. A file node points at its current `Content` (an immutable, ordered
list of chunks with offsets, shared by every version and copy that has the same
bytes), and `Version` rows record which content a node had when. Chunk rows follow a
small state machine (see `docs/gc.md`): `uploading` -> `stored` -> `deleting` -> gone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from providers.names import name_key

CHUNK_UPLOADING = "uploading"
CHUNK_STORED = "stored"
CHUNK_DELETING = "deleting"


def _big(**kwargs: Any) -> Column[int]:
    """A BIGINT column: sizes and offsets pass 2**31 (files over 2 GiB)."""
    return Column(BigInteger, **kwargs)


# Paths compared by byte order on both databases: a prefix range ("every root under
# /a/b/") is only right in code point order, and PostgreSQL's default collation of a
# locale sorts '/' by other rules.
PATH_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


class Setting(SQLModel, table=True):
    """Key/value settings fixed at first start (chunker parameters, schema version)."""

    key: str = Field(primary_key=True, max_length=64)
    value: str


class Lease(SQLModel, table=True):
    """A named lock every process on the catalog sees (e.g. `gc`: one GC run at a time).

    `holder` identifies the process; the lease is free once the row is gone or
    `expires_at` (epoch seconds) has passed, so a crashed holder blocks no one for long.
    """

    name: str = Field(primary_key=True, max_length=32)
    holder: str = Field(max_length=255)
    expires_at: float


class User(SQLModel, table=True):
    """An account; `home_id` is the root node of the user's tree.

    `password_hash` (argon2id) is the secret every login method trusts first.
    `digest_ha1` is MD5(name:realm:password) for HTTP Digest in `digest_realm`: a
    password equivalent for that realm, NULL when Digest is off for the account.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    password_hash: str
    digest_realm: str | None = Field(default=None, max_length=128)
    digest_ha1: str | None = Field(default=None, max_length=64)
    home_id: int | None = Field(default=None)
    # the root of the user's trash: a node outside the home, made at first delete
    trash_id: int | None = Field(default=None)
    quota_bytes: int | None = Field(default=None, sa_column=_big(nullable=True))
    used_bytes: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    # bytes only old versions keep (chunks no file or trash item of the user names):
    # an upper bound kept as files are overwritten, made exact when history shrinks
    # (`providers.catalog.history_usage`); charged to the quota with `used_bytes`
    history_bytes: int = Field(
        default=0, sa_column=_big(nullable=False, default=0, server_default="0")
    )
    created_at: float


class Group(SQLModel, table=True):
    """A named set of users (grants may name a group)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    created_at: float


class Membership(SQLModel, table=True):
    """User `user_id` belongs to group `group_id`."""

    group_id: int = Field(foreign_key="group.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True, index=True)


class AppPassword(SQLModel, table=True):
    """A per-device password of a user (Basic auth only), shown once at creation.

    `key_id` is the public first group of the generated password: a login looks the
    row up by (user, key_id) and runs argon2id once against `hash`. Revoked rows stay
    (with `revoked_at`) so the list shows what was revoked and when.
    """

    __table_args__ = (UniqueConstraint("user_id", "key_id", name="uq_app_password_key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    key_id: str = Field(max_length=16)
    label: str = Field(default="", max_length=128)
    hash: str
    created_at: float
    last_used_at: float | None = Field(default=None)
    revoked_at: float | None = Field(default=None)


def _name_key_default(context: Any) -> str:
    """Column default of `Node.name_key`: the key of the inserted `name`, so a row
    created without one (a user's home) still gets it."""
    return name_key(context.get_current_parameters()["name"])


class Node(SQLModel, table=True):
    """A file or directory. `name` is the client's spelling; `name_key` (its NFC form,
    `providers.names.name_key`) is what lookups compare, and (parent_id, name_key) is
    unique, so two spellings of one name cannot coexist in a folder."""

    __table_args__ = (UniqueConstraint("parent_id", "name_key", name="uq_node_parent_name_key"),)

    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="node.id", index=True)
    name: str = Field(max_length=1024)
    # NFC can lengthen a name, at most threefold: 255 characters fit in 1024. Left
    # unset (None), it is filled in at INSERT by `_name_key_default`.
    name_key: str = Field(
        default=None,
        max_length=1024,
        sa_column_kwargs={"default": _name_key_default, "nullable": False},
    )
    kind: str = Field(max_length=8)
    owner_id: int = Field(foreign_key="user.id", index=True)
    content_id: int | None = Field(default=None, foreign_key="content.id", index=True)
    size: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    mtime: float
    created: float
    content_type: str | None = Field(default=None, max_length=255)
    # the seq of the last change at or below this node (`rows.bump_revs`): a folder's
    # ETag is made of its id and this, so it moves whenever anything inside it changes
    rev: int = Field(default=0, sa_column=_big(nullable=False, default=0, server_default="0"))
    # set on the root of a trashed subtree (re-parented under its owner's trash root,
    # renamed to its id): when, by whom, and the path in the home it is restored to
    trashed_at: float | None = Field(default=None)
    trashed_by: int | None = Field(default=None)
    trash_path: str | None = Field(default=None)


class Grant(SQLModel, table=True):
    """Node `node_id` and everything below it are shared with user `user_id` or group
    `group_id` (exactly one is set), read-only (`r`) or read-write (`rw`). The sharing
    owner is the node's owner; one row per (node, grantee)."""

    id: int | None = Field(default=None, primary_key=True)
    node_id: int = Field(foreign_key="node.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    group_id: int | None = Field(default=None, foreign_key="group.id", index=True)
    perm: str = Field(max_length=2)
    created_at: float


class ShareLink(SQLModel, table=True):
    """A public link to node `node_id` (and everything below it), made by its owner.

    `perm`: `view` (pages and previews), `download` (also files and zips), `upload`
    (a drop box: upload only, nothing listed) or `edit` (all of it, plus rename, delete
    and new folders). The link is dead once `revoked_at` is set, `expires_at` (epoch
    seconds) has passed or `downloads` reached `max_downloads`. `password_hash` is
    argon2id, NULL for a link without a password.
    """

    id: int | None = Field(default=None, primary_key=True)
    node_id: int = Field(foreign_key="node.id", index=True)
    created_by: int = Field(foreign_key="user.id", index=True)
    perm: str = Field(max_length=8)
    password_hash: str | None = Field(default=None)
    expires_at: float | None = Field(default=None)
    max_downloads: int | None = Field(default=None)
    downloads: int = Field(default=0)
    revoked_at: float | None = Field(default=None)
    created_at: float


class Counter(SQLModel, table=True):
    """A named number every process reads, e.g. `acl`: bumped in the transaction of
    every change to grants or group memberships, so caches of access rights in any
    process know when to reload."""

    name: str = Field(primary_key=True, max_length=32)
    value: int = Field(default=0, sa_column=_big(nullable=False, default=0))


class Content(SQLModel, table=True):
    """Immutable file content: its digest (`providers.filestore.content_digest`), extents.

    `sha1`, `md5` and `sha256` are the whole content's checksums (lowercase hex), the
    ones clients verify (`docs/checksums.md`); computed while the content is written,
    NULL for contents written before they were (filled by `davserver checksums` or by
    the first full GET). Not `digest`: that one is derived from the chunk hashes.
    """

    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(sa_column=_big(nullable=False))
    digest: str = Field(max_length=64, index=True)
    created_at: float
    sha1: str | None = Field(default=None, max_length=40)
    md5: str | None = Field(default=None, max_length=32)
    sha256: str | None = Field(default=None, max_length=64)


class Extent(SQLModel, table=True):
    """The `seq`-th piece of a content: `size` bytes at `offset`, stored as one chunk."""

    __table_args__ = (Index("ix_extent_content_offset", "content_id", "offset"),)

    content_id: int = Field(foreign_key="content.id", primary_key=True)
    seq: int = Field(primary_key=True)
    offset: int = Field(sa_column=_big(nullable=False))
    size: int
    chunk_hash: str = Field(max_length=64, index=True)


class Chunk(SQLModel, table=True):
    """One stored chunk object, shared by every content that names it. `codec`,
    `stored_size` and `key_id` say how its object is stored (`providers.codec`):
    "raw" (the plaintext, the only form before 0007; `stored_size` NULL means `size`),
    "zstd" or "sealed" (encrypted under master key `key_id`)."""

    hash: str = Field(primary_key=True, max_length=64)
    size: int
    state: str = Field(max_length=12, index=True)
    touched_at: float = Field(index=True)
    created_at: float
    codec: str = Field(default="raw", max_length=8, sa_column_kwargs={"server_default": "raw"})
    stored_size: int | None = Field(default=None)
    key_id: str | None = Field(default=None, max_length=16)


class ChunkBody(SQLModel, table=True):
    """A small chunk kept in the catalog instead of an object (`inline_max_bytes`,
    design invariant 27): `data` is its at-rest form, in the codec `codec` (under
    master key `key_id` when sealed), exactly what its object would hold. A chunk with
    a body is read from it; its row's own locator columns then name no object. Written
    by the claim that created or re-claimed the row, removed with the row (ON DELETE
    CASCADE), changed only by `reseal`."""

    __tablename__ = "chunk_body"

    hash: str = Field(
        primary_key=True,
        max_length=64,
        foreign_key="chunk.hash",
        ondelete="CASCADE",
    )
    codec: str = Field(max_length=8)
    key_id: str | None = Field(default=None, max_length=16)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Version(SQLModel, table=True):
    """A node's content at one point in time, one row per write (every content a
    file had and retention keeps); the newest is the node's current one. `mtime` is
    the file's mtime with that content (NULL for rows written before 0004)."""

    id: int | None = Field(default=None, primary_key=True)
    node_id: int = Field(foreign_key="node.id", index=True)
    content_id: int = Field(foreign_key="content.id", index=True)
    size: int = Field(sa_column=_big(nullable=False))
    created_at: float
    author_id: int | None = Field(default=None)
    mtime: float | None = Field(default=None)


class Prop(SQLModel, table=True):
    """A dead property (PROPPATCH) of a node; `value` is the XML element as text."""

    node_id: int = Field(foreign_key="node.id", primary_key=True)
    name: str = Field(primary_key=True, max_length=512)
    value: str


class Change(SQLModel, table=True):
    """The change log, one row per mutation (design invariant 5) in commit order:
    `seq` is the feed's position (invariant 15). A row is about node `node_id` of
    `owner_id`'s tree at `path` (their home's path); `kind` is the feed's op
    (`providers.catalog.changes`). The entry fields tell what was true at the commit:
    `old_path` (in `old_owner_id`'s tree when the move crossed owners) for a move,
    `node_kind`, `size`, `etag`, `sha256` (when known) and `mtime`. `user_id` is set on
    the rows for one user only (a grant or revoke: that grantee; and what they newly
    see below a shared node), `via_id` then names that shared node."""

    __table_args__ = (
        Index("ix_change_owner_seq", "owner_id", "seq"),
        Index("ix_change_user_seq", "user_id", "seq"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    owner_id: int
    node_id: int
    kind: str = Field(max_length=16)
    path: str
    at: float
    user_id: int | None = Field(default=None)
    via_id: int | None = Field(default=None)
    old_owner_id: int | None = Field(default=None)
    old_path: str | None = Field(default=None)
    node_kind: str | None = Field(default=None, max_length=8)
    size: int | None = Field(default=None, sa_column=_big(nullable=True))
    etag: str | None = Field(default=None, max_length=64)
    sha256: str | None = Field(default=None, max_length=64)
    mtime: float | None = Field(default=None)


class Upload(SQLModel, table=True):
    """A resumable upload (TUS) into folder `folder_id` (and the sub-folders
    `folder_path` below it, '/'-separated, created at the commit), made through share
    link `link_id` or by account `user_id` (exactly one of the two is set).

    `offset` bytes of `length` are stored so far, as the `UploadExtent` rows below the
    upload: those rows are what keeps the chunks alive for GC until the commit. A NULL
    `length` is deferred (TUS `Upload-Defer-Length`): a later PATCH declares it. A
    `partial` upload (TUS concatenation) never commits a file: a final upload joins
    the extents of its finished partials. `mtime` and `checksum` (the whole file's,
    "<algorithm> <hex>", checked at the commit) come from the creation's metadata. Once
    committed, the extents are gone and the row stays as a receipt (`finished_at`,
    `finished_name`: the name given after an automatic rename) until it expires like
    an abandoned upload, `touched_at` + the uploads' time to live. `link_id`,
    `user_id` and `folder_id` are plain columns, not foreign keys: deleting a link, a
    user or a folder must not be blocked by an upload to it (that upload just fails
    and expires).

    A Nextcloud chunked upload is a folder row and one row per chunk: the folder row
    has `transfer` (the client's name for the upload folder, unique per account while
    it lives) and expires like any upload; a chunk row has `parent_id` (its folder
    row's id), `name` (the chunk's name), is finished at its length, and lives and dies
    with its folder (`providers.catalog.upload_folders`). TUS never sees either.
    """

    id: str = Field(primary_key=True, max_length=64)
    link_id: int | None = Field(default=None, index=True)
    user_id: int | None = Field(default=None, index=True)
    folder_id: int
    folder_path: str = Field(default="")
    name: str = Field(max_length=1024)
    length: int | None = Field(default=None, sa_column=_big(nullable=True))
    offset: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    created_at: float
    touched_at: float = Field(index=True)
    finished_at: float | None = Field(default=None)
    finished_name: str | None = Field(default=None, max_length=1024)
    mtime: float | None = Field(default=None)
    checksum: str | None = Field(default=None, max_length=200)
    partial: bool = Field(default=False)
    transfer: str | None = Field(default=None, max_length=255)
    parent_id: str | None = Field(default=None, index=True, max_length=64)


class UploadExtent(SQLModel, table=True):
    """`size` bytes at `offset` of upload `upload_id` (offsets count from the upload's
    start), stored as chunk `chunk_hash`; GC counts these chunks as referenced."""

    upload_id: str = Field(foreign_key="upload.id", primary_key=True, max_length=64)
    offset: int = Field(sa_column=_big(primary_key=True, nullable=False))
    size: int
    chunk_hash: str = Field(max_length=64, index=True)


class StagedBlock(SQLModel, table=True):
    """A block (one chunk) that account `user_id` sent through the delta API and no
    file of theirs names yet: received and hash-checked by the server (`token` NULL),
    or announced for a direct PUT to the object store whose presigned request signs
    `x-amz-meta-davserver-stage: <token>` (it counts as sent once the stored object
    carries that token). GC counts staged chunks as referenced (like upload extents)
    until the row expires, `staged_at` + the uploads' time to live. Whether a block is
    already present for a caller is decided from these rows and what the caller can
    read, never from the chunk table alone (no confirmation of another user's file).
    """

    user_id: int = Field(primary_key=True)
    chunk_hash: str = Field(primary_key=True, max_length=64, index=True)
    size: int
    token: str | None = Field(default=None, max_length=64)
    staged_at: float = Field(index=True)


class DavLock(SQLModel, table=True):
    """A WebDAV lock (`providers.dav.lock_storage`), seen by every process on the
    catalog: `root` the lock's normalised path (no trailing '/', except "/"),
    `expires` epoch seconds, `lock` WsgiDAV's lock dictionary as JSON text. A row past
    `expires` is a lock that no longer exists; readers ignore it and remove it."""

    __tablename__ = "dav_lock"

    token: str = Field(primary_key=True, max_length=100)
    root: str = Field(sa_column=Column(PATH_TEXT, nullable=False, index=True))
    expires: float
    lock: str = Field(sa_column=Column(Text, nullable=False))


class Ephemeral(SQLModel, table=True):
    """A short-lived value (a Login Flow v2 flow, `providers.catalog.ephemeral`), gone
    once `expires` (epoch seconds) has passed; keys carry their user's prefix."""

    key: str = Field(primary_key=True, max_length=200)
    value: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    expires: float = Field(index=True)


class ExpiringCount(SQLModel, table=True):
    """A count that lives until `expires` (epoch seconds), then starts again from 0:
    failed logins per subject (`providers.catalog.ephemeral.ExpiringCounters`)."""

    __tablename__ = "expiring_count"

    key: str = Field(primary_key=True, max_length=200)
    count: int
    expires: float = Field(index=True)
