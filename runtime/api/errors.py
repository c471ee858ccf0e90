"""API errors: one JSON shape for every error response."""

from __future__ import annotations

from redis.exceptions import ResponseError

__all__ = ["ApiError", "redis_transient"]

#: error replies of a server that is there but cannot serve the command now (memory, failover, a busy
#: script, loading): retrying later helps. Any other error reply is a command Baton should not have sent.
_TRANSIENT_REPLIES = ("OOM", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS", "BUSY", "LOADING")


def redis_transient(exc: BaseException) -> bool:
    """Whether a Redis failure is an outage to answer 503 (retry later), not a refused command (a bug)."""
    return not isinstance(exc, ResponseError) or str(exc).startswith(_TRANSIENT_REPLIES)


class ApiError(Exception):
    """An error with its HTTP status and machine-readable code; rendered as
    ``{"error": message, "code": code, "request_id": ...}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
