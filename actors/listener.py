"""Listener: turns Redis pub/sub notices into inbox messages.

Wake-ups (runs became ready, a limit freed up) go to the fetcher, so it claims
without polling; notices of a run becoming due (delayed, a durable wait's
deadline) go to the leaser, which promotes it then rather than at its next
regular tick; cancellations go to the executor, so a canceled run stops at
once rather than at the next renewal (which remains the fallback).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from runtime.app import Baton
from runtime.connection import connect
from runtime.messages import CancelRun, DueSoon, Wake, wake_notice
from runtime.partition_outages import next_pause
from runtime.redis_faults import described, is_outage
from runtime.stale_connections import stale

from .base import Actor, Mailbox

__all__ = ["Listener"]


class Listener(Actor[None]):
    """Subscribes to the wake and cancel channels."""

    name = "listener"

    def __init__(self, app: Baton, fetcher: Mailbox[Wake], executor: Mailbox[CancelRun],
                 leaser: Mailbox[DueSoon]) -> None:
        super().__init__()
        self.app = app
        self.fetcher = fetcher
        self.executor = executor
        self.leaser = leaser
        #: the wait before listening again after the cluster node it listened on was lost (0: none lost)
        self.pause = 0.0

    async def _client(self) -> Any:
        redis = self.app.redis
        if isinstance(redis, RedisCluster):
            # PUBLISH reaches every cluster node, so any one primary will do; ask the cluster
            # which ones there are now: after a failover the node last used may be gone (and
            # the client may know no default node until its next command fails)
            try:
                await redis.initialize()  # a fresh client knows no node yet
                await redis.nodes_manager.initialize()
            except RedisClusterException as exc:  # no node reachable: an outage, ridden out
                raise RedisConnectionError(f"no Redis Cluster node reachable: {exc}") from exc
            primaries = redis.get_primaries()
            if not primaries:
                raise RedisConnectionError("the Redis Cluster has no primary yet")
            random.shuffle(primaries)  # spread the nodes' subscriptions
            kwargs = redis.get_connection_kwargs()
            # TLS is the URL's scheme (an ssl= argument is not a connection option of redis://)
            tls = kwargs.get("connection_class") is SSLConnection or bool(kwargs.get("ssl"))
            options: dict[str, Any] = {k: v for k, v in kwargs.items() if tls and k.startswith("ssl_")}
            failure: Exception | None = None
            # the first primary that answers: one that is down (its slots not yet taken over, or no
            # replica to take them) is still listed, and would stop wake-ups for the whole outage
            for node in primaries:
                # no retries: a node lost is left for another at once (run() waits FIRST_PROBE_S), not
                # after the ~1.1 s of reconnecting a client does by default, wake-ups lost meanwhile
                client = connect(f"{'rediss' if tls else 'redis'}://{node.host}:{node.port}",
                                 username=kwargs.get("username"), password=kwargs.get("password"),
                                 retry=Retry(NoBackoff(), 0), **options)
                try:
                    await client.ping()
                    return client
                except Exception as exc:
                    await client.aclose()
                    if not is_outage(exc):
                        raise
                    failure = exc
            raise RedisConnectionError(f"no Redis Cluster primary answers: {failure}")
        return None

    async def run(self) -> None:
        """Forward notices until stopped. On Redis Cluster a lost node is replaced by another primary
        here (any one carries every PUBLISH), without the actor starting over as on an outage."""
        while not self.stopping.is_set():
            try:
                if not await self._listen():
                    return
            except Exception as exc:
                if not self.app.settings.redis_cluster or not is_outage(exc):
                    raise
                if not self.pause:
                    self.log.warning("the cluster node this node listened on did not answer (%s): listening on "
                                     "another primary", described(exc)[:300])
                self.pause = next_pause(self.pause)
                await self.sleep(self.pause)

    def _due_soon(self, notice: DueSoon) -> None:
        """Tell the leaser; with its inbox full, the run waits for its next regular tick."""
        try:
            self.leaser.send_nowait(notice)
        except asyncio.QueueFull:
            pass

    async def _listen(self) -> bool:
        """Subscribe and forward notices until stopped (False), or until the subscription's connection
        is stale (True: listen again, on a new one)."""
        own = await self._client()
        redis = own or self.app.redis
        keys = self.app.keys
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.wake_channel, keys.cancel_channel)
            self.pause = 0.0
            # a wake-up right after (re)subscribing covers notices sent while we were away
            await self.fetcher.send(Wake(""))
            wake, cancel = keys.wake_channel.encode(), keys.cancel_channel.encode()
            while not self.stopping.is_set():
                msg = await pubsub.get_message(timeout=1.0)
                if msg is None:
                    if pubsub.connection is not None and stale(pubsub.connection):
                        # a reply from this server timed out since the subscription's connection was
                        # opened: it may be half-open too, and would hear nothing, ever (it sends
                        # nothing to time out on); wake-ups would wait for idle polls and
                        # cancellations for renewals (runtime/stale_connections.py)
                        self.log.info("subscribing again, on a new connection: a reply from Redis timed out")
                        return True
                    continue
                data = msg["data"].decode() if isinstance(msg["data"], bytes) else str(msg["data"])
                if msg["channel"] == wake:
                    notice = wake_notice(data)
                    if isinstance(notice, DueSoon):
                        self._due_soon(notice)
                    else:
                        self.fetcher.offer(notice)  # one pending wake-up is enough
                elif msg["channel"] == cancel:
                    await self.executor.send(CancelRun(data, "canceled"))
            return False
        finally:
            await pubsub.aclose()
            if own is not None:
                await own.aclose()
