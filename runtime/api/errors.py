"""API errors: one JSON shape for every error response."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """An error with its HTTP status and machine-readable code; rendered as
    ``{"error": message, "code": code, "request_id": ...}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
