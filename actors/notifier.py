"""Notifier: turns finished runs in the outboxes into hook runs and webhook deliveries, and delivers those.

Two loops, both off the run path (no handler, lease or outcome ever waits for them):

- the outbox loop reads every partition's outbox with the notifiers' consumer group (entries a dead node
  left pending are taken over after ``notify_claim_idle_ms``), makes hook runs and delivery records
  (runtime/notify.py: idempotent, so a retried entry changes nothing done) and acknowledges;
- the delivery loop takes due deliveries (webhook_claim.lua: one node per delivery at a time) and POSTs
  each in its own task, at most ``webhook_concurrency`` at once, each bounded by ``webhook_timeout_s``:
  a slow or failing endpoint holds a delivery slot, nothing else.

Idle, it reads each outbox once a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from runtime.app import Baton
from runtime.codec import text
from runtime.connection import server_ms
from runtime.deliveries import finish
from runtime.keys import Partition
from runtime.metrics import Metrics
from runtime.notify import acknowledge, ensure_group, outbox_lag, process, read_entries
from runtime.partition_outages import PartialRead, PartitionOutages
from runtime.redis_faults import group_missing, is_outage
from runtime.webhooks import Webhook, signature_headers

from .base import Actor

__all__ = ["Notifier"]

#: outbox entries read per partition per round
BATCH = 100
#: longest pause between outbox reads when there is nothing to do (it shortens while there is)
IDLE_S = 1.0
BUSY_S = 0.02
_ERROR_BODY = 200


class Notifier(Actor[None]):
    """Consumes the outboxes and delivers webhooks (see the module docstring)."""

    name = "notifier"

    def __init__(self, app: Baton, metrics: Metrics, exporting: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self.app = app
        self.metrics = metrics
        #: whether this node exports the cluster gauges (the outbox lag is one)
        self.exporting = exporting
        self.in_flight: set[str] = set()
        #: partitions whose master does not answer: their outboxes are read again once it does
        self.outages = PartitionOutages(app, self.log, "outbox reads", self.spawn,
                                        count=metrics.partitions_out.labels(actor=self.name).set)

    async def run(self) -> None:
        """Set up the consumer groups, start the delivery loop, then consume the outboxes until stopped."""
        app = self.app
        for partition in app.keys.partitions:
            try:
                await ensure_group(app, partition)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                # read once it answers (a group still missing then fails the read: the restarted
                # notifier makes it)
                self.outages.failed(partition, exc)
        timeout = aiohttp.ClientTimeout(total=app.settings.webhook_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.spawn(self._deliver_loop(session), "deliver", essential=True)
            await self._outbox_loop()

    async def _outbox_loop(self) -> None:
        app, settings = self.app, self.app.settings
        consumer = settings.node_id
        observe_s = settings.observe_interval_ms / 1000 or None
        loop = asyncio.get_running_loop()
        next_observe = next_reclaim = loop.time()
        while not self.stopping.is_set():
            found = 0
            # entries of dead nodes are looked for twice per claim idle time, not at every read
            reclaim = loop.time() >= next_reclaim
            if reclaim:
                next_reclaim = loop.time() + settings.notify_claim_idle_ms / 2000
            for partition in app.keys.partitions:
                if self.outages.is_out(partition.index):
                    continue
                try:
                    found += await self._consume(partition, consumer, reclaim)
                except Exception as exc:
                    if group_missing(exc):
                        self.log.warning("the consumer group of %s is gone (Redis restarted without its data?): "
                                         "made again", partition.outbox)
                        await ensure_group(app, partition)
                        continue
                    if not is_outage(exc):
                        raise
                    self.outages.failed(partition, exc)  # entries taken stay pending: read again later
            if observe_s is not None and self.exporting() and loop.time() >= next_observe:
                # (a partition whose master is down is left out of the sum, which then keeps its last
                # value, as the observer's gauges do: a gauge that fails would restart this actor)
                read = PartialRead(self.outages)
                lag = await outbox_lag(app, read)
                if not read.unanswered:
                    self.metrics.outbox_lag.set(lag)
                next_observe = loop.time() + observe_s
            if not await self.sleep(BUSY_S if found else IDLE_S):
                break

    async def _consume(self, partition: Partition, consumer: str, reclaim: bool) -> int:
        """One read of a partition's outbox: hook runs and deliveries made, entries acknowledged."""
        app = self.app
        entries, gone = await read_entries(app, partition, consumer, BATCH,
                                           app.settings.notify_claim_idle_ms if reclaim else None)
        if entries:
            counts = await process(app, partition, entries)
            self.metrics.hook_runs_started.inc(counts["hooks"])
        await acknowledge(app, partition, [e[0] for e in entries] + gone)
        return len(entries)

    async def _deliver_loop(self, session: aiohttp.ClientSession) -> None:
        settings = self.app.settings
        # a taken delivery stays hidden past its attempt's timeout, with a margin for recording the result
        hide_ms = int(settings.webhook_timeout_s * 1000) + 5000
        while not self.stopping.is_set():
            room = settings.webhook_concurrency - len(self.in_flight)
            taken = await self.app.scripts.webhook_claim(room, hide_ms) if room > 0 else []
            for did in taken:
                if did not in self.in_flight:
                    self.in_flight.add(did)
                    self.spawn(self._deliver(session, did), f"deliver:{did}")
            if not await self.sleep(BUSY_S if taken else min(IDLE_S, settings.webhook_backoff_ms / 1000)):
                break

    async def _deliver(self, session: aiohttp.ClientSession, did: str) -> None:
        """One attempt of one delivery; the result is recorded whatever the endpoint did."""
        app = self.app
        try:
            key = app.keys.webhook_delivery(did)
            status, webhook_id, body = await app.redis.hmget(key, "status", "webhook_id", "body")
            if status is None or text(status) != "pending":
                await app.redis.zrem(app.keys.webhook_due, did)  # done (or expired) already
                return
            blob = await app.redis.hget(app.keys.webhooks, text(webhook_id))
            if blob is None:
                await self._record(did, ok=False, code=None, error="the webhook was deleted", final=True)
                return
            hook = Webhook.from_json(blob)
            ok, code, error = await _post(session, hook, did, bytes(body))
            await self._record(did, ok=ok, code=code, error=error)
        finally:
            self.in_flight.discard(did)

    async def _record(self, did: str, *, ok: bool, code: int | None, error: str, final: bool = False) -> None:
        app = self.app
        new = await finish(app.redis, app.keys, app.settings, did, await server_ms(app.redis), ok=ok,
                           status_code=code, error=error, final=final)
        outcome = "retried" if new == "pending" else new
        self.metrics.webhook_deliveries.labels(outcome=outcome).inc()
        if not ok:
            self.log.info("webhook delivery %s failed (%s): %s", did, outcome, error)


async def _post(session: aiohttp.ClientSession, hook: Webhook, did: str, body: bytes) -> tuple[bool, int | None, str]:
    """POST a signed body; (delivered, HTTP status or None, error text)."""
    try:
        async with session.post(hook.url, data=body, headers=signature_headers(hook.secret, did, body),
                                allow_redirects=False) as response:
            if 200 <= response.status < 300:
                return True, response.status, ""
            snippet = (await response.content.read(_ERROR_BODY)).decode(errors="replace")
            return False, response.status, f"HTTP {response.status}: {snippet}".strip()
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500] or "request failed"
