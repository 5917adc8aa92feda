"""Plain, immutable records the catalog hands out (never live ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from providers.checksums import Checksums

FILE = "file"
DIR = "dir"
PERM_READ = "r"  # a grant: read only
PERM_WRITE = "rw"  # a grant: read and write
LINK_PERMS = ("view", "download", "upload", "edit")  # what a share link may do
DEFAULT_LINK_PERM = "download"


class NodeRecord(NamedTuple):
    """A file or directory as stored; `digest` is None for directories. A named tuple,
    not a frozen dataclass: listings build one per member, at a quarter of the cost."""

    id: int
    parent_id: int | None
    name: str
    kind: str
    owner_id: int
    size: int
    mtime: float
    created: float
    content_id: int | None
    digest: str | None
    content_type: str | None
    rev: int = 0  # the seq of the last change at or below it (folder ETags)

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR


class ChangeRecord(NamedTuple):
    """A row of the change log (see `providers.catalog.schema.Change`)."""

    seq: int
    owner_id: int
    node_id: int
    kind: str
    path: str
    at: float
    user_id: int | None
    via_id: int | None
    old_owner_id: int | None
    old_path: str | None
    node_kind: str | None
    size: int | None
    etag: str | None
    sha256: str | None
    mtime: float | None


@dataclass(frozen=True)
class UserRecord:
    """An account; `quota_bytes` None means unlimited."""

    id: int
    name: str
    password_hash: str
    home_id: int
    quota_bytes: int | None
    used_bytes: int
    digest: DigestSecret | None = None
    # what old versions alone keep (`User.history_bytes`), charged with `used_bytes`
    history_bytes: int = 0

    @property
    def charged_bytes(self) -> int:
        """What counts toward the quota: files and trash, and what history alone keeps."""
        return self.used_bytes + self.history_bytes

    @property
    def available_bytes(self) -> int | None:
        """How many more bytes the user may own: quota minus charged (0 when at or
        over the quota), None without a quota."""
        if self.quota_bytes is None:
            return None
        return max(0, self.quota_bytes - self.charged_bytes)


@dataclass(frozen=True)
class DigestSecret:
    """HTTP Digest's stored secret: `ha1` = MD5(user:realm:password) for `realm`."""

    realm: str
    ha1: str


@dataclass(frozen=True)
class AppPasswordRecord:
    """A per-device password: its public `key_id`, argon2id `hash` and lifecycle times."""

    id: int
    user_id: int
    key_id: str
    label: str
    hash: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class ExtentRecord:
    """`size` bytes of a file at `offset`, stored as chunk `chunk_hash`."""

    offset: int
    size: int
    chunk_hash: str


@dataclass(frozen=True)
class NewContent:
    """What a finished upload commits: the whole-file digest, its extents in order and
    its checksums (None: not computed, e.g. a test's hand-made content)."""

    size: int
    digest: str
    extents: list[ExtentRecord] = field(default_factory=list)
    checksums: Checksums | None = None


@dataclass(frozen=True)
class Locator:
    """How a chunk is stored (`providers.codec`): its codec ("raw", "zstd" or
    "sealed"), the master key id of a sealed chunk, and its at-rest size (None: the
    chunk's own size, as for every chunk written before codecs existed). `inline`: the
    at-rest bytes themselves, for a chunk kept in the catalog (`ChunkBody`, design
    invariant 27), which has no object; None for a chunk stored as an object."""

    codec: str = "raw"
    key_id: str | None = None
    stored_size: int | None = None
    inline: bytes | None = field(default=None, repr=False)

    def carrying(self, stored: memoryview | bytes) -> Locator:
        """This form with its at-rest bytes `stored` kept in the locator (a chunk kept
        in the catalog)."""
        return Locator(self.codec, self.key_id, len(stored), bytes(stored))

    def at_rest(self, size: int) -> int:
        """The at-rest size for a chunk of `size` bytes."""
        return size if self.stored_size is None else self.stored_size


RAW_LOCATOR = Locator()


@dataclass(frozen=True)
class ContentView:
    """A content as a GET of a small file needs it, from one query: its checksums
    (None: not all three known yet), its extents in file order and their chunks'
    locators (a chunk without a row reads as raw)."""

    checksums: Checksums | None
    extents: list[ExtentRecord]
    locators: dict[str, Locator]


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk row: its hash, size and state (uploading, stored or deleting), and
    whether it has a body in the catalog (`in_catalog`: design invariant 27; only the
    GC's listings say, elsewhere False)."""

    hash: str
    size: int
    state: str
    touched_at: float
    in_catalog: bool = False


@dataclass(frozen=True)
class LeaseRecord:
    """Who holds a lease, and until when (epoch seconds)."""

    name: str
    holder: str
    expires_at: float


@dataclass(frozen=True)
class GrantRecord:
    """A grant as its owner sees it: the shared node, its path in the owner's home,
    the grantee (`bob`, or `@team` for a group) and `perm` (`r` or `rw`)."""

    id: int
    node_id: int
    owner: str
    path: str
    grantee: str
    perm: str
    created_at: float


@dataclass(frozen=True)
class ReceivedGrant:
    """What a user was given: the shared node, its owner, the node's names from the
    owner's home (`owner_path`) and the best `perm` of the grants that reach the user
    (directly or through groups)."""

    node: NodeRecord
    owner: str
    owner_path: tuple[str, ...]
    perm: str


@dataclass(frozen=True)
class ShareLinkRecord:
    """A share link (see `providers.catalog.schema.ShareLink`) with its node, the node's path in
    the owner's home and the owner's name. `state(now)` says whether it still works."""

    id: int
    node: NodeRecord
    owner: str
    path: str
    perm: str
    password_hash: str | None
    expires_at: float | None
    max_downloads: int | None
    downloads: int
    revoked_at: float | None
    created_at: float

    def state(self, now: float) -> str:
        """`revoked`, `expired`, `used` (no download left) or `live`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        if self.max_downloads is not None and self.downloads >= self.max_downloads:
            return "used"
        return "live"

    def live(self, now: float) -> bool:
        return self.state(now) == "live"


class VersionRecord(NamedTuple):
    """One content a file had: `id` of its version row, the content and its size,
    when it was written (`created`), by whom (`author_id`), the file's `mtime` then
    (None before schema 0004), the content's SHA-256 (None if never computed) and its
    digest (the file's ETag while that content is current)."""

    id: int
    node_id: int
    content_id: int
    size: int
    created: float
    author_id: int | None
    mtime: float | None
    sha256: str | None
    digest: str


class TrashItemRecord(NamedTuple):
    """An item of a user's trash: the id of its root node, the `path` in the home it
    was deleted from (and is restored to), its kind, the bytes of the files it holds,
    when and by whom (user id, None if unknown) it was deleted."""

    id: int
    path: str
    kind: str
    size: int
    deleted: float
    deleted_by: int | None
