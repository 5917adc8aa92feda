"""PROPFIND with Depth 0 or 1, rendered straight to bytes: what every file manager and
sync client sends to list a folder.

WsgiDAV answers PROPFIND by building an lxml element per property through a generic
getter chain and by asking the lock storage once per member (a Redis round trip each on
the production stack); for a folder of 1000 files that was most of the request. Here the
members come from one listing, the locks under the folder from one lock-storage query,
and the common live properties are formatted as strings. For allprop, a file with no
dead properties and no lock (most members of most listings) is one f-string with the
properties its `get_property_names` lists; everything else goes property by property.

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

import re
import time
from collections.abc import Callable
from functools import lru_cache
from html import escape
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import DAVError
from wsgidav.lock_man.lock_storage import normalize_lock_root

from providers.dav import FileResource, FolderResource

Resource = FileResource | FolderResource
HREF_SAFE = "/!*'(),$-_|."  # what WsgiDAV's get_href leaves unquoted
OK = "200 OK"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SUPPORTED_LOCK = "".join(
    f"<D:lockentry><D:lockscope><D:{scope}/></D:lockscope>"
    "<D:locktype><D:write/></D:locktype></D:lockentry>"
    for scope in ("exclusive", "shared")
)
_LOCK_PROPS = f"<D:lockdiscovery/><D:supportedlock>{_SUPPORTED_LOCK}</D:supportedlock>"


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


def render(resource: Any, depth: str, names: list[str]) -> bytes | None:
    """The 207 body for `resource` (and its members for Depth 1), or None to fall back."""
    if depth not in ("0", "1") or not isinstance(resource, FileResource | FolderResource):
        return None
    targets: list[Resource] = [resource]
    if depth == "1" and isinstance(resource, FolderResource):
        targets += resource.get_member_list()
    locked = _locked_roots(resource, depth)
    lock_props = _LOCK_PROPS if resource.provider.lock_manager else ""
    base = _href_base(resource)
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
    for index, target in enumerate(targets):
        href = base if index == 0 else base + quote(target.name, safe=HREF_SAFE)
        if index and target.is_collection:
            href += "/"
        if not names and _is_plain_file(target, locked):
            response = _plain_file_response(target, href, lock_props)
        else:
            response = _response(target, href, names, locked)
        if response is None:
            return None
        parts.append(response)
    parts.append("</D:multistatus>")
    return "".join(parts).encode("utf-8")


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


def _is_plain_file(resource: Resource, locked: set[str]) -> bool:
    """A file without dead properties or a lock: most members of most listings."""
    return (
        type(resource) is FileResource
        and not resource.dead_props()
        and not _is_locked(resource, locked)
    )


def _plain_file_response(resource: FileResource, href: str, lock_props: str) -> str | None:
    """The allprop `<D:response>` of a plain file (`_is_plain_file`) in one string, or
    None as `_response`. It holds what `get_property_names` lists for such a file, in
    its order: `_response` would give the same answer, one property at a time."""
    name = resource.get_display_name()
    content_type = resource.get_content_type()
    if _XML_UNSAFE.search(name) or _XML_UNSAFE.search(content_type):
        return None
    etag = resource.get_etag()
    etag_prop = "" if etag is None else f"<D:getetag>{escape(etag, quote=False)}</D:getetag>"
    return (
        f"<D:response><D:href>{escape(href, quote=False)}</D:href><D:propstat><D:prop>"
        "<D:resourcetype/>"
        f"<D:creationdate>{util.get_rfc3339_time(resource.get_creation_date())}</D:creationdate>"
        f"<D:getcontentlength>{resource.get_content_length()}</D:getcontentlength>"
        f"<D:getcontenttype>{escape(content_type, quote=False)}</D:getcontenttype>"
        f"<D:getlastmodified>{http_date(resource.get_last_modified())}</D:getlastmodified>"
        f"<D:displayname>{escape(name, quote=False)}</D:displayname>"
        f"{etag_prop}{lock_props}"
        f"</D:prop><D:status>HTTP/1.1 {OK}</D:status></D:propstat></D:response>"
    )


def _response(resource: Resource, href: str, names: list[str], locked: set[str]) -> str | None:
    """One `<D:response>`, or None if a value cannot be rendered safely as text."""
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
    return f"<D:response><D:href>{escape(href, quote=False)}</D:href>{propstats}</D:response>"


def _property(resource: Resource, name: str, locked: set[str]) -> tuple[str, str | None]:
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


def _is_locked(resource: Resource, locked: set[str]) -> bool:
    return bool(locked) and normalize_lock_root(resource.get_ref_url()) in locked


def _element_value(name: str, value: Any) -> str | None:
    """A value from `get_property_value`: an lxml element, or text (as WsgiDAV allows)."""
    if value is None:
        return _tags(name)[2]
    if isinstance(value, etree._Element | Element):
        return str(etree.tostring(value, encoding="unicode"))
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


def http_date(seconds: float) -> str:
    """RFC 1123 date, as `wsgidav.util.get_rfc1123_time` writes it, without the email
    package's overhead (once per listed member)."""
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
