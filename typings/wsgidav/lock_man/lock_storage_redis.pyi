from typing import Any

from wsgidav.lock_man.lock_storage import _LockStorage

class LockStorageRedis(_LockStorage):
    _redis: Any
    _redis_lock_prefix: str  # "wsgidav-lock:{}": a lock (pickled) by its token
    _redis_url2token_prefix: str  # "wsgidav-URL2TOKEN:{}": the tokens of a lock root
    def __init__(
        self, *, host: str = ..., port: int = ..., db: int = ..., password: str | None = ...
    ) -> None: ...
