from typing import Any

from wsgidav.dav_error import DAVErrorCondition

class LockManager:
    storage: Any
    def __init__(self, storage: Any) -> None: ...
    def acquire(
        self,
        *,
        url: str,
        lock_type: str,
        lock_scope: str,
        lock_depth: str,
        lock_owner: bytes,
        timeout: float,
        principal: str,
        token_list: list[str],
    ) -> dict[str, Any]: ...
    def release(self, token: str) -> None: ...
    def get_url_lock_list(self, url: str, *, recursive: bool = False) -> list[dict[str, Any]]: ...
    def remove_all_locks_from_url(self, url: str, *, recursive: bool = False) -> None: ...
    def check_write_permission(
        self, *, url: str, depth: str, token_list: list[str], principal: str
    ) -> None: ...
    def _get_write_conflicts(
        self, url: str, depth: str, token_list: list[str], principal: str
    ) -> DAVErrorCondition: ...
