"""PROPFIND with Depth 0 or 1, rendered straight to bytes: what every file manager and
sync client sends to list a folder.

WsgiDAV answers PROPFIND by building an lxml element per property through a generic
getter chain and by asking the lock storage once per member (a Redis round trip each on
the production stack); for a folder of 1000 files that was most of the request. Here the
members come from one listing, the locks under the folder from one lock-storage query,
and the common live properties are formatted as strings. A plain file (an ETag, no
dead property, no lock: most members of most listings) is rendered from its catalog
row with one %-format and no resource object, for allprop (the properties its
`get_property_names` lists) and for named requests of its live properties; everything
else goes property by property through its resource.

The answer is WsgiDAV's, property for property: the same names (the resource's own
`get_property_names`), the same values and the same grouping of `propstat` by status.
Only the values with a known shape are rendered here; any other property (dead
properties, Win32 times, the lockdiscovery of a locked member) goes through the
resource's own `get_property_value` and lxml. One deliberate difference: a quota
property of a file is 404 (RFC 4331 defines them on collections) where WsgiDAV sent
an empty 200. `render` returns None for requests it does not take (`propname`,
`include`, Depth infinity, foreign resources), which WsgiDAV then answers as before.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree
from xml.etree.ElementTree import Element

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import DAVError
from wsgidav.dav_provider import _DAVResource
from wsgidav.lock_man.lock_storage import normalize_lock_root

from providers.catalog import NodeRecord
from providers.checksums import Checksums
from providers.dav import (
    OC_CHECKSUMS,
    OC_FILEID,
    OC_ID,
    OC_NS,
    OC_PERMISSIONS,
    OC_SIZE,
    FileResource,
    FolderResource,
    content_type_of,
    last_modified_of,
    oc_ids,
    oc_permissions,
)
from providers.dav.oc_props import OC_EMPTY

Resource = _DAVResource  # any WsgiDAV resource; plain files need no resource at all
# What WsgiDAV's get_href leaves unquoted: no XML-special character, so hrefs (all
# percent-encoded with it) go into the XML as they are.
HREF_SAFE = "/!*'(),$-_|."
OK = "200 OK"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SUPPORTED_LOCK = "".join(
    f"<D:lockentry><D:lockscope><D:{scope}/></D:lockscope>"
    "<D:locktype><D:write/></D:locktype></D:lockentry>"
    for scope in ("exclusive", "shared")
)
_LOCK_NAMES = ("{DAV:}lockdiscovery", "{DAV:}supportedlock")


def parse_request(body: bytes) -> list[str] | None:
    """The property names a PROPFIND body asks for; [] for allprop (and an empty body);
    None for what this module leaves to WsgiDAV (propname, include, anything odd)."""
    if not body.strip():
        return []
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return None
    if root.tag != "{DAV:}propfind" or len(root) != 1:
        return None
    mode = root[0]
    if mode.tag == "{DAV:}allprop":
        return []
    if mode.tag == "{DAV:}prop" and len(mode) > 0:
        names = [child.tag for child in mode if isinstance(child.tag, str)]
        return names if len(names) == len(mode) else None
    return None


@dataclass(frozen=True)
class _Request:
    """What is asked: `names` ([] for allprop), the lock roots under the target, the
    plain-file template (`_plain_file_template`; None when the request needs more),
    and the `oc:permissions` of a listed node (`letters`, None when not asked)."""

    names: list[str]
    locked: set[str]
    plain: _PlainTemplate | None
    letters: Callable[[NodeRecord], str] | None = None


def _letters(resource: FileResource | FolderResource) -> Callable[[NodeRecord], str]:
    """The `oc:permissions` of `resource`'s node or of a member of it, by node."""
    actor = resource.provider.actor(resource.environ)
    shares = resource.provider.ops.shares

    def letters(node: NodeRecord) -> str:
        place = resource.place if node.id == resource.node.id else resource.place.child(node.name)
        return oc_permissions(actor, place, shares, is_dir=node.is_dir)

    return letters


def render(resource: Any, depth: str, names: list[str]) -> bytes | None:
    """The 207 body for `resource` (and its members for Depth 1), or None to fall back."""
    if depth not in ("0", "1") or not isinstance(resource, FileResource | FolderResource):
        return None
    lockable = resource.provider.lock_manager is not None
    letters = _letters(resource) if OC_PERMISSIONS in names else None
    template = _plain_file_template(names, lockable=lockable)
    request = _Request(names, _locked_roots(resource, depth), template, letters)
    base = _href_base(resource)
    if isinstance(resource, FileResource):
        props = resource.dead_props()
        first = _node_response(resource.node, props, base, request, lambda: resource)
    else:
        first = resource_response(resource, base, names, request.locked)
    responses = [first]
    if depth == "1" and isinstance(resource, FolderResource):
        responses += _member_responses(resource, base, request)
    rendered = [response for response in responses if response is not None]
    if len(rendered) < len(responses):
        return None
    head = '<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'
    return f"{head}{''.join(rendered)}</D:multistatus>".encode()


def _member_responses(folder: FolderResource, base: str, request: _Request) -> list[str | None]:
    """The `<D:response>` of each member; a resource is built only for those that are
    not plain files (`_node_response`). Checksums and folder sizes, when asked for, are
    looked up for every member at once."""
    responses = []
    members = folder.member_nodes()
    nodes = [node for node, _props in members]
    sums = folder.member_checksums(nodes) if OC_CHECKSUMS in request.names else None
    sizes = folder.member_tree_bytes(nodes) if OC_SIZE in request.names else None
    for node, props in members:
        href = base + quote(node.name, safe=HREF_SAFE) + ("/" if node.is_dir else "")
        member = functools.partial(_member, folder, node, props, sums, sizes)
        responses.append(_node_response(node, props, href, request, member))
    shared = folder.shared_member()
    if shared is not None:
        href = f"{base}{quote(shared.name, safe=HREF_SAFE)}/"
        responses.append(resource_response(shared, href, request.names, request.locked))
    return responses


def _member(
    folder: FolderResource,
    node: NodeRecord,
    props: dict[str, str],
    sums: dict[int, Checksums] | None,
    sizes: dict[int, int] | None,
) -> Resource:
    """The resource of a member, given the checksums and folder sizes the listing
    looked up."""
    built = folder.member(node, props)
    if sums is not None and isinstance(built, FileResource):
        built.known_checksums(sums.get(node.content_id or 0))
    if sizes is not None and isinstance(built, FolderResource):
        built.known_tree_bytes(sizes.get(node.id, 0))
    return built


def _node_response(
    node: NodeRecord,
    props: dict[str, str],
    href: str,
    request: _Request,
    resource: Callable[[], Resource],
) -> str | None:
    """A stored node's `<D:response>`. A plain file without a lock is rendered from its
    node alone; `resource` builds the node's resource for everything else."""
    template = request.plain if _is_plain_file(node, props) else None
    letters = request.letters(node) if request.letters and template else ""
    if template is not None and not request.locked:
        return _plain_file_response(node, href, template, letters)
    built = resource()
    if template is not None and not _is_locked(built, request.locked):
        return _plain_file_response(node, href, template, letters)
    return resource_response(built, href, request.names, request.locked)


def _href_base(resource: Resource) -> str:
    """The resource's own href; a folder's ends in '/' so members can be appended."""
    href: str = resource.get_href()
    if resource.is_collection and not href.endswith("/"):
        href += "/"
    return href


def _locked_roots(resource: Resource, depth: str) -> set[str]:
    """Lock roots at or below `resource` (one lock-storage query for the whole answer)."""
    manager = resource.provider.lock_manager
    if manager is None:
        return set()
    locks = manager.storage.get_lock_list(
        resource.get_ref_url(),
        include_root=True,
        include_children=depth == "1",
        token_only=False,
    )
    return {normalize_lock_root(lock["root"]) for lock in locks}


@dataclass(frozen=True)
class _PlainTemplate:
    """A plain file's `<D:response>` as a %-format `text`, and the keys of
    `_PLAIN_VALUES` it names (computed per member only when named)."""

    text: str
    computed: tuple[str, ...]


def _plain_file_template(names: list[str], *, lockable: bool) -> _PlainTemplate | None:
    """The %-format template of a plain file's `<D:response>` for this request (see
    `_plain_file_response`), or None when the request names a property `_PLAIN_FILE`
    does not render. Allprop gets what `get_property_names` lists, in that order."""
    wanted = names or [*_PLAIN_FILE_ALLPROP, *(_LOCK_NAMES if lockable else ())]
    if not lockable and any(name in _LOCK_NAMES for name in wanted):
        return None
    if not all(name in _PLAIN_FILE for name in wanted):
        return None
    props = "".join(_PLAIN_FILE[name] for name in wanted)
    text = (
        "<D:response><D:href>%(href)s</D:href><D:propstat><D:prop>"
        f"{props}</D:prop><D:status>HTTP/1.1 {OK}</D:status></D:propstat></D:response>"
    )
    return _PlainTemplate(text, tuple(key for key in _PLAIN_VALUES if f"%({key})s" in text))


def _is_plain_file(node: NodeRecord, props: dict[str, str]) -> bool:
    """A file with an ETag and no dead properties: most members of most listings. Each
    property `get_property_names` lists for it has a value, so (unlocked) its answer is
    one `propstat` with status 200."""
    return node.kind == "file" and node.digest is not None and not props


def _plain_file_response(
    node: NodeRecord, href: str, template: _PlainTemplate, letters: str
) -> str | None:
    """A plain file's `<D:response>` from its node, with the values its `FileResource`
    gives (the same functions) in one %-format: what `_response` answers, without a
    resource or per-property dispatch (`letters`: its `oc:permissions`). None as
    `_response` when a text cannot be carried in XML."""
    content_type = content_type_of(node)
    if _XML_UNSAFE.search(node.name) or _XML_UNSAFE.search(content_type):
        return None
    values: dict[str, object] = {
        "href": href,
        "length": node.size,
        "type": escape(content_type, quote=False),
        "fileid": node.id,
        "perms": letters,
    }
    for key in template.computed:
        values[key] = _PLAIN_VALUES[key](node)
    return template.text % values


def resource_response(
    resource: Resource, href: str, names: list[str], locked: set[str] | None
) -> str | None:
    """One `<D:response>` of `resource` at `href` with the properties `names` ([] for
    allprop); `locked` is the lock roots `_locked_roots` found, or None to ask the
    resource itself for its lockdiscovery (the sync-collection REPORT, whose members
    lie anywhere). None if a value cannot be rendered safely as text."""
    wanted = names or resource.get_property_names(is_allprop=True)
    by_status: dict[str, list[str]] = {}
    for name in wanted:
        status, xml = _property(resource, name, locked)
        if xml is None:
            return None
        by_status.setdefault(status, []).append(xml)
    propstats = "".join(
        f"<D:propstat><D:prop>{''.join(props)}</D:prop>"
        f"<D:status>HTTP/1.1 {status}</D:status></D:propstat>"
        for status, props in by_status.items()
    )
    return f"<D:response><D:href>{href}</D:href>{propstats}</D:response>"


def _property(resource: Resource, name: str, locked: set[str] | None) -> tuple[str, str | None]:
    """(status, XML of the property element); XML None means "not renderable here"."""
    fast = _LIVE.get(name)
    try:
        if fast is not None:
            value = fast(resource)
            if value is None:
                raise DAVError(404)
            return OK, _text_element(name, value)
        if name == "{DAV:}resourcetype":
            if resource.is_collection:
                return OK, "<D:resourcetype><D:collection/></D:resourcetype>"
            return OK, "<D:resourcetype/>"
        if name == "{DAV:}supportedlock" and resource.provider.lock_manager:
            return OK, f"<D:supportedlock>{_SUPPORTED_LOCK}</D:supportedlock>"
        lockable = resource.provider.lock_manager is not None
        if name == "{DAV:}lockdiscovery" and lockable and not _is_locked(resource, locked):
            return OK, "<D:lockdiscovery/>"
        return OK, _element_value(name, resource.get_property_value(name))
    except DAVError as e:
        return util.get_http_status_string(e), _tags(name)[2]


def _is_locked(resource: Resource, locked: set[str] | None) -> bool:
    """Whether `resource` may hold a lock (None: not looked up, so it may)."""
    if locked is None:
        return True
    return bool(locked) and normalize_lock_root(resource.get_ref_url()) in locked


def _element_value(name: str, value: Any) -> str | None:
    """A value from `get_property_value`: an lxml element, or text (as WsgiDAV allows)."""
    if value is None:
        return _tags(name)[2]
    if isinstance(value, etree._Element):
        return str(etree.tostring(value, encoding="unicode"))
    if isinstance(value, Element):
        return ElementTree.tostring(value, encoding="unicode")
    return _text_element(name, str(value))


def _text_element(name: str, text: str) -> str | None:
    if _XML_UNSAFE.search(text):
        return None  # not representable in XML 1.0: let WsgiDAV decide
    start, end, _empty = _tags(name)
    return f"{start}{escape(text, quote=False)}{end}"


@lru_cache(maxsize=256)
def _tags(name: str) -> tuple[str, str, str]:
    """(start tag, end tag, empty element) for a Clark-notation property name."""
    namespace, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
    if namespace == "DAV:":
        return f"<D:{local}>", f"</D:{local}>", f"<D:{local}/>"
    declaration = f' xmlns="{escape(namespace)}"'
    return f"<{local}{declaration}>", f"</{local}>", f"<{local}{declaration}/>"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=4096)
def http_date(seconds: float) -> str:
    """RFC 1123 date, as `wsgidav.util.get_rfc1123_time` writes it, without the email
    package's overhead (once per listed member; cached: a listing's members share few
    seconds)."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _optional(getter: Callable[[Resource], Any], fmt: Callable[[Any], str] = str) -> Any:
    """A live-property getter: the formatted value, or None when the resource has none."""

    def get(resource: Resource) -> str | None:
        value = getter(resource)
        return None if value is None else fmt(value)

    return get


_LIVE: dict[str, Callable[[Resource], str | None]] = {
    "{DAV:}creationdate": _optional(lambda r: r.get_creation_date(), util.get_rfc3339_time),
    "{DAV:}getcontenttype": _optional(lambda r: r.get_content_type()),
    "{DAV:}getcontentlength": _optional(lambda r: r.get_content_length()),
    "{DAV:}getlastmodified": _optional(lambda r: r.get_last_modified(), http_date),
    "{DAV:}getetag": _optional(lambda r: r.get_etag()),
    "{DAV:}displayname": _optional(lambda r: r.get_display_name()),
    "{DAV:}quota-used-bytes": _optional(lambda r: r.get_used_bytes()),
    "{DAV:}quota-available-bytes": _optional(lambda r: r.get_available_bytes()),
}


# Each property of a plain file as a `_plain_file_template` piece.
_PLAIN_FILE = {
    "{DAV:}resourcetype": "<D:resourcetype/>",
    "{DAV:}creationdate": "<D:creationdate>%(created)s</D:creationdate>",
    "{DAV:}getcontentlength": "<D:getcontentlength>%(length)s</D:getcontentlength>",
    "{DAV:}getcontenttype": "<D:getcontenttype>%(type)s</D:getcontenttype>",
    "{DAV:}getlastmodified": "<D:getlastmodified>%(modified)s</D:getlastmodified>",
    "{DAV:}displayname": "<D:displayname>%(name)s</D:displayname>",
    "{DAV:}getetag": "<D:getetag>%(etag)s</D:getetag>",
    "{DAV:}lockdiscovery": "<D:lockdiscovery/>",
    "{DAV:}supportedlock": f"<D:supportedlock>{_SUPPORTED_LOCK}</D:supportedlock>",
    OC_FILEID: f'<fileid xmlns="{OC_NS}">%(fileid)s</fileid>',
    OC_ID: f'<id xmlns="{OC_NS}">%(ocid)s</id>',
    OC_PERMISSIONS: f'<permissions xmlns="{OC_NS}">%(perms)s</permissions>',
    OC_SIZE: f'<size xmlns="{OC_NS}">%(length)s</size>',
    **{name: _tags(name)[2] for name in OC_EMPTY},
}
# A file's live properties, in the order of WsgiDAV's `get_property_names`.
_PLAIN_FILE_ALLPROP = (
    "{DAV:}resourcetype",
    "{DAV:}creationdate",
    "{DAV:}getcontentlength",
    "{DAV:}getcontenttype",
    "{DAV:}getlastmodified",
    "{DAV:}displayname",
    "{DAV:}getetag",
)


@lru_cache(maxsize=4096)
def _creation_date(seconds: int) -> str:
    """`creationdate` as `wsgidav.util.get_rfc3339_time` writes it, which keeps whole
    seconds (cached: the members of a listing share few)."""
    return util.get_rfc3339_time(seconds)


# The values of a plain file's template that cost a call, by key: only those its
# template names are computed (`_PlainTemplate.computed`).
_PLAIN_VALUES: dict[str, Callable[[NodeRecord], str]] = {
    "created": lambda node: _creation_date(int(node.created)),
    "modified": lambda node: http_date(last_modified_of(node)),
    "name": lambda node: escape(node.name, quote=False),
    "etag": lambda node: escape(node.digest or "", quote=False),
    "ocid": lambda node: oc_ids(node)[1],
}
