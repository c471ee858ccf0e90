"""Trigger.dev's waitpoint tokens (``wait.completeToken``, ``wait.retrieveToken``, ``wait.listTokens`` of
@trigger.dev/sdk), served by Baton's tokens (runtime/tokens.py).

A Baton token is made by its run (``ctx.create_token`` in the handler, which then waits with
``ctx.wait_for_token``); a backend written for Trigger.dev completes it, reads it and lists them with the
SDK unchanged. ``wait.createToken`` from outside a run is refused: a Baton token belongs to the run that
made it. Statuses: waiting is WAITING, completed COMPLETED, expired TIMED_OUT.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from ..connection import server_ms
from .errors import ApiError
from .handlers_messages import own_token, settled
from .handlers_trigger import seconds_of
from .routing import Req, json_response

__all__ = ["TOKEN_STATUS", "h_tapi_token_complete", "h_tapi_token_create", "h_tapi_token_list",
           "h_tapi_token_retrieve"]

#: Baton's token status -> Trigger.dev's
TOKEN_STATUS = {"waiting": "WAITING", "completed": "COMPLETED", "expired": "TIMED_OUT"}
#: the most tokens one listing reads (what app.tokens.list takes), filtered here by what Baton does not index
_READ_MOST = 500


def _item(token: dict[str, Any]) -> dict[str, Any]:
    """A token as the SDK's WaitpointTokenItem: dates a token lacks are left out, never null."""
    out: dict[str, Any] = {"id": token["id"], "url": token["url"] or "", "status": TOKEN_STATUS[token["status"]],
                           "tags": token["tags"], "createdAt": token["created_at"], "timeoutAt": token["expires_at"]}
    if token["status"] == "completed" and token["settled_at"]:
        out["completedAt"] = token["settled_at"]
    return out


async def h_tapi_token_create(req: Req) -> web.StreamResponse:
    """wait.createToken: refused, with how a Baton token is made."""
    raise ApiError(400, "unsupported_operation", "a Baton waitpoint token is made by the run that waits for it "
                                                 "(ctx.create_token in its handler), not by a backend call")


async def h_tapi_token_complete(req: Req) -> web.StreamResponse:
    """wait.completeToken: the run waiting for the token resumes with ``data``."""
    token = await own_token(req)
    await settled(req.baton.tokens.complete(token["id"], (req.body or {}).get("data")))
    return json_response({"success": True})


async def h_tapi_token_retrieve(req: Req) -> web.StreamResponse:
    """wait.retrieveToken: the token, with its output as JSON text once completed."""
    token = await own_token(req)
    out = _item(token)
    if token["status"] == "completed":
        out |= {"output": orjson.dumps(token["output"]).decode(), "outputType": "application/json",
                "outputIsError": False}
    elif token["status"] == "expired":
        out["outputIsError"] = True
    return json_response(out)


def _created_ms(token: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(token["created_at"].replace("Z", "+00:00")).timestamp() * 1000)


async def h_tapi_token_list(req: Req) -> web.StreamResponse:
    """wait.listTokens: the project's tokens, newest first, one page (Baton's token listing pages no further)."""
    p = req.params
    statuses = {s for s, shown in TOKEN_STATUS.items() if shown in (p.get("filter[status]") or TOKEN_STATUS.values())}
    tags = set(p.get("filter[tags]") or ())
    after = p.get("filter[createdAt][from]")
    before = p.get("filter[createdAt][to]")
    if (period := p.get("filter[createdAt][period]")) is not None:
        seconds = seconds_of(period)
        now_ms = await server_ms(req.baton.redis)
        after = max(after or 0, now_ms - (seconds or 0) * 1000)
    found = await req.baton.tokens.list(project=req.project, limit=_READ_MOST)
    page = [t for t in found if t["status"] in statuses and (not tags or tags & set(t["tags"]))
            and (after is None or _created_ms(t) >= after) and (before is None or _created_ms(t) <= before)]
    return json_response({"data": [_item(t) for t in page[:p["page[size]"]]], "pagination": {}})
