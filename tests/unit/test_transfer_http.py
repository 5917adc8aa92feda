"""The client's HTTP (davserver.cli.transfer_http) against a small real HTTP server
that answers as told: transient failures are retried, others are not, the login goes
only where it belongs, and a signed upload is sent exactly as signed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from davserver.cli.transfer_http import Login, Remote, TransferError, Upload
from tests.services.processes import free_port

LOGIN = Login("amy", "s3cret-pass")


class Script(ThreadingHTTPServer):
    """Answers the statuses of `answers` in turn (the last one from then on) and keeps
    what it received: (method, path, headers with lowercase names, body)."""

    answers: list[int]
    seen: list[tuple[str, str, dict[str, str], bytes]]


class Handler(BaseHTTPRequestHandler):
    server: Script

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.seen.append((self.command, self.path, headers, body))
        answers = self.server.answers
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        text = json.dumps({"ok": True} if status < 300 else {"error": "told to fail"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def script() -> Iterator[Script]:
    server = Script(("127.0.0.1", 0), Handler)
    server.answers, server.seen = [200], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def remote_of(server: Script) -> Remote:
    return Remote(f"http://127.0.0.1:{server.server_address[1]}", LOGIN, backoff=0.01)


def test_transient_failures_are_retried(script: Script) -> None:
    script.answers = [503, 502, 200]
    assert remote_of(script).get_json("blocks/params") == {"ok": True}
    assert [path for _, path, _, _ in script.seen] == ["/api/v1/blocks/params"] * 3


def test_retries_end_with_the_last_failure(script: Script) -> None:
    script.answers = [500]
    with pytest.raises(TransferError) as failed:
        remote_of(script).post_json("files/commit", {"path": "/f"})
    assert failed.value.status == 500 and failed.value.transient
    assert len(script.seen) == 5  # once, then 4 retries
    assert str(failed.value).endswith("/api/v1/files/commit: 500 told to fail")


def test_other_failures_are_not_retried(script: Script) -> None:
    script.answers = [404]
    with pytest.raises(TransferError) as failed:
        remote_of(script).get_json("files/blocks", path="/a b")
    assert failed.value.status == 404 and not failed.value.transient
    assert failed.value.body == {"error": "told to fail"}
    assert [path for _, path, _, _ in script.seen] == ["/api/v1/files/blocks?path=%2Fa+b"]
    assert LOGIN.password not in str(failed.value)


def test_no_server_is_a_transient_failure_without_status() -> None:
    remote = Remote(f"http://127.0.0.1:{free_port()}", LOGIN, retries=1, backoff=0.01)
    with pytest.raises(TransferError) as failed:
        remote.get_json("blocks/params")
    assert failed.value.status is None and failed.value.transient


def test_the_api_gets_the_login_and_signed_urls_do_not(script: Script) -> None:
    remote = remote_of(script)
    remote.get_json("me")
    signed = {"x-amz-checksum-sha256": "abc=", "Content-Length": "5"}
    url = f"{remote.base}/bucket/key?X-Amz-Signature=1"
    remote.send_block(Upload("PUT", url, signed, auth=False), b"hello")
    remote.fetch_block(f"{remote.base}/blocks/x?sig=2")
    (_, _, api, _), (method, path, sent, body), (_, _, fetched, _) = script.seen
    assert api["authorization"].startswith("Basic ")
    assert "authorization" not in sent and "authorization" not in fetched
    assert (method, path, body) == ("PUT", "/bucket/key?X-Amz-Signature=1", b"hello")
    assert sent["x-amz-checksum-sha256"] == "abc=" and sent["content-length"] == "5"


def test_the_login_never_goes_to_another_host(script: Script) -> None:
    upload = Upload("PUT", "http://elsewhere.example/api/v1/blocks/x", {}, auth=True)
    with pytest.raises(TransferError, match="another host"):
        remote_of(script).send_block(upload, b"x")
    assert script.seen == []


def test_a_malformed_upload_entry_is_a_transfer_error() -> None:
    with pytest.raises(TransferError, match="malformed"):
        Upload.of({"method": "PUT"})
