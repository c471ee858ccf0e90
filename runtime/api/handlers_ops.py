"""Handlers of the operational endpoints: health, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from .errors import ApiError
from .routing import Req, json_response

__all__ = [
    "h_health", "h_metrics", "h_openapi", "h_ready",
]

# -- operations -----------------------------------------------------------------


async def h_health(req: Req) -> web.StreamResponse:
    return json_response({"status": "ok"})


async def h_ready(req: Req) -> web.StreamResponse:
    draining = req.state.ready is not None and not req.state.ready()
    try:
        redis_ok = bool(await req.baton.redis.ping())
    except Exception:  # noqa: BLE001 - any failure means not ready
        redis_ok = False
    ok = redis_ok and not draining and not req.state.stopping.is_set()
    return json_response({"status": "ready" if ok else "unavailable", "redis": redis_ok,
                          "draining": draining or req.state.stopping.is_set()}, status=200 if ok else 503)


async def h_metrics(req: Req) -> web.StreamResponse:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    port = req.state.settings.metrics_port
    if port:  # the public port does not expose them: scrape the metrics port (inside the cluster)
        raise ApiError(404, "metrics_elsewhere", f"metrics are served on the metrics port ({port}), not here")

    body = generate_latest(req.state.registry or REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def h_openapi(req: Req) -> web.StreamResponse:
    from .openapi import document

    return json_response(document())
