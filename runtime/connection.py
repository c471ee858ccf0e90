"""Redis connections: a client from settings (the quick start's embedded server: runtime/embedded.py)."""

from __future__ import annotations

import inspect
import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS, SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    RedisClusterException,
    RedisError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from .addresses import first_host_url, host_ports
from .closed_transport import CONNECTION_CLASSES
from .codec import digits, text
from .errors import ConfigError
from .sentinel import SENTINEL_SCHEMES, parse_sentinel_url, sentinel_client

__all__ = ["LONGEST_BLOCK_MS", "REPLY_TIMEOUT_MS", "KnownKeysCluster", "check_eviction_policy", "connect",
           "pool_size", "redis_url_problem", "server_ms", "socket_timeout_s"]

logger = logging.getLogger(__name__)

#: Times a command is sent again after a connection error (each on a new connection), backing
#: off 20 ms, 40 ms ... up to 0.5 s: about 1.1 s in all, so that a command caught in a Sentinel
#: failover (the old master answering READONLY while a sentinel still names it) rides it out
RECONNECT_RETRIES = 6
#: The same on Redis Cluster: once, which a connection the server closed while it sat in the pool
#: needs. More does not ride out a master that is down (its replica is promoted after the cluster's
#: node timeout, 15 s by default), and cost every call to it ~1.5 s before it failed: the actors
#: that serve every partition waited as long before they left its partitions out (the others' runs
#: waited with them), and every submission waited for a read of a node-wide key on it
CLUSTER_RECONNECT_RETRIES = 1
#: The longest wait any of Baton's blocking commands asks of the server (hand-off pops, stream
#: reads, the API's event streams); a durable write's WAIT asks for ``durable_timeout_ms``
LONGEST_BLOCK_MS = 1_000
#: How late a reply may be, past the wait its command asked for, before its connection counts
#: as lost (the ``redis_timeout_ms`` setting's default; 10 s in all with a blocking read's 1 s).
#: Redis answers in microseconds and runs every Baton script in milliseconds, so a reply that
#: late is not coming (a half-open or black-holed connection: see runtime/stale_connections.py),
#: and the command goes again on a new connection. Not less by default: a server that stalls
#: for longer (a fork, a slow disk's fsync, a long command, DEBUG SLEEP) runs the first call
#: when it wakes, and a lease granted in a reply nobody reads then is lost to its node.
REPLY_TIMEOUT_MS = 9_000
#: How long opening a connection may take
CONNECT_TIMEOUT_S = 5.0


#: Connections a node may need besides one per handler slot: the actors' own calls (fetcher,
#: leaser, reporter, intake batches, observer, scheduler, heartbeat), pub/sub, and the HTTP
#: API's requests and event streams when the node serves it.
SHARED_CONNECTIONS = 200


def socket_timeout_s(redis_timeout_ms: int = REPLY_TIMEOUT_MS, durable_timeout_ms: int = 0) -> float:
    """How long a command waits for its reply (redis-py's ``socket_timeout``): the longest wait a
    command may ask of the server (LONGEST_BLOCK_MS, or a durable write's WAIT of
    ``durable_timeout_ms``) plus ``redis_timeout_ms``."""
    return (max(LONGEST_BLOCK_MS, durable_timeout_ms) + redis_timeout_ms) / 1000


def pool_size(concurrency: int, partitions: int) -> int:
    """Most connections a node's client may open: one per handler slot (a step or a log flush
    holds one while it waits for Redis), a blocking read per submission stream and hand-off
    list, and the shared ones. redis-py's default (100) is fewer than a node at the default
    concurrency needs, and a call past it fails at once instead of waiting."""
    return concurrency + 2 * (partitions + 1) + SHARED_CONNECTIONS


def connect(url: str, cluster: bool = False, max_connections: int | None = None, **kwargs: Any) -> Any:
    """A redis.asyncio client (or cluster client) for the URL.

    ``rediss://`` enables TLS; ``redis://user:password@host`` uses an ACL user.
    Connections are created lazily; the hiredis parser is used when installed.
    ``max_connections`` sizes the pool (see :func:`pool_size`); the URL's own option wins.
    A URL :func:`redis_url_problem` refuses raises ConfigError saying why (the checks settings make).
    """
    # the one parser of a URL's rules: redis-py's own would fail later, and less clearly
    # (several hosts without ``cluster``: "Port could not be cast to integer value")
    problem = redis_url_problem(url, cluster)
    if problem:
        raise ConfigError(f"Redis URL: {problem}")
    if max_connections is not None:
        kwargs.setdefault("max_connections", max_connections)
    # no CLIENT SETINFO on connect: an ACL user needs no CLIENT rights (and
    # Redis < 7.2 has no such command, so the shipped ACL cannot name it)
    kwargs.setdefault("driver_info", None)
    # a reply that never comes (a half-open or black-holed connection) fails the
    # command instead of stalling its actor forever; a URL's own options win
    kwargs.setdefault("socket_timeout", socket_timeout_s())
    kwargs.setdefault("socket_connect_timeout", CONNECT_TIMEOUT_S)
    scheme = urlsplit(url).scheme.lower()
    if scheme != "unix":  # (TCP keepalive: a unix socket's connection takes no such option)
        kwargs.setdefault("socket_keepalive", True)
    # redis-py's client makes no retries by default: a connection the server
    # closed while it sat in the pool (a restart, a failover) would fail the
    # next command sent on it, though a fresh connection would succeed. Its
    # cluster client retries 10 times, backing off up to 1 s: about 4 s before a
    # call to a master that is down fails, which an actor serving every partition
    # would spend once per partition of that master (runtime/partition_outages.py)
    retries = CLUSTER_RECONNECT_RETRIES if cluster else RECONNECT_RETRIES
    kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=0.5, base=0.02), retries))
    if cluster:  # the URL may list several entry points: the first is the URL, the others startup nodes
        others = [ClusterNode(host, port) for host, port in _entry_points(url)[1:]]
        return KnownKeysCluster.from_url(first_host_url(url), startup_nodes=others, **kwargs)
    kwargs.setdefault("retry_on_error", [RedisConnectionError, RedisTimeoutError])
    if scheme in SENTINEL_SCHEMES:
        return sentinel_client(url, **kwargs)
    if scheme in URL_SCHEMES:  # a write on a closed transport is a ConnectionError
        kwargs.setdefault("connection_class", CONNECTION_CLASSES[scheme])
    return aioredis.from_url(url, **kwargs)


class KnownKeysCluster(RedisCluster):
    """redis-py's cluster client, finding the keys of FCALL, XREAD and XREADGROUP itself.

    redis-py knows where EVALSHA's keys are but asks the server for those
    commands' keys (COMMAND GETKEYS, twice per call: two round trips before
    every Lua call and every stream read, the stream pickup path included).
    Their first key is at a known place; the keys of one Baton call share a
    hash tag, so its slot is the call's. Any other command goes redis-py's way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # redis-py's cluster takes no connection class: Baton's (runtime/closed_transport.py) goes
        # where its nodes, those known now and those found later, make their connections from
        tls = self.connection_kwargs.get("connection_class") is SSLConnection
        translating: Any = CONNECTION_CLASSES["rediss" if tls else "redis"]
        self.connection_kwargs["connection_class"] = translating  # (the nodes manager's, too)
        for node in self.startup_nodes:
            node.connection_class = translating

    async def _determine_slot(self, command: str, *args: Any) -> int:
        key = _first_key(command, args)
        if key is not None:
            return self.keyslot(key)
        return int(await super()._determine_slot(command, *args))


def _first_key(command: str, args: tuple[Any, ...]) -> Any:
    """The first key of an FCALL / FCALL_RO (after numkeys) or XREAD / XREADGROUP (after STREAMS), else None."""
    name = command.upper()
    if name in ("FCALL", "FCALL_RO"):
        return args[2] if len(args) > 2 and int(args[1]) > 0 else None
    if name in ("XREAD", "XREADGROUP"):
        for i, arg in enumerate(args[:-1]):
            if isinstance(arg, str | bytes) and text(arg).upper() == "STREAMS":
                return args[i + 1]
    return None


#: URL schemes connect() hands to redis-py, with Baton's connection class each (Sentinel's are in
#: runtime/sentinel.py)
URL_SCHEMES = tuple(CONNECTION_CLASSES)
#: options a URL's query may carry: redis-py's typed ones and client_name; with TLS, the ssl_* ones.
#: Others (decode_responses, encoding ...) would change what Baton reads back, or fail at connect time.
_URL_OPTIONS = frozenset(URL_QUERY_ARGUMENT_PARSERS) | {"client_name", "username", "password"}
_TLS_OPTIONS = frozenset(p for p in inspect.signature(SSLConnection.__init__).parameters if p.startswith("ssl_"))


def redis_url_problem(url: str, cluster: bool = False) -> str:
    """What is wrong with a Redis URL for connect(), or "" when nothing is.

    Checked when settings are built, so a bad URL is a configuration error
    at start rather than redis-py's ValueError (or a TypeError at the first
    command). The message never repeats the URL: it may hold a password.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in SENTINEL_SCHEMES:
        if cluster:
            return "a Redis Cluster entry point (BATON_REDIS_CLUSTER) cannot be a Sentinel URL"
        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            return str(exc)
        return ""
    if scheme not in URL_SCHEMES:
        shown = f"{scheme}://" if scheme and "://" in url else "(none)"
        return (f"unsupported scheme {shown}: use redis://, rediss:// (TLS), unix:// or "
                "redis+sentinel:// (rediss+sentinel:// for TLS)")
    allowed = _URL_OPTIONS | (_TLS_OPTIONS if scheme == "rediss" else frozenset())
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - allowed)
    if unknown:
        return f"unsupported option {unknown[0]!r} in the query (supported: {', '.join(sorted(allowed))})"
    if scheme == "unix":
        if cluster:
            return "a Redis Cluster entry point (BATON_REDIS_CLUSTER) needs redis:// or rediss://"
        return "" if parts.path else "unix:// needs a socket path (unix:///path/to/redis.sock)"
    if "," in parts.netloc.rpartition("@")[2]:
        if not cluster:
            return ("several hosts are a Redis Cluster's entry points (set BATON_REDIS_CLUSTER); "
                    "for Sentinel, use redis+sentinel://")
        try:
            _entry_points(url)
        except ValueError as exc:
            return str(exc)
        return redis_url_problem(first_host_url(url), cluster)
    try:
        port = parts.port
    except ValueError:
        return "the port must be a number between 1 and 65535"
    if port is not None and not 1 <= port <= 65535:
        return "the port must be a number between 1 and 65535"
    if not parts.hostname:
        return "a host is required (redis://host:port)"
    path = unquote(parts.path).strip("/")
    if path and not digits(path):
        return "the path must be a database number (redis://host:port/0)"
    try:
        db = parse_url(url).get("db", 0)
    except ValueError as exc:  # a query option of the wrong type; redis-py's message names it
        return str(exc)
    if cluster and db:
        return "Redis Cluster has only database 0 (BATON_REDIS_CLUSTER is set)"
    return ""


def _entry_points(url: str) -> list[tuple[str, int]]:
    """The nodes a Cluster URL lists (``redis://host1:7000,host2:7000``), first the URL's own; one
    host without a port is the URL as redis-py reads it."""
    netloc = urlsplit(url).netloc
    if "," not in netloc.rpartition("@")[2]:
        return []
    return host_ports(netloc, "each Redis Cluster entry point", "redis://host1:7000,host2:7000")


async def server_ms(client: Any) -> int:
    """The Redis server's clock in epoch milliseconds: the one clock every node agrees on."""
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def check_eviction_policy(client: Any) -> str | None:
    """Warn (and return the policy) when Redis may evict Baton's keys.

    Read from ``INFO memory`` rather than ``CONFIG GET``: managed Redis often
    disables CONFIG, and an ACL user allowed CONFIG GET could read every
    setting, passwords included (see the README's ACL section).
    """
    try:
        reply = await client.info("memory")
    except (RedisError, RedisClusterException):
        logger.info("could not read maxmemory_policy (INFO not allowed?); make sure it is noeviction")
        return None
    # a cluster client answers per node ({node: info}); every node has the same policy in a sane cluster
    infos = reply.values() if reply and all(isinstance(v, dict) for v in reply.values()) else [reply]
    policies = {text(info.get("maxmemory_policy") or "") for info in infos if isinstance(info, dict)} - {""}
    policy = sorted(policies)[0] if policies else None
    evicting = sorted(p for p in policies if p != "noeviction")
    if evicting:
        policy = evicting[0]
        logger.warning(
            "Redis maxmemory-policy is %s: Redis may evict run records, leases and queues "
            "under memory pressure, losing work. Set maxmemory-policy noeviction.", policy
        )
    return policy
