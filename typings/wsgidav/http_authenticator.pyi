from typing import Any

from wsgidav._middleware import BaseMiddleware

class HTTPAuthenticator(BaseMiddleware):
    domain_controller: Any
    error_message_401: str
    def send_basic_auth_response(
        self, environ: dict[str, Any], start_response: Any
    ) -> list[bytes]: ...
    def send_digest_auth_response(
        self, environ: dict[str, Any], start_response: Any
    ) -> list[bytes]: ...
