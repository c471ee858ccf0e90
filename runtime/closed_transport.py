"""A write on a connection whose transport was already closed is a lost connection.

uvloop raises ``RuntimeError("unable to perform operation on <TCPTransport
closed=True ...>; the handler is closed")`` for a write on a transport the
peer closed (a Redis restarting or failing over), where asyncio's own
transports fail with an OSError or quietly. redis-py passes it on as it is:
its retries (which reconnect on a ConnectionError) do not happen, callers see
an error no Redis error handler expects, and the supervisor would count a
Redis outage as a crash. Baton's connections translate it to the
ConnectionError it is.
"""

from __future__ import annotations

from typing import Any, NoReturn

from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from .stale_connections import ReplacesStaleConnections

__all__ = ["CONNECTION_CLASSES", "TranslatesClosedTransport", "closed_transport", "raise_translated"]

#: how uvloop ends the message of a write on a closed transport
_CLOSED = "the handler is closed"


def closed_transport(exc: BaseException) -> bool:
    """Whether ``exc`` is uvloop's error for a write on a transport that was closed."""
    return isinstance(exc, RuntimeError) and str(exc).endswith(_CLOSED)


def raise_translated(exc: RuntimeError) -> NoReturn:
    """Raise ``exc`` (caught on a write) as the ConnectionError it is when the transport was
    closed, else as it is."""
    if closed_transport(exc):
        raise RedisConnectionError(f"Error while writing: the connection was closed ({exc})") from exc
    raise exc


class TranslatesClosedTransport:
    """Connection mixin: a write on a closed transport raises ConnectionError (see the module docstring)."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """redis-py's send; uvloop's closed-transport RuntimeError becomes a ConnectionError
        (redis-py has dropped the connection already)."""
        try:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]  # the class after this
        except RuntimeError as exc:
            raise_translated(exc)


class PlainConnection(ReplacesStaleConnections, TranslatesClosedTransport, Connection):
    """A redis:// connection (see :class:`TranslatesClosedTransport`, runtime/stale_connections.py)."""


class TLSConnection(ReplacesStaleConnections, TranslatesClosedTransport, SSLConnection):
    """A rediss:// connection (see :class:`TranslatesClosedTransport`, runtime/stale_connections.py)."""


class UnixConnection(ReplacesStaleConnections, TranslatesClosedTransport, UnixDomainSocketConnection):
    """A unix:// connection (see :class:`TranslatesClosedTransport`, runtime/stale_connections.py)."""


#: Baton's connection class per URL scheme (Sentinel's are in runtime/sentinel.py)
CONNECTION_CLASSES: dict[str, type[AbstractConnection]] = {
    "redis": PlainConnection, "rediss": TLSConnection, "unix": UnixConnection,
}
