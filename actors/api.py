"""Api: serves the HTTP API (runtime/api) on the node's event loop.

Started by the supervisor when ``api_port`` is not 0, or alone by ``baton api``.
Readiness (``/ready``) turns 503 as soon as the node starts draining, so a load
balancer stops sending requests; the server itself stops after the executors
have drained and ``api_drain_s`` more (requests in flight finish), closing open
event streams within a second or two.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from runtime.api import ApiKeys, ApiMetrics, create_app
from runtime.api.errors import PROTOCOL_LOG
from runtime.api.protocol_errors import ApiRunner
from runtime.app import Baton
from runtime.listening import listening_sockets

from .base import Actor

__all__ = ["Api"]

access_log = logging.getLogger("baton.api.access")


class AccessLogger(AbstractAccessLogger):
    """One line per request: ``METHOD path status`` as the message, and with the JSON log format the
    fields a log pipeline filters on (method, path, status, duration, request id, remote address, agent)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log one answered request (aiohttp calls it once the response is sent)."""
        fields = {
            "http_method": request.method, "http_path": request.path, "http_status": response.status,
            "duration_ms": round(time * 1000, 3), "request_id": response.headers.get("X-Request-Id", ""),
            "remote": request.remote or "", "user_agent": request.headers.get("User-Agent", "")[:200],
            "response_bytes": response.body_length,
        }
        self.logger.info("%s %s %d %.1fms", request.method, request.path, response.status, time * 1000,
                         extra={"fields": fields})
#: longest accepted request line (method, path and query)
MAX_LINE = 65536


class Api(Actor[None]):
    """One aiohttp server on ``settings.api_host:api_port``."""

    name = "api"
    #: the keys (a generated development key stays the one printed) and the metrics registered once
    survives = ("keys", "api_metrics", "_announced")

    def __init__(self, app: Baton, registry: Any = None, ready: Callable[[], bool] | None = None,
                 sockets: Sequence[socket.socket] = ()) -> None:
        super().__init__()
        self.app = app
        self.settings = app.settings
        self.keys = ApiKeys.from_settings(self.settings)  # a malformed BATON_API_KEYS fails the node at start
        #: the Prometheus registry /metrics exposes (the node's); API request metrics are added to it
        self.registry = registry
        #: created by the first run(): a registry takes each metric name once
        self.api_metrics: ApiMetrics | None = None
        self.ready = ready
        #: the process's listening sockets (runtime/worker.py api_listening): each run() serves on copies,
        #: which its server closes at its end, so the port stays this process's across restarts. None
        #: given (tests, an API run by library code): each run() binds its own
        self.sockets = tuple(sockets)
        #: set once the server listens
        self.listening = asyncio.Event()
        #: (method, path) of every route served, once started
        self.routes: list[tuple[str, str]] = []
        self._announced = False

    def _announce(self) -> None:
        if self._announced:
            return
        self._announced = True
        if self.keys.generated_dev_key:
            # printed once, on purpose: the development key of `./dev up` (never a configured key)
            self.log.warning("development API key for project 'default': %s  (export BATON_API_KEY=%s; "
                             "BATON_API_DEV_KEY=auto is for development only)", self.keys.generated_dev_key,
                             self.keys.generated_dev_key)
        elif not self.keys:
            self.log.warning("no API keys configured (BATON_API_KEYS): every /v1 request will get 401")

    async def run(self) -> None:
        """Serve until stopped."""
        stopping = asyncio.Event()
        if self.api_metrics is None and self.registry is not None:
            self.api_metrics = ApiMetrics(self.registry)
        web_app = create_app(self.app, keys=self.keys, stopping=stopping, ready=self.ready, registry=self.registry,
                             metrics=self.api_metrics)
        # long query strings (filters) are fine up to 64 KiB; a longer request line is answered before any
        # handler runs (a 400 in the API's error shape: runtime/api/protocol_errors.py)
        self.routes = [(r.method, r.resource.canonical) for r in web_app.router.routes() if r.resource is not None]
        runner = ApiRunner(web_app, access_log=access_log, access_log_class=AccessLogger, shutdown_timeout=2.0,
                           max_line_size=MAX_LINE, logger=PROTOCOL_LOG)
        await runner.setup()
        host, port = self.settings.api_host, self.settings.api_port
        own: list[socket.socket] = []
        try:
            if not self.sockets:
                own = listening_sockets("the API", "api", host, port)
            for sock in self.sockets or own:
                await web.SockSite(runner, sock.dup()).start()
            self._announce()
            self.log.info("HTTP API on http://%s:%d (OpenAPI at /openapi.json; dashboard at /ui)", host, port)
            self.listening.set()
            await self.stopping.wait()
            # draining: readiness answers 503 and event streams end, but requests still get answers
            # until the load balancer has stopped routing here (a preStop hook covers the same on Kubernetes)
            stopping.set()
            await asyncio.sleep(self.settings.api_drain_s)
        finally:
            stopping.set()
            self.listening.clear()
            await runner.cleanup()
            for sock in own:
                sock.close()
