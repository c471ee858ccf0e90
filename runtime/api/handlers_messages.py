"""Handlers of the message endpoints: signals and queries of a run, waitpoint tokens.

Token errors are translated here: 404 for an unknown token or another project's,
409 for a second settlement, 410 for an expired token, 403 for a bad signature.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from ..errors import SignalBufferFull, TokenAlreadyCompleted, TokenExpired, TokenNotFound, TokenSignatureInvalid
from ..records import iso
from ..signals import query_state
from ..tokens import check_signature
from .errors import ApiError
from .routing import Req, json_response
from .run_helpers import load_run

__all__ = ["h_complete_token", "h_expire_token", "h_get_token", "h_list_tokens", "h_query", "h_signal",
           "h_token_callback", "own_token", "settled"]


async def h_signal(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    name = str(req.body["name"])
    try:
        delivered = await req.baton.signal(run.id, name, req.body.get("data"))
    except SignalBufferFull as exc:
        raise ApiError(409, "signal_buffer_full", str(exc)) from None
    return json_response({"run_id": run.id, "name": name, "delivered": delivered})


async def h_query(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    published = await query_state(req.baton, run.id)
    return json_response({"run_id": run.id, "state": None if published is None else published["state"],
                          "updated_at": None if published is None else iso(int(published["updated_at"]))})


async def h_list_tokens(req: Req) -> web.StreamResponse:
    found = await req.baton.tokens.list(status=req.params.get("status"), tags=req.params.get("tags") or (),
                                        run_id=req.params.get("run_id"), project=req.project,
                                        limit=req.params["limit"])
    return json_response({"data": found})


async def own_token(req: Req) -> dict[str, Any]:
    """The token in the path if it is the caller's project's; 404 otherwise (as for runs)."""
    token = await req.baton.tokens.get(req.params["token_id"])
    if token is None or token["project"] != req.project:
        raise ApiError(404, "not_found", f"token {req.params['token_id']} not found")
    return token


async def settled(settle: Awaitable[dict[str, Any]]) -> web.StreamResponse:
    try:
        return json_response(await settle)
    except TokenNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except TokenAlreadyCompleted as exc:
        raise ApiError(409, "already_completed", str(exc)) from None
    except TokenExpired as exc:
        raise ApiError(410, "token_expired", str(exc)) from None


async def h_get_token(req: Req) -> web.StreamResponse:
    return json_response(await own_token(req))


async def h_complete_token(req: Req) -> web.StreamResponse:
    token = await own_token(req)
    return await settled(req.baton.tokens.complete(token["id"], req.body))


async def h_expire_token(req: Req) -> web.StreamResponse:
    token = await own_token(req)
    return await settled(req.baton.tokens.expire(token["id"]))


async def h_token_callback(req: Req) -> web.StreamResponse:
    token_id = req.params["token_id"]
    try:
        check_signature(req.state.settings, token_id, req.params["signature"])
    except TokenSignatureInvalid as exc:
        raise ApiError(403, "bad_signature", str(exc)) from None
    return await settled(req.baton.tokens.complete(token_id, req.body, by="callback"))
