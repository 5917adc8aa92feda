"""The Nextcloud door's first answers through a real server, on both stacks:
`/status.php`, OCS capabilities and user (JSON and XML, v1 and v2, the exact envelope
the clients parse), and the files mounts `/remote.php/dav/files/<user>/` and
`/remote.php/webdav/` (the same files as `/dav/`, hrefs under the path asked for)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import requests

from tests.support.dav import propfind, put
from tests.support.servers import RunningServer

# How ownCloud 2.11 reads an OCS answer's status (networkjobs.cpp): a regex, no parser.
OWNCLOUD_STATUS = re.compile(rb'"statuscode":(\d+),')


def test_status_php_answers_without_login(server: RunningServer) -> None:
    for path in ("/status.php", "/nextcloud/status.php"):
        answer = requests.get(server.base + path, timeout=10)
        assert answer.status_code == 200
        body = answer.json()
        assert body["installed"] is True and body["maintenance"] is False
        assert body["needsDbUpgrade"] is False
        assert body["productname"] == "davserver"
        assert body["versionstring"] == "28.0.0" and body["version"] == "28.0.0.0"


def test_capabilities_envelope_in_json_and_xml(server: RunningServer) -> None:
    url = server.base + "/ocs/v1.php/cloud/capabilities"
    answer = requests.get(url, params={"format": "json"}, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    match = OWNCLOUD_STATUS.search(answer.content)
    assert match is not None and match.group(1) == b"100"
    ocs = answer.json()["ocs"]
    assert ocs["meta"]["status"] == "ok"
    capabilities = ocs["data"]["capabilities"]
    assert "bulkupload" not in capabilities.get("dav", {})
    assert "tus_support" not in capabilities["files"]
    assert capabilities["checksums"]["supportedTypes"] == ["SHA1"]
    chunking = capabilities["dav"].get("chunking") == "1.0"
    assert capabilities["files"]["bigfilechunking"] is chunking
    # Top-level, where both clients look for it (not under `files`).
    assert capabilities["uploadConflictFiles"] is True

    v2 = requests.get(server.base + "/ocs/v2.php/cloud/capabilities", timeout=10)
    assert v2.status_code == 200 and v2.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(v2.content)
    assert root.tag == "ocs"
    assert root.findtext("meta/statuscode") == "200"
    assert root.findtext("data/version/major") == "28"


def test_cloud_user_needs_a_login_and_names_the_account(server: RunningServer) -> None:
    url = server.base + "/ocs/v1.php/cloud/user"
    assert requests.get(url, params={"format": "json"}, timeout=10).status_code == 401
    server.add_user("ann", "ann-secret")
    answer = server.client("ann").get(url, params={"format": "json"}, timeout=10)
    assert answer.status_code == 200
    data = answer.json()["ocs"]["data"]
    assert data["id"] == "ann" and data["quota"]["used"] == 0
    xml = server.client("ann").get(server.base + "/ocs/v2.php/cloud/user", timeout=10)
    assert ET.fromstring(xml.content).findtext("data/id") == "ann"


def test_unknown_ocs_endpoint_is_an_ocs_404(server: RunningServer) -> None:
    answer = requests.get(
        server.base + "/ocs/v1.php/cloud/nothing", params={"format": "json"}, timeout=10
    )
    assert answer.status_code == 404
    assert answer.json()["ocs"]["meta"]["status"] == "failure"


def test_files_mount_serves_the_dav_home_under_the_path_asked_for(
    server: RunningServer,
) -> None:
    admin = server.client()
    assert admin.request("MKCOL", server.url("docs/")).status_code == 201
    put(admin, server.url("docs/a.txt"), b"alpha")
    root = server.base + "/remote.php/dav/files/admin/"
    listing = propfind(admin, root + "docs/")
    assert set(listing) == {
        "/remote.php/dav/files/admin/docs/",
        "/remote.php/dav/files/admin/docs/a.txt",
    }
    legacy = propfind(admin, server.base + "/remote.php/webdav/docs/")
    assert "/remote.php/webdav/docs/a.txt" in legacy
    assert admin.get(root + "docs/a.txt").content == b"alpha"

    moved = admin.request("MOVE", root + "docs/a.txt", headers={"Destination": root + "docs/b.txt"})
    assert moved.status_code == 201
    assert admin.get(server.url("docs/b.txt")).content == b"alpha"
    put(admin, root + "docs/c.txt", b"gamma")
    assert admin.get(server.url("docs/c.txt")).content == b"gamma"


def test_files_mount_is_the_callers_own(server: RunningServer) -> None:
    server.add_user("ann", "ann-secret")
    url = server.base + "/remote.php/dav/files/admin/"
    anonymous = requests.request("PROPFIND", url, headers={"Depth": "0"}, timeout=10)
    assert anonymous.status_code == 401
    other = server.client("ann").request("PROPFIND", url, headers={"Depth": "0"})
    assert other.status_code == 404
    unknown = server.client().get(server.base + "/remote.php/dav/nothing/admin/")
    assert unknown.status_code == 404
