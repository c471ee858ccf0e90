"""Handlers of the schedule endpoints (see runtime/schedules.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..cron import CronSchedule
from ..errors import ConfigError
from ..schedules import backfill, get_schedule, trigger_now, upsert_schedule
from .errors import ApiError
from .routing import Req, json_response
from .run_helpers import parse_ms

__all__ = [
    "h_backfill_schedule", "h_delete_schedule", "h_get_schedule", "h_list_schedules", "h_pause_schedule",
    "h_put_schedule", "h_resume_schedule", "h_trigger_schedule",
]


async def _schedule(req: Req) -> dict[str, Any]:
    found = await get_schedule(req.baton, str(req.params["name"]))
    if found is None:
        raise ApiError(404, "not_found", f"schedule {req.params['name']} not found")
    return found


def _found(value: dict[str, Any] | None, name: str) -> dict[str, Any]:
    if value is None:
        raise ApiError(404, "not_found", f"schedule {name} not found")
    return value


async def h_list_schedules(req: Req) -> web.StreamResponse:
    return json_response({"data": await req.baton.list_schedules()})


async def h_get_schedule(req: Req) -> web.StreamResponse:
    return json_response(await _schedule(req))


async def h_put_schedule(req: Req) -> web.StreamResponse:
    name = str(req.params["name"])
    body = req.body
    try:
        schedule = CronSchedule(name=name, job=body["job"], expression=body["expression"],
                                timezone=body.get("timezone", "UTC"), input=body.get("input"),
                                overlap=body.get("overlap", "allow"), catch_up=body.get("catch_up", "skip"),
                                options=dict(body.get("options") or {}))
    except ConfigError as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None
    created = await upsert_schedule(req.baton, schedule)
    return json_response(_found(await get_schedule(req.baton, name), name), status=201 if created else 200)


async def h_delete_schedule(req: Req) -> web.StreamResponse:
    name = str((await _schedule(req))["name"])
    await req.baton.delete_schedule(name)
    return json_response({"name": name, "deleted": True})


async def h_pause_schedule(req: Req) -> web.StreamResponse:
    name = str((await _schedule(req))["name"])
    await req.baton.pause_schedule(name)
    return json_response(_found(await get_schedule(req.baton, name), name))


async def h_resume_schedule(req: Req) -> web.StreamResponse:
    name = str((await _schedule(req))["name"])
    await req.baton.resume_schedule(name)
    return json_response(_found(await get_schedule(req.baton, name), name))


async def h_trigger_schedule(req: Req) -> web.StreamResponse:
    name = str(req.params["name"])
    return json_response(_found(await trigger_now(req.baton, name), name))


async def h_backfill_schedule(req: Req) -> web.StreamResponse:
    name = str(req.params["name"])
    start, end = parse_ms(req.body["start"], "start", "invalid_body"), parse_ms(req.body["end"], "end", "invalid_body")
    return json_response(_found(await backfill(req.baton, name, start, end), name))
