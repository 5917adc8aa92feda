"""The catalog: all SQL metadata, behind one facade (the only user of sqlmodel).

`Catalog(url)` works with SQLite (`sqlite:///path`) and PostgreSQL
(`postgresql+psycopg://...`) alike. Its parts: `users` (accounts, settings),
`app_passwords` (per-device passwords), `groups` (groups, memberships), `grants`
(sharing between users), `links` (public share links), `uploads` (resumable
uploads in progress), `tree` (nodes, props, change log), `contents` (manifests, chunk
states, GC queries), `checksums` (the contents' checksums), `versions` (files'
history), `leases` (locks shared by every process, e.g. one GC run at a time),
`changes` (reading and compacting the change log, the sync feed's source),
`snapshots` (what a snapshot of a home is built from), `blocks` (presence and
staged blocks of the delta API), `dav_locks` (WebDAV locks every process sees);
`values(prefix)` and `counters(prefix)` give short-lived shared state (login flows,
failed-login counts) to stores without Redis.
`prepare_schema` opens a store: it creates, upgrades or refuses its schema
(`providers.catalog.migrate`, Alembic). Errors come out as `providers.errors` types:
`Unavailable` when the database is down.
"""

from __future__ import annotations

from providers.catalog.blocks import Presence, StagedBlocks
from providers.catalog.changes import ChangeLog
from providers.catalog.checksums import ContentChecksums
from providers.catalog.content import (
    CLAIM_BUSY,
    CLAIM_DEDUP,
    CLAIM_INLINE,
    CLAIM_UPLOAD,
    CommitStep,
    Contents,
    Transaction,
    in_order,
)
from providers.catalog.dav_locks import DavLockRows
from providers.catalog.db import Database
from providers.catalog.ephemeral import ExpiringCounters, ExpiringValues
from providers.catalog.grants import Grants
from providers.catalog.groups import Groups
from providers.catalog.history_usage import HistoryUsage, OldestHistory, Usage
from providers.catalog.leases import Leases
from providers.catalog.links import ShareLinks
from providers.catalog.locators import ChunkLocators
from providers.catalog.migrate import (
    SchemaChange,
    SchemaState,
    StepReport,
    location,
    migrate,
    schema_state,
)
from providers.catalog.records import (
    DEFAULT_LINK_PERM,
    DIR,
    FILE,
    LINK_PERMS,
    PERM_READ,
    PERM_WRITE,
    AppPasswordRecord,
    ChangeRecord,
    ChunkRecord,
    ContentView,
    DigestSecret,
    ExtentRecord,
    GrantRecord,
    LeaseRecord,
    Locator,
    NewContent,
    NodeRecord,
    ReceivedGrant,
    ShareLinkRecord,
    TrashItemRecord,
    UserRecord,
    VersionRecord,
)
from providers.catalog.snapshots import ContentThen, SnapshotReads, SnapshotSource
from providers.catalog.trash import Trash
from providers.catalog.tree import Tree
from providers.catalog.upload_folders import UploadFolders
from providers.catalog.uploads import DEFAULT_EXPIRY, Uploads
from providers.catalog.users import Users
from providers.catalog.versions import Versions


class Catalog:
    """Facade over the database: `users`, `app_passwords`, `groups`, `grants`, `links`,
    `tree`, `contents`, `locators`, `checksums`, `leases`, `changes`, `versions`, `trash`,
    `history_usage`, `snapshots`, `blocks`, `uploads`, `upload_folders`, `dav_locks`."""

    def __init__(self, url: str, *, upload_expiry: float = DEFAULT_EXPIRY) -> None:
        self.db = Database(url)
        self.users = Users(self.db)
        self.app_passwords = self.users.app_passwords
        self.groups = Groups(self.db)
        self.grants = Grants(self.db)
        self.links = ShareLinks(self.db)
        self.tree = Tree(self.db)
        self.contents = Contents(self.db)
        self.locators = ChunkLocators(self.db)
        self.checksums = ContentChecksums(self.db)
        self.uploads = Uploads(self.db, upload_expiry)
        self.upload_folders = UploadFolders(self.db, upload_expiry)
        self.blocks = StagedBlocks(self.db, upload_expiry)
        self.leases = Leases(self.db)
        self.changes = ChangeLog(self.db)
        self.versions = Versions(self.db)
        self.trash = Trash(self.db)
        self.history_usage = HistoryUsage(self.db)
        self.snapshots = SnapshotReads(self.db)
        self.dav_locks = DavLockRows(self.db)

    def values(self, prefix: str) -> ExpiringValues:
        """Expiring values under keys that start with `prefix` (see `ExpiringValues`)."""
        return ExpiringValues(self.db, prefix)

    def counters(self, prefix: str) -> ExpiringCounters:
        """Expiring counters under keys that start with `prefix`."""
        return ExpiringCounters(self.db, prefix)

    def schema_state(self, *, must_exist: bool = False) -> SchemaState:
        """Where the schema stands (revision, head, empty); creates and changes nothing,
        not even a missing SQLite file. `must_exist`: `StoreMissing` if empty."""
        return schema_state(self.db, must_exist=must_exist)

    def prepare_schema(
        self, *, create: bool, upgrade: bool, on_step: StepReport | None = None
    ) -> SchemaChange:
        """Make the schema the one this release needs, as far as allowed: `create` an
        empty store, `upgrade` one that is behind. `StoreMissing` or `SchemaMismatch`
        otherwise (see `providers.catalog.migrate.migrate`)."""
        return migrate(self.db, create=create, upgrade=upgrade, on_step=on_step)

    @property
    def location(self) -> str:
        """Where the catalog is, for messages: its SQLite file, or its URL without the
        password."""
        return location(self.db)

    def create_schema(self) -> None:
        """Create or upgrade the schema to this release's (tests, first start)."""
        self.prepare_schema(create=True, upgrade=True)

    def check(self) -> None:
        self.db.check()

    def close(self) -> None:
        self.db.close()


__all__ = [
    "DEFAULT_LINK_PERM",
    "DIR",
    "FILE",
    "LINK_PERMS",
    "PERM_READ",
    "PERM_WRITE",
    "AppPasswordRecord",
    "CLAIM_BUSY",
    "CLAIM_DEDUP",
    "CLAIM_INLINE",
    "CLAIM_UPLOAD",
    "CommitStep",
    "Transaction",
    "in_order",
    "DavLockRows",
    "ExpiringCounters",
    "ExpiringValues",
    "Catalog",
    "ChangeLog",
    "ChangeRecord",
    "ChunkRecord",
    "ContentThen",
    "DigestSecret",
    "ExtentRecord",
    "GrantRecord",
    "HistoryUsage",
    "LeaseRecord",
    "Locator",
    "ChunkLocators",
    "NewContent",
    "ContentView",
    "NodeRecord",
    "OldestHistory",
    "Presence",
    "ReceivedGrant",
    "SchemaChange",
    "SchemaState",
    "ShareLinkRecord",
    "SnapshotSource",
    "StagedBlocks",
    "TrashItemRecord",
    "Usage",
    "UserRecord",
    "VersionRecord",
]
