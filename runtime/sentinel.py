"""Redis Sentinel: the ``redis+sentinel://`` URL and a client that follows the master.

URL form (``rediss+sentinel://`` for TLS to the data nodes)::

    redis+sentinel://[user:password@]host1:26379[,host2:26379,...]/service_name[/db][?options]

- user and password authenticate to the Redis data nodes (an ACL user);
- ``sentinel_username`` / ``sentinel_password`` in the query authenticate to
  the sentinels themselves, when they require it;
- the other query options are redis-py's typed connection options, as for
  ``redis://`` (``socket_timeout``, ``health_check_interval`` ...).

The client is redis-py's Sentinel ``master_for``: every new connection asks the
sentinels for the master's address (never once at start only), and a reply of
READONLY (the node was demoted to a replica) drops the connection, so the next
try resolves the new master. Baton's retries of connection errors then carry
every path over a failover: script calls, blocking reads, pub/sub, pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection
from redis.connection import URL_QUERY_ARGUMENT_PARSERS

from .addresses import host_ports
from .closed_transport import TranslatesClosedTransport
from .codec import digits
from .stale_connections import ReplacesStaleConnections

__all__ = ["SENTINEL_SCHEMES", "MasterConnection", "MasterSSLConnection", "SentinelTarget", "parse_sentinel_url",
           "sentinel_client"]

#: URL schemes of a Sentinel-managed master (plain and TLS to the data nodes)
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
#: query options that configure the connection to the sentinels, not to the data nodes
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_auth: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Parse a Sentinel URL; ValueError names what is wrong (never repeating the URL: it may hold a password)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SENTINEL_SCHEMES:
        raise ValueError("not a redis+sentinel:// URL")
    sentinels = host_ports(parts.netloc, "each sentinel", "redis+sentinel://host1:26379,host2:26379/service_name")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("the path must name the Sentinel service (redis+sentinel://host:26379/mymaster)")
    if len(path) > 2 or (len(path) == 2 and not digits(path[1])):
        raise ValueError("the path must be /service_name or /service_name/db (a database number)")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    options: dict[str, Any] = {}
    for name, raw in query.items():
        if name in _SENTINEL_AUTH:
            continue
        parser: Any = URL_QUERY_ARGUMENT_PARSERS.get(name)
        if parser is None and name not in ("client_name", "username", "password"):
            supported = ", ".join(sorted({*URL_QUERY_ARGUMENT_PARSERS, "client_name", "username", "password",
                                          *_SENTINEL_AUTH}))
            raise ValueError(f"unsupported option {name!r} in the query (supported: {supported})")
        try:
            options[name] = parser(raw) if parser is not None else raw
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid value for the {name!r} option") from exc
    user_in_url, _, password_in_url = parts.netloc.rpartition("@")[0].partition(":")
    # as for redis://, the data nodes' credentials may also come as ?username= / ?password=
    username = options.pop("username", None) or unquote(user_in_url) or None
    password = options.pop("password", None) or unquote(password_in_url) or None
    return SentinelTarget(
        sentinels=sentinels, service=path[0], db=int(path[1]) if len(path) == 2 else 0,
        username=username, password=password, tls=scheme == "rediss+sentinel",
        sentinel_auth={k.removeprefix("sentinel_"): query[k] for k in _SENTINEL_AUTH if query.get(k)},
        options=options,
    )


class _FollowsMaster:
    """Every socket a master connection opens goes to the master the sentinels name *now*.

    redis-py's SentinelManagedConnection asks the sentinels only in ``connect()``; a connection
    dropped after READONLY (its server was demoted) and reopened by a command's retry goes through
    ``connect_check_health`` instead, back to its old host: every retry met READONLY again."""

    connection_pool: Any
    host: str
    port: int
    #: set by connect_to, which was just given the master's address: no second query of the sentinels
    _address_fresh = False

    async def connect_to(self, address: tuple[str, int]) -> None:
        self._address_fresh = True
        try:
            await super().connect_to(address)  # type: ignore[misc]  # the redis-py class after this mixin
        finally:
            self._address_fresh = False

    async def _connect(self) -> None:
        if self.connection_pool.is_master and not self._address_fresh:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super()._connect()  # type: ignore[misc]  # the redis-py connection class after this mixin


class MasterConnection(_FollowsMaster, ReplacesStaleConnections, TranslatesClosedTransport, SentinelManagedConnection):
    """A connection to the Sentinel-managed master (see :class:`_FollowsMaster`)."""


class MasterSSLConnection(_FollowsMaster, ReplacesStaleConnections, TranslatesClosedTransport,
                          SentinelManagedSSLConnection):
    """A TLS connection to the Sentinel-managed master (see :class:`_FollowsMaster`)."""


def sentinel_client(url: str, **kwargs: Any) -> Any:
    """A client of the master a Sentinel URL names; kwargs apply to connections to the data nodes
    (and their timeouts to the sentinels too). Options in the URL win."""
    target = parse_sentinel_url(url)
    connection = {**kwargs, **target.options, "db": target.db, "username": target.username,
                  "password": target.password}
    if target.tls:
        connection["ssl"] = True
    to_sentinels = {k: v for k, v in connection.items()
                    if k in ("socket_timeout", "socket_connect_timeout", "socket_keepalive", "driver_info")}
    # redis-py before 8.2 leaves it unannotated (unused-ignore: later versions annotate it)
    sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
        target.sentinels, sentinel_kwargs={**to_sentinels, **target.sentinel_auth}, **connection)
    return sentinel.master_for(target.service, redis_class=aioredis.Redis,
                               connection_class=MasterSSLConnection if target.tls else MasterConnection)
