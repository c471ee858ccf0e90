"""API errors: one JSON shape for every error response."""

from __future__ import annotations

from ..redis_faults import is_outage

__all__ = ["ApiError", "redis_transient"]


def redis_transient(exc: BaseException) -> bool:
    """Whether a Redis failure is an outage to answer 503 (retry later), as the nodes judge one
    (runtime/redis_faults.py), or a socket that could not connect; anything else is a command or a
    reply Baton got wrong (a bug: 500)."""
    return is_outage(exc) or isinstance(exc, OSError)


class ApiError(Exception):
    """An error with its HTTP status and machine-readable code; rendered as
    ``{"error": message, "code": code, "request_id": ...}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
