"""Handlers of the webhook endpoints: a project's webhooks, their deliveries, redelivery."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from ..connection import server_ms
from ..deliveries import list_deliveries, redeliver
from ..errors import WebhookError
from ..records import iso
from ..webhooks import (
    Webhook,
    check_description,
    check_events,
    check_secret,
    check_url,
    delete_webhook,
    get_webhook,
    list_webhooks,
    new_webhook,
    save_webhook,
)
from .errors import ApiError
from .routing import Req, json_response

__all__ = [
    "h_create_webhook", "h_delete_webhook", "h_get_webhook", "h_list_deliveries", "h_list_webhooks",
    "h_redeliver", "h_update_webhook",
]

_TIMES = ("created_at", "updated_at", "delivered_at", "next_attempt_at")


def _api_error(exc: WebhookError) -> ApiError:
    return ApiError(404 if exc.code == "not_found" else 400, exc.code, str(exc))


def _public(hook: Webhook) -> dict[str, Any]:
    return {**hook.public(), "created_at": iso(hook.created_at)}


async def _hook(req: Req) -> Webhook:
    try:
        return await get_webhook(req.baton.redis, req.baton.keys, req.project, str(req.params["webhook_id"]))
    except WebhookError as exc:
        raise _api_error(exc) from None


async def h_list_webhooks(req: Req) -> web.StreamResponse:
    hooks = await list_webhooks(req.baton.redis, req.baton.keys, req.project)
    return json_response({"data": [_public(h) for h in hooks]})


async def h_create_webhook(req: Req) -> web.StreamResponse:
    body, baton = req.body, req.baton
    try:
        hook = new_webhook(req.project, body.get("url"), body.get("events"), body.get("secret"),
                           body.get("description", ""), now_ms=await server_ms(baton.redis))
        await save_webhook(baton.redis, baton.keys, hook, baton.webhook_projects)
    except WebhookError as exc:
        raise _api_error(exc) from None
    return json_response({**_public(hook), "secret": hook.secret}, status=201,
                         headers={"Location": f"/v1/webhooks/{hook.id}"})


async def h_get_webhook(req: Req) -> web.StreamResponse:
    return json_response(_public(await _hook(req)))


async def h_update_webhook(req: Req) -> web.StreamResponse:
    hook, body, baton = await _hook(req), req.body, req.baton
    try:
        changes: dict[str, Any] = {}
        if "url" in body:
            changes["url"] = check_url(body["url"])
        if "events" in body:
            changes["events"] = check_events(body["events"])
        if "secret" in body:
            changes["secret"] = check_secret(body["secret"])
        if "description" in body:
            changes["description"] = check_description(body["description"])
        hook = dataclasses.replace(hook, **changes)
        await save_webhook(baton.redis, baton.keys, hook, baton.webhook_projects)
    except WebhookError as exc:
        raise _api_error(exc) from None
    return json_response(_public(hook))


async def h_delete_webhook(req: Req) -> web.StreamResponse:
    hook = await _hook(req)
    await delete_webhook(req.baton.redis, req.baton.keys, req.project, hook.id, req.baton.webhook_projects)
    return json_response({"id": hook.id, "deleted": True})


def _delivery(found: dict[str, Any]) -> dict[str, Any]:
    return {**found, **{name: iso(found[name]) for name in _TIMES}}


async def h_list_deliveries(req: Req) -> web.StreamResponse:
    hook = await _hook(req)
    found = await list_deliveries(req.baton.redis, req.baton.keys, hook.id, req.params.get("status"),
                                  int(req.params.get("limit") or 100))
    return json_response({"data": [_delivery(d) for d in found]})


async def h_redeliver(req: Req) -> web.StreamResponse:
    hook, baton = await _hook(req), req.baton
    try:
        found = await redeliver(baton.redis, baton.keys, hook, str(req.params["delivery_id"]),
                                await server_ms(baton.redis))
    except WebhookError as exc:
        raise _api_error(exc) from None
    return json_response(_delivery(found), status=202)
