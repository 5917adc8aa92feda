HTTP_OK: int
HTTP_CREATED: int
HTTP_NO_CONTENT: int
HTTP_NOT_MODIFIED: int
HTTP_BAD_REQUEST: int
HTTP_FORBIDDEN: int
HTTP_NOT_FOUND: int
HTTP_CONFLICT: int
HTTP_PRECONDITION_FAILED: int
HTTP_LOCKED: int
HTTP_METHOD_NOT_ALLOWED: int
HTTP_INSUFFICIENT_STORAGE: int
HTTP_INTERNAL_ERROR: int
PRECONDITION_CODE_LockConflict: str

class DAVErrorCondition:
    condition_code: str
    hrefs: list[str]
    def __init__(self, condition_code: str) -> None: ...
    def add_href(self, href: str) -> None: ...

class DAVError(Exception):
    value: int
    context_info: str | None
    src_exception: BaseException | None
    err_condition: DAVErrorCondition | None
    add_headers: list[tuple[str, str]] | None
    add_body: bool
    def __init__(
        self,
        status_code: int,
        context_info: str | None = None,
        *,
        src_exception: BaseException | None = None,
        err_condition: DAVErrorCondition | None = None,
        add_headers: list[tuple[str, str]] | None = None,
        add_body: bool = True,
    ) -> None: ...
    def get_user_info(self) -> str: ...
    def get_response_page(self) -> tuple[str, bytes]: ...
