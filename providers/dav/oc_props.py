"""The ownCloud/Nextcloud live properties the sync clients read on every node
(docs/nextcloud.md, "Files"), beside `oc:id` and `oc:fileid` (`providers.dav.node`).

- `oc:permissions`: letters the clients decide with what they may upload, delete,
  rename or create (nextcloud/desktop `remotepermissions.h`), from the caller's place
  (`providers.operations.access.Place`, the one rule for rights): `S` received from
  another user, `R` the caller owns it (may share it), `G` readable (always: Nextcloud
  28 sends it, and it keeps the value from being empty, which the clients take for
  "no permissions"), `D`/`N`/`V` may delete/rename/move it, `W` (files) may change it,
  `C`/`K` (folders) may add files/folders to it.
- `oc:size`: a file's size, a folder's recursive size (the files below it).
- `oc:share-types`, `oc:downloadURL`, `oc:dDC`, `oc:data-fingerprint`: always empty
  (no share types reported, no direct download URLs, and a fingerprint that never
  changes, so a client never thinks the server was restored from a backup).
"""

from __future__ import annotations

from providers.operations import Access, Actor, Place, SharedSpace

OC_NS = "http://owncloud.org/ns"
OC_CHECKSUMS = f"{{{OC_NS}}}checksums"  # live, computed from the bytes (`FileResource`)
OC_FILEID = f"{{{OC_NS}}}fileid"  # the node's id: stable across MOVE (ownCloud/Nextcloud)
OC_ID = f"{{{OC_NS}}}id"  # the same, in their `oc:id` shape (padded id + instance)
OC_PERMISSIONS = f"{{{OC_NS}}}permissions"
OC_SIZE = f"{{{OC_NS}}}size"
OC_SHARE_TYPES = f"{{{OC_NS}}}share-types"
OC_DOWNLOAD_URL = f"{{{OC_NS}}}downloadURL"
OC_DDC = f"{{{OC_NS}}}dDC"
OC_DATA_FINGERPRINT = f"{{{OC_NS}}}data-fingerprint"
OC_EMPTY = (OC_SHARE_TYPES, OC_DOWNLOAD_URL, OC_DDC, OC_DATA_FINGERPRINT)
OC_RIGHTS = (OC_PERMISSIONS, OC_SIZE, *OC_EMPTY)


def permission_letters(place: Place, *, is_dir: bool, received: bool) -> str:
    """The `oc:permissions` of a node at `place` (module docstring); `received`: it
    lies in what another user shared with the caller."""
    letters = "S" if received else ""
    if place.access == Access.OWNER:
        letters += "R"
    letters += "G"
    if place.can_remove:
        letters += "DNV"
    if is_dir:
        return letters + ("CK" if place.can_add else "")
    return letters + ("W" if place.can_write else "")


def exact_place(actor: Actor, place: Place, shares: SharedSpace) -> Place:
    """`place` with the actor's exact right: a listing's members carry their folder's
    (`Place.child`), and a read-write grant received for a member widens a read-only
    one above it (`SharedSpace.access_at`, which writes use too)."""
    if actor.link is not None or place.tree_owner == actor.user.id or place.virtual:
        return place
    if place.access >= Access.WRITE:
        return place
    access = shares.access_at(actor.user.id, place.tree_owner, place.owner_names)
    if access == place.access:
        return place
    return Place(place.tree_owner, place.owner_names, access, place.fixed, place.virtual)


def oc_permissions(actor: Actor, place: Place, shares: SharedSpace, *, is_dir: bool) -> str:
    """The caller's `oc:permissions` for a node at `place`."""
    received = actor.link is None and place.tree_owner != actor.user.id
    exact = exact_place(actor, place, shares)
    return permission_letters(exact, is_dir=is_dir, received=received)
