from collections.abc import Callable, Iterable
from typing import Any

_App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

class BaseMiddleware:
    next_app: _App
    config: dict[str, Any]
    def __init__(self, wsgidav_app: Any, next_app: _App, config: dict[str, Any]) -> None: ...
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]: ...
