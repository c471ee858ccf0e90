"""Handlers of the admission endpoints: a job's or queue's max_queued (see runtime/admission.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..admission import read_max_queued, set_max_queued
from .handlers_operator import known_job, known_queue
from .routing import Req, json_response

__all__ = ["h_get_admission", "h_set_admission"]


async def _scope(req: Req) -> dict[str, Any]:
    if "queue" in req.params:
        return {"queue": await known_queue(req)}
    return {"job": await known_job(req)}


async def _answer(req: Req, scope: dict[str, Any]) -> web.Response:
    [(kind, name)] = scope.items()
    return json_response({"scope": kind, "name": name, **await read_max_queued(req.baton, **scope)})


async def h_get_admission(req: Req) -> web.StreamResponse:
    return await _answer(req, await _scope(req))


async def h_set_admission(req: Req) -> web.StreamResponse:
    scope = await _scope(req)
    await set_max_queued(req.baton, req.body["max_queued"], **scope)
    return await _answer(req, scope)
