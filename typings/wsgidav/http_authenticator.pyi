from typing import Any

from wsgidav._middleware import BaseMiddleware

class HTTPAuthenticator(BaseMiddleware):
    domain_controller: Any
