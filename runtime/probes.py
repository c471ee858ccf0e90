"""Liveness and readiness of a worker node, answered on the metrics port from its thread.

The metrics port's server runs in a thread, so it keeps answering while the
event loop is blocked: that is what lets it report a stuck loop. The node's
actors write plain attributes of one :class:`Health` (each a value replaced
whole, atomic under the GIL); the probe thread only reads them.

- ``/livez`` fails (503) when restarting the process is the cure: the event loop
  has not run the watchdog's 100 ms tick for ``loop_stall_limit_s``, or the
  supervisor spent an actor's restart budget (the node is on its way out).
  A Redis outage never fails it: a node rides outages out.
- ``/readyz`` fails while the node is starting, cannot write to Redis (its last
  heartbeat failed: ``redis_error`` says why, a lost link or a server refusing
  writes such as OOM), or drains after SIGTERM.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

__all__ = ["Health", "start_probe_server"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class Health:
    """What the probes report, written by the supervisor and the watchdog."""

    def __init__(self, loop_stall_limit_s: float) -> None:
        self.loop_stall_limit_s = loop_stall_limit_s
        #: monotonic time of the watchdog's last tick (None until it runs)
        self.loop_beat: float | None = None
        #: set once the node's actors run
        self.started = False
        #: the last heartbeat reached Redis
        self.redis_ok = False
        #: why the last heartbeat did not: the link, or a server that refuses writes (OOM, READONLY ...)
        self.redis_error = ""
        #: SIGTERM (or a spent budget) started the drain
        self.draining = False
        #: why the node cannot go on (a spent restart budget); empty while healthy
        self.fatal = ""

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """(alive, details) for /livez."""
        if self.fatal:
            return False, {"status": "failing", "reason": self.fatal}
        beat = self.loop_beat
        if beat is not None:
            blocked = time.monotonic() - beat
            if blocked > self.loop_stall_limit_s:
                return False, {"status": "failing",
                               "reason": f"event loop blocked for {blocked:.1f}s (limit {self.loop_stall_limit_s}s)"}
        return True, {"status": "ok"}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details) for /readyz."""
        ready = self.started and self.redis_ok and not self.draining and not self.fatal
        details: dict[str, Any] = {"status": "ready" if ready else "unavailable", "started": self.started,
                                   "redis": self.redis_ok, "draining": self.draining}
        if not self.redis_ok and self.redis_error:
            details["redis_error"] = self.redis_error  # (unreachable, or reachable but refusing writes)
        return ready, details


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not worth a log line each."""


def _app(registry: CollectorRegistry, health: Health | None) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)
    checks = {"/livez": Health.liveness, "/readyz": Health.readiness}

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        check = checks.get(environ.get("PATH_INFO", ""))
        if check is None or health is None:
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        ok, details = check(health)
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [orjson.dumps(details)]

    return app


def start_probe_server(host: str, port: int, registry: CollectorRegistry, health: Health | None = None) -> int:
    """Serve /metrics (and /livez, /readyz when ``health`` is given) from a daemon thread; returns the port.

    Raises OSError when the address cannot be bound.
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(_Server):
        address_family = family

    server = make_server(host, port, _app(registry, health), Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="baton-metrics", daemon=True).start()
    return int(server.server_port)
