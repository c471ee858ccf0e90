"""Requests the HTTP server refuses before any handler runs, answered in the API's error shape.

aiohttp answers a request it cannot parse (a malformed request line or header, a line longer than
the limit, a bad Content-Length or chunk size) itself, with a plain-text 400, before the API's
middleware sees it: the one error answer that was not ``{"error", "code", "request_id"}`` JSON.
:class:`ApiRunner` serves the API with a request handler whose error answer is that JSON; what
aiohttp logs of it is unchanged (errors.PROTOCOL_LOG).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .server import HTTP_CODES, INTERNAL_ERROR, error_response

__all__ = ["ApiRunner"]

#: the most of aiohttp's own words on a malformed request an answer repeats
MOST_SAID = 200


class _JsonErrors(RequestHandler):
    """aiohttp's request handler, whose answer to a request it could not serve is the API's JSON error."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # aiohttp's own first: it logs the error, and raises when a response is under way already
        super().handle_error(request, status, exc, message)
        if status >= 500:
            code, said = "internal_error", INTERNAL_ERROR
        else:
            # its words, as one line ("Invalid header token: b'Bad Header'"): the parser's message spans lines
            words = " ".join((message or "").split())[:MOST_SAID] or "the request could not be read"
            code, said = HTTP_CODES.get(status, "bad_request"), f"malformed HTTP request: {words}"
        resp = error_response(status, code, said, uuid.uuid4().hex)
        resp.force_close()  # (as aiohttp's: the rest of what the client sent cannot be read as requests)
        return resp


class _Server(web.Server):
    """aiohttp's server, making :class:`_JsonErrors` request handlers."""

    def __call__(self) -> RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """An AppRunner whose server answers requests it cannot parse with the API's JSON error."""

    async def _make_server(self) -> web.Server:
        made: Any = await super()._make_server()
        return _Server(made.request_handler, request_factory=made.request_factory,
                       handler_cancellation=made.handler_cancellation, loop=made._loop, **made._kwargs)
