"""Observer: reads cluster-wide queue, lease and intake gauges from Redis.

Every ``observe_interval_ms`` (with jitter) it asks Redis, cheaply and without
ever scanning keys, for the numbers that no single node knows: the depth and
oldest-run age of every queue, the number of runs per status, leases that are
overdue, live nodes, and the intake consumer group's lag and pending count.
That is one TIME call and one pipeline for the node-wide keys, then per
partition one pipeline of counts (ZCARD of the ready, delayed, leased, waiting
and terminal-status sets) and, when a queue is not empty, one more pipeline
that reads the ready time of the runs at the head of each queue. A partition
whose master does not answer keeps its last values until it does; the others
are read on (before, the first such partition ended the round).

Every node runs an observer, but only the elected one reads and exports the
gauges: the holder of the scheduler lease (``exporter``), so a deployment of
N pods neither reads these from Redis N times nor exports them N times. The
others take the gauges out of their /metrics. Dashboards and alerts still
aggregate them with ``max`` (never ``sum``): around a hand-over two nodes may
export them for an interval.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError, ResponseError

from runtime.affinity import jobs_needing_labels, stored_labels
from runtime.app import Baton
from runtime.codec import text
from runtime.keys import LEASED_RANGE, Partition
from runtime.metrics import Metrics
from runtime.partition_outages import PartialRead, PartitionOutages, read_partitions
from runtime.queues import READY_FIELDS, read_heads, ready_since
from runtime.statuses import TERMINAL

from .base import Actor
from .intake import submit_streams

__all__ = ["Observer"]

#: statuses counted per partition from their index sets (beside queued, which is per queue)
INDEXED_STATES = tuple(str(s) for s in TERMINAL)




class Observer(Actor[None]):
    """Refreshes the cluster-wide gauges of :class:`~runtime.metrics.Metrics`."""

    name = "observer"

    def __init__(self, app: Baton, metrics: Metrics, exporter: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self.app = app
        self.metrics = metrics
        #: whether this node is the one that exports the cluster gauges now (None: always)
        self.exporter = exporter
        self.settings = app.settings
        #: queue names per partition index, as of the last observation
        self.queues: dict[int, list[str]] = {}
        #: partitions whose master does not answer: their gauges keep their last values meanwhile,
        #: the other partitions' are read on (on Redis Cluster, one master down)
        self.outages = PartitionOutages(app, self.log, "gauge reads", self.spawn,
                                        count=metrics.partitions_out.labels(actor=self.name).set, writes=False)

    async def run(self) -> None:
        """Observe, then sleep an interval (±10% so that nodes spread out), until stopped."""
        interval_s = self.settings.observe_interval_ms / 1000
        if interval_s <= 0:  # turned off
            await self.stopping.wait()
            return
        try:
            while not self.stopping.is_set():
                exporting = self.exporter is None or self.exporter()
                self.metrics.export_cluster_gauges(exporting)
                try:
                    if exporting:
                        await self.observe()
                except RedisError as exc:
                    # the gauges keep their last values; an outage must not use up the
                    # node's restart budget for the sake of metrics
                    self.metrics.redis_errors.labels(actor=self.name).inc()
                    self.log.warning("reading the cluster gauges failed: %s", exc)
                if not await self.sleep(interval_s * random.uniform(0.9, 1.1)):
                    return
        finally:
            if self.exporter is not None:  # a draining node's values go stale: the next holder exports
                self.metrics.export_cluster_gauges(False)

    async def observe(self) -> None:
        """Read every cluster-wide gauge once."""
        seconds, micros = await self.app.redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        await self._node_wide(now_ms)
        await self._label_match(now_ms)

        async def partition(p: Partition) -> None:
            await self._partition(p, now_ms)

        await read_partitions(self.app.keys.partitions, partition, PartialRead(self.outages))

    async def _node_wide(self, now_ms: int) -> None:
        keys = self.app.keys
        m = self.metrics
        # heartbeats are stamped with the Redis clock (see Supervisor._heartbeat): a node's own
        # clock may be off by any amount
        window_ms = 2 * self.settings.lease_ttl_ms
        started = time.perf_counter()
        node_wide, *partition_streams = submit_streams(self.app)
        pipe = self.app.redis.pipeline(transaction=False)
        pipe.zcount(keys.nodes, now_ms - window_ms, "+inf")
        pipe.xinfo_groups(node_wide.key)
        pipe.xlen(node_wide.key)
        live, *per_stream = await pipe.execute(raise_on_error=False)
        if not isinstance(live, Exception):
            m.nodes_live.set(int(live))
        # each partition's own stream lives in its slot: one call each, so that on Redis Cluster a
        # master that does not answer costs its partitions' streams only. The totals then stay as
        # they were (a sum without some streams would read as a drop in the backlog)
        async def read_stream(p: Partition) -> None:
            pipe = self.app.redis.pipeline(transaction=False)
            pipe.xinfo_groups(p.submit_stream)
            pipe.xlen(p.submit_stream)
            per_stream.extend(await pipe.execute(raise_on_error=False))

        partial = PartialRead(self.outages)
        await read_partitions([s.partition for s in partition_streams if s.partition is not None], read_stream, partial)
        whole = not partial.unanswered
        m.observe_redis("observe", time.perf_counter() - started)
        # the gauges add up every submission stream the nodes read
        total_length = total_pending = total_lag = 0
        for groups, length in zip(per_stream[::2], per_stream[1::2], strict=True):
            if isinstance(length, Exception) or isinstance(groups, ResponseError):
                continue  # no stream yet: nothing submitted, nothing pending
            if isinstance(groups, Exception):
                raise groups
            total_length += int(length)
            pending, lag = self._backlog(groups, int(length))
            total_pending += pending
            total_lag += lag
        if whole:
            m.intake_stream_length.set(total_length)
            m.intake_pending.set(total_pending)
            m.intake_lag.set(total_lag)

    async def _label_match(self, now_ms: int) -> None:
        """Count the registered jobs whose required labels no live node offers (runtime/affinity.py)."""
        keys = self.app.keys
        registry = await self.app.redis.hgetall(keys.registry)
        needs = jobs_needing_labels(registry)
        unmatched = 0
        if needs:  # only then the live nodes' labels are read
            live = await self.app.redis.zrangebyscore(keys.nodes, now_ms - 2 * self.settings.lease_ttl_ms, "+inf")
            pipe = self.app.redis.pipeline(transaction=False)
            for node in live:
                pipe.hget(keys.node(text(node)), "labels")
            offered = [stored_labels(text(v) if v is not None else "") for v in await pipe.execute()]
            unmatched = sum(1 for wanted in needs if not any(wanted.items() <= have.items() for have in offered))
        self.metrics.jobs_unmatched.set(unmatched)

    def _backlog(self, groups: list[dict[Any, Any]], length: int) -> tuple[int, int]:
        """The intake group's pending entries and lag on one stream."""
        for g in groups:
            if text(g.get("name", b"")) != self.app.keys.intake_group:
                continue
            lag = g.get("lag")
            # Redis reports no lag when it cannot tell (entries deleted inside the
            # undelivered range); fall back to the entries not yet read at all
            if lag is None:
                read = g.get("entries-read")
                lag = max(length - int(read), 0) if read is not None else 0
            return int(g.get("pending") or 0), int(lag)
        return 0, 0

    async def _partition(self, p: Partition, now_ms: int) -> None:
        m = self.metrics
        part = str(p.index)
        queues = self.queues.get(p.index, [])
        started = time.perf_counter()
        pipe = self.app.redis.pipeline(transaction=False)
        pipe.smembers(p.queues)
        pipe.zcard(p.delayed)
        pipe.zcount(p.leased, *LEASED_RANGE)
        pipe.zcount(p.leased, "-inf", now_ms)
        pipe.zcard(p.waiting)
        for state in INDEXED_STATES:
            pipe.zcard(p.status(state))
        for q in queues:
            read_heads(pipe, p, q)
        res = await pipe.execute()
        m.observe_redis("observe", time.perf_counter() - started)
        names, delayed, leased, overdue, waiting, *rest = res
        indexed, per_queue = rest[:len(INDEXED_STATES)], rest[len(INDEXED_STATES):]
        m.partition_runs.labels(partition=part, state="delayed").set(int(delayed))
        m.partition_runs.labels(partition=part, state="executing").set(int(leased))
        m.partition_runs.labels(partition=part, state="waiting").set(int(waiting))
        for state, n in zip(INDEXED_STATES, indexed, strict=True):
            m.partition_runs.labels(partition=part, state=state).set(int(n))
        m.leases_overdue.labels(partition=part).set(int(overdue))

        queued = 0
        heads: dict[str, list[str]] = {}
        for i, q in enumerate(queues):
            depth, first, band0, kdepth, kfirst, kband0 = per_queue[6 * i: 6 * i + 6]
            total = int(depth) + int(kdepth)
            queued += total
            m.queue_depth.labels(queue=q, partition=part).set(total)
            heads[q] = sorted({text(x) for x in [*first, *band0, *kfirst, *kband0]})
        m.partition_runs.labels(partition=part, state="queued").set(queued)
        await self._oldest(p, heads, now_ms)

        found = sorted(text(n) for n in names)
        if found != queues:
            # a queue seen for the first time: count it now rather than an interval later
            self.queues[p.index] = found
            if set(found) - set(queues):
                await self._partition(p, now_ms)

    async def _oldest(self, p: Partition, heads: dict[str, list[str]], now_ms: int) -> None:
        part = str(p.index)
        ids = [(q, run_id) for q, members in heads.items() for run_id in members]
        ready_at: list[Any] = []
        if ids:
            started = time.perf_counter()
            pipe = self.app.redis.pipeline(transaction=False)
            for _q, run_id in ids:
                pipe.hmget(p.run(run_id), *READY_FIELDS)
            ready_at = await pipe.execute()
            self.metrics.observe_redis("observe", time.perf_counter() - started)
        oldest: dict[str, int] = {}
        for (q, _run_id), values in zip(ids, ready_at, strict=True):
            if (at := ready_since(values)) is not None:
                oldest[q] = min(oldest.get(q, now_ms), at)
        for q in heads:
            age_ms = max(now_ms - oldest[q], 0) if q in oldest else 0
            self.metrics.queue_oldest_age.labels(queue=q, partition=part).set(age_ms / 1000)
