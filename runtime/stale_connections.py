"""A reply that never came makes every older connection to that server suspect.

A half-open connection (the server, or a proxy, sidecar or NAT between, gone without
closing it) answers nothing: a command sent on it waits out the reply timeout
(runtime/connection.py) and fails, and redis-py sends it again on a new connection.
Whatever left one connection half-open left every connection to that server open at
the time so too, and a pool hands its idle connections out one at a time: each would
cost its caller another whole timeout, for as long as the pool holds them (a node
stalled again and again, minutes after the fault was over).

So a reply timeout marks the server, and every connection to it opened before then is
replaced as it is next taken for a command (from its pool, or by runtime/direct_calls.py):
one connect each, half-open or not. A connection in use is left alone (a blocking read,
or the WATCH of a transaction under way, goes on); if it is half-open too, its own
command times out. The mark is per process and per server address.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["ReplacesStaleConnections", "stale"]

logger = logging.getLogger(__name__)

#: per server address, when a reply on a connection to it last timed out (monotonic)
_timed_out_at: dict[object, float] = {}


def _server(conn: Any) -> object:
    """The address a connection talks to: a unix socket's path, else (host, port)."""
    return getattr(conn, "path", "") or (getattr(conn, "host", None), getattr(conn, "port", None))


def stale(conn: Any) -> bool:
    """Whether ``conn`` is open and was opened before a reply from its server last timed out."""
    opened_at: float = getattr(conn, "opened_at", math.inf)
    return bool(conn.is_connected) and opened_at < _timed_out_at.get(_server(conn), -math.inf)


class ReplacesStaleConnections:
    """Connection mixin: a reply timeout marks the server; a stale connection reconnects when taken."""

    is_connected: bool
    #: when this connection's socket was opened (monotonic; inf until it is)
    opened_at = math.inf

    async def connect(self) -> None:
        """redis-py's connect (a pool calls it on every connection it hands out): a stale
        connection is closed first, and opened again."""
        if stale(self):
            await self.disconnect()  # type: ignore[attr-defined]  # the redis-py class after this mixin
        await super().connect()  # type: ignore[misc]

    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[misc]
        self.opened_at = time.monotonic()

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py's read; a reply timeout (redis-py has closed this connection) marks the server."""
        try:
            return await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except RedisTimeoutError:
            server = _server(self)
            now = time.monotonic()
            if _timed_out_at.get(server, -math.inf) < self.opened_at:  # (once per fault, not once per connection)
                logger.warning("no reply from Redis at %s within %gs: the connection counts as lost, and the "
                               "others opened to it before now are replaced as they are next used",
                               self._host_error(), self.socket_timeout)  # type: ignore[attr-defined]
            _timed_out_at[server] = now
            raise
