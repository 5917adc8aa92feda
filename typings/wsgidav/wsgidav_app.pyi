from collections.abc import Callable, Iterable
from typing import Any

class WsgiDAVApp:
    config: dict[str, Any]
    lock_manager: Any
    http_authenticator: Any
    def __init__(self, config: dict[str, Any]) -> None: ...
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]: ...
