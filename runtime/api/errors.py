"""API errors: one JSON shape for every error response."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ..redis_faults import is_outage

__all__ = ["PROTOCOL_LOG", "ApiError", "redis_transient"]


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


class _ClientFaults(logging.Filter):
    """Makes aiohttp's error record of a request the client got wrong (a header over the size limit,
    bytes that are not HTTP, a body that does not decode in its Content-Encoding) one warning line
    without a traceback: anyone can send those, unauthenticated, and each was an error-level traceback
    (aiohttp answers them itself with a 400, or the API does). Its other records are left as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        causes = (exc, getattr(exc, "__cause__", None), getattr(exc, "__context__", None))
        fault = next((c for c in causes if isinstance(c, HttpProcessingError | RequestPayloadError)), None)
        if fault is not None:
            record.msg, record.args = "%s: %s", (record.getMessage(), str(fault).replace("\n", " ")[:200])
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


#: the logger the API's HTTP server logs protocol errors to (aiohttp's, filtered by _ClientFaults)
PROTOCOL_LOG = logging.getLogger("baton.api.protocol")
PROTOCOL_LOG.addFilter(_ClientFaults())
