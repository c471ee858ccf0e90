"""API errors: one JSON shape for every error response."""

from __future__ import annotations

from redis.exceptions import ResponseError

from ..redis_faults import server_state

__all__ = ["ApiError", "redis_transient"]


def redis_transient(exc: BaseException) -> bool:
    """Whether a Redis failure is an outage to answer 503 (retry later): the link, or a server that cannot
    serve the command now (runtime/redis_faults.py); any other error reply is a command Baton should not
    have sent (a bug)."""
    return not isinstance(exc, ResponseError) or server_state(exc)


class ApiError(Exception):
    """An error with its HTTP status and machine-readable code; rendered as
    ``{"error": message, "code": code, "request_id": ...}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
