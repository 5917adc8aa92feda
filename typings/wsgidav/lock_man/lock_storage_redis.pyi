from typing import Any

from wsgidav.lock_man.lock_storage import _LockStorage

class LockStorageRedis(_LockStorage):
    _redis: Any
    def __init__(
        self, *, host: str = ..., port: int = ..., db: int = ..., password: str | None = ...
    ) -> None: ...
