"""A reply that never came makes every older connection to that server suspect.

A half-open connection (the server, or a proxy, sidecar or NAT between, gone without
closing it) answers nothing: a command sent on it waits out the reply timeout
(runtime/connection.py) and fails, and redis-py sends it again on a new connection.
Whatever left one connection half-open left every connection to that server open at
the time so too, and a pool hands its idle connections out one at a time: each would
cost its caller another whole timeout, for as long as the pool holds them (a node
stalled again and again, minutes after the fault was over).

So a reply timeout marks the server, and every connection to it last known to work before
then (opened, or answered) is replaced as it is next taken for a command: from its pool,
by a Redis Cluster node (which checks ``should_reconnect()`` where a pool calls
``connect()``), or by runtime/direct_calls.py. One connect each; a connection that
answers after the mark has shown it works and is kept. A connection in use is left alone
(a blocking read, or the WATCH of a transaction under way, goes on); if it is half-open
too, its own command times out. The mark is per process and per server address.
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
    """Whether ``conn`` is open and was last known to work before a reply from its server timed out."""
    if not _timed_out_at:  # (no reply ever timed out: the common case, on every command)
        return False
    works_at: float = getattr(conn, "works_at", math.inf)
    return bool(conn.is_connected) and works_at < _timed_out_at.get(_server(conn), -math.inf)


class ReplacesStaleConnections:
    """Connection mixin: a reply timeout marks the server; a stale connection reconnects when taken."""

    is_connected: bool
    #: when this connection was last known to work (monotonic): opened, or a reply read after its
    #: server was marked; inf until it is opened
    works_at = math.inf

    async def connect(self) -> None:
        """redis-py's connect (a pool calls it on every connection it hands out): a stale
        connection is closed first, and opened again."""
        if stale(self):
            await self.disconnect()  # type: ignore[attr-defined]  # the redis-py class after this mixin
        await super().connect()  # type: ignore[misc]

    def should_reconnect(self) -> bool:
        """redis-py's mark, or stale: a cluster node checks it on the connections it hands out (it
        does not call connect() on them), and every pool on those it takes back."""
        return bool(super().should_reconnect()) or stale(self)  # type: ignore[misc]

    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[misc]
        self.works_at = time.monotonic()

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py's read; a reply timeout (redis-py has closed this connection) marks the server."""
        try:
            reply = await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except RedisTimeoutError:
            server = _server(self)
            now = time.monotonic()
            if _timed_out_at.get(server, -math.inf) < self.works_at:  # (once per fault, not once per connection)
                # (a process paused as long, SIGSTOP or a frozen VM, times its reads out too: the watchdog
                # logs such a pause, so the line says both)
                logger.warning("no reply from Redis at %s within %gs (or this process was paused as long): the "
                               "connection counts as lost, and the others opened to it before now are replaced as "
                               "they are next used",
                               self._host_error(), self.socket_timeout)  # type: ignore[attr-defined]
            _timed_out_at[server] = now
            raise
        # a reply after the mark shows the connection works: kept (None from a read with a timeout of
        # its own, a subscription's wait for a message, may be no reply at all)
        if _timed_out_at and (reply is not None or kwargs.get("timeout") is None) and stale(self):
            self.works_at = time.monotonic()
        return reply
