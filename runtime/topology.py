"""Start-up checks that the Redis a node was given is the Redis it was configured for.

A misconfiguration here would otherwise hang a node or corrupt a deployment
quietly: a Cluster node addressed without the cluster flag answers MOVED to
most keys, a Sentinel service name that no sentinel knows looks like an outage
forever, and two nodes with different partition counts route the same run id
to different partitions. Each is a :class:`~runtime.errors.ConfigError` with a
message that says what to change; a node that cannot reach any sentinel at all
retries for :data:`SENTINEL_START_WAIT_S` and then fails the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AskError, ClusterDownError, RedisClusterException, RedisError, ResponseError

from .codec import text
from .errors import ConfigError, RedisUnavailable
from .sentinel import SENTINEL_SCHEMES, parse_sentinel_url
from .settings import Settings, setting_names

__all__ = [
    "SENTINEL_START_WAIT_S", "SentinelStartWatch", "check_deployment", "check_fsync", "check_server",
    "sentinel_problem",
]

#: How long a starting node retries when no sentinel of its URL answers, before it gives up
SENTINEL_START_WAIT_S = 20.0
_CLUSTER_WITHOUT_FLAG = (f"the server at {setting_names('redis_url')} is a Redis Cluster node: set "
                         f"{setting_names('redis_cluster')} to true (BATON_REDIS_CLUSTER=true)")
#: Timeout of one question to one sentinel
_SENTINEL_ASK_S = 2.0


async def check_server(redis: Any, settings: Settings) -> None:
    """Refuse a server whose kind (Cluster or not) disagrees with ``redis_cluster``."""
    try:
        info = await redis.info("cluster")
    except RedisClusterException as exc:
        # the cluster client could not build its slot map: no cluster there, or nothing reachable
        if "cluster mode is not enabled" in str(exc).lower():
            raise ConfigError(
                f"{setting_names('redis_cluster')} is on but the server at {setting_names('redis_url')} is "
                "not a Redis Cluster node: turn the flag off or point the URL at a cluster"
            ) from None
        raise RedisUnavailable(f"no cluster node reachable: {exc}") from None
    infos = info.values() if info and all(isinstance(v, dict) for v in info.values()) else [info]
    enabled = any(str(i.get("cluster_enabled", 0)) == "1" for i in infos if isinstance(i, dict))
    if enabled and not settings.redis_cluster:
        raise ConfigError(_CLUSTER_WITHOUT_FLAG)


async def check_fsync(redis: Any, settings: Settings) -> None:
    """With durable_fsync, refuse a server without WAITAOF or without an AOF to wait for."""
    if not settings.durable_fsync:
        return
    try:
        await redis.execute_command("WAITAOF", 1, 0, 100)
    except ResponseError as exc:
        detail = str(exc)
        if "unknown command" in detail.lower():
            detail = "the server has no WAITAOF (Redis 7.2+ or Valkey needed)"
        raise ConfigError(f"{setting_names('durable_fsync')} is on but {detail}") from None


async def check_deployment(redis: Any, keys_deployment: str, settings: Settings) -> None:
    """Record this deployment's partition count (first node) or refuse a node that disagrees."""
    try:
        await redis.hsetnx(keys_deployment, "partitions", settings.partitions)
        recorded = await redis.hget(keys_deployment, "partitions")
    except ResponseError as exc:
        # a Cluster node addressed as a plain server redirects a key of another node's slot
        # (baton api has no INFO right, so this is how it finds out). The client maps these
        # replies to classes of their own and strips the code from the message
        if isinstance(exc, AskError | ClusterDownError):  # (MovedError is an AskError)
            raise ConfigError(_CLUSTER_WITHOUT_FLAG) from None
        raise
    if recorded is not None and int(text(recorded)) != settings.partitions:
        raise ConfigError(
            f"this node has {settings.partitions} partitions ({setting_names('partitions')}) but the deployment "
            f"(prefix {settings.prefix!r}) has {int(text(recorded))} partitions, recorded in "
            f"{keys_deployment} by its first node; every node and producer must agree, so start this "
            f"node with BATON_PARTITIONS={int(text(recorded))}"
        )


async def sentinel_problem(url: str) -> tuple[str, str]:
    """Why a Sentinel URL yields no master: a message and its kind, ``unknown_service`` (the
    sentinels that answer do not know the name), ``no_sentinel`` (none answers) or ``no_master``."""
    target = parse_sentinel_url(url)
    answered, known = [], []
    for host, port in target.sentinels:
        auth: dict[str, Any] = {k.removeprefix("sentinel_"): v for k, v in target.sentinel_auth.items()}
        # one question, no retries: a starting node asks again on its own schedule
        client = aioredis.Redis(host=host, port=port, socket_timeout=_SENTINEL_ASK_S,
                                socket_connect_timeout=_SENTINEL_ASK_S, driver_info=None,
                                retry=Retry(NoBackoff(), 0), **auth)
        try:
            reply = await client.sentinel_get_master_addr_by_name(target.service)
        except (RedisError, OSError):
            continue
        finally:
            await client.aclose()
        answered.append(f"{host}:{port}")
        if reply:
            known.append(f"{host}:{port}")
    listed = ", ".join(f"{h}:{p}" for h, p in target.sentinels)
    if not answered:
        return f"no sentinel answers at {listed}", "no_sentinel"
    if not known:
        return (f"no sentinel knows a master named {target.service!r} (asked {', '.join(answered)}): "
                f"check the service name in {setting_names('redis_url')}"), "unknown_service"
    return f"the sentinels know {target.service!r} but its master does not answer yet", "no_master"


def is_sentinel_url(url: str) -> bool:
    """Whether the URL names a Sentinel-managed master."""
    return urlsplit(url).scheme.lower() in SENTINEL_SCHEMES


class SentinelStartWatch:
    """Asks the sentinels of a starting node's URL about its master before the node uses it.

    An unknown service name is fatal at once; sentinels that never answer are
    fatal after SENTINEL_START_WAIT_S; a master the sentinels know but that does
    not answer yet is an outage to wait out. (Going through the client instead
    would take its full retry schedule, ~30 s, to say only "no master found".)
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.silent_since: float | None = None

    async def problem(self) -> str | None:
        """None when the node may go on (or the URL is no Sentinel URL), else why it should wait;
        raises ConfigError when it is time to give up."""
        if not is_sentinel_url(self.url):
            return None
        message, kind = await sentinel_problem(self.url)
        if kind == "unknown_service":
            raise ConfigError(message)
        if kind != "no_sentinel":
            self.silent_since = None
            return None
        now = asyncio.get_running_loop().time()
        if self.silent_since is None:
            self.silent_since = now
        if now - self.silent_since >= SENTINEL_START_WAIT_S:
            raise ConfigError(f"{message} (for {SENTINEL_START_WAIT_S:g}s): check the hosts in "
                              f"{setting_names('redis_url')}")
        return message
