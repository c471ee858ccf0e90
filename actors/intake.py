"""Intake: reads one submission stream with a consumer group and creates runs.

A node runs one intake per stream it serves: the node-wide ``{<prefix>}:submit``
and, with ``partition_streams``, each partition's own ``{<prefix>:p<N>}:submit``
(so producers can spread submissions over Redis Cluster masters). An entry of a
partition stream is named ``<entry id>.p<N>`` (entry ids repeat between streams).

Each entry is validated; valid ones become runs (actors/entry_runs.py: one
runs_create call per partition per batch, idempotent on the run id, which
defaults to the entry id), invalid ones go to the rejected stream with their
reason. Only then is the batch acknowledged, so a crash in between re-delivers
entries and the id check makes that harmless. Entries held back for a
partition whose master does not answer (a run's, or any, for an event entry,
which goes to every partition) stay pending, and this consumer reads them
again when it answers (or another node's XAUTOCLAIM takes them).

One entry never costs the others: anything but a Redis error while handling an
entry rejects that entry alone (reason ``internal``, logged with its id). Only
a Redis error ends a batch, which stays pending and is read again.

Entries held by a consumer that is gone are taken over: at once when its
node's heartbeat is gone or has stopped changing (watched once the consumer
has not read for ``BLOCK_MS``), and in any case once they sat unacknowledged
for ``intake_claim_idle_ms`` (XAUTOCLAIM). A stopping
intake finishes what it read before it returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError

from runtime.app import Baton
from runtime.cancelling import cancel_and_wait
from runtime.codec import text
from runtime.connection import LONGEST_BLOCK_MS
from runtime.direct_calls import DirectCalls
from runtime.errors import SubmissionError
from runtime.keys import Partition
from runtime.metrics import Metrics
from runtime.partition_outages import PartialRead, PartitionOutages, next_pause, others_note, read_partitions
from runtime.redis_faults import described, group_missing, is_outage, make_group
from runtime.stream_entries import Entry, parse_stream_entry, parse_stream_event, rejected_record, stream_entries
from runtime.submission import RunSpec
from runtime.tracing import end_span, start_span

from .base import Actor
from .delivery import Delivery
from .entry_runs import EntryRuns, ends_batch

__all__ = ["Intake", "SubmitStream", "ensure_group", "stream_entries", "submit_streams"]

#: How long a read of new entries blocks (the longest any blocking command of Baton's may)
BLOCK_MS = LONGEST_BLOCK_MS
TRIM_INTERVAL_S = 10.0
#: How often consumers of other nodes are checked for a heartbeat.
DEAD_CHECK_INTERVAL_S = 1.0
#: XCLAIM's min-idle-time when taking a dead node's entries: two nodes that both
#: see it dead do not take the same entries from each other.
DEAD_CLAIM_MIN_IDLE_MS = 1000
#: A heartbeat that has not changed for this many renew intervals is gone.
STALE_HEARTBEATS = 3
#: A consumer that has not read for this long is gone, heartbeat or not: a live
#: intake reads at least every BLOCK_MS, so with default settings a killed node's
#: entries move after about 10 s instead of its heartbeat's 60 s TTL.
SILENT_CONSUMER_MS = 10 * BLOCK_MS
#: Longest a stopping intake spends finishing the entries it read.
FINISH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SubmitStream:
    """A submission stream one intake reads, and how its entries are named."""

    key: str
    partition: Partition | None = None  #: the partition whose own stream it is; None = node-wide

    @property
    def label(self) -> str:
        """A short name for logs and actor names: "node" or "p<N>"."""
        return "node" if self.partition is None else f"p{self.partition.index}"

    def ref(self, entry_id: str) -> str:
        """The entry's name in Baton (its run's default id): the entry id, or ``<id>.p<N>``."""
        return entry_id if self.partition is None else self.partition.entry_ref(entry_id)


def submit_streams(app: Baton) -> list[SubmitStream]:
    """The streams a node's intakes read: the node-wide one, then (``partition_streams``) each partition's."""
    streams = [SubmitStream(app.keys.submit_stream)]
    if app.settings.partition_streams:
        streams += [SubmitStream(p.submit_stream, p) for p in app.keys.partitions]
    return streams


async def ensure_group(app: Baton, stream: str | None = None) -> None:
    """Create the intake consumer group (and the stream) if missing; default: the node-wide stream."""
    await make_group(app.redis, stream or app.keys.submit_stream, app.keys.intake_group)


class Intake(Actor[None]):
    """Turns the entries of one submission stream into runs."""

    name = "intake"

    def __init__(self, app: Baton, metrics: Metrics, stream: SubmitStream | None = None,
                 delivery: Delivery | None = None) -> None:
        super().__init__()
        self.stream = stream or SubmitStream(app.keys.submit_stream)
        if self.stream.partition is not None:
            self.name = f"intake.{self.stream.label}"
        self.app = app
        self.metrics = metrics
        self.settings = app.settings
        self.consumer = app.settings.node_id
        self.direct = DirectCalls(app.redis)
        #: partitions whose master does not answer: their entries stay pending meanwhile
        self.outages = PartitionOutages(app, self.log, "run creation", self.spawn, self._partition_back,
                                        metrics.partitions_out.labels(actor=self.name).set)
        self.runs = EntryRuns(app, metrics, self.log, delivery, self.outages)
        self._start_clean()

    def _partition_back(self, index: int) -> None:
        self.reread_own = True

    def _start_clean(self) -> None:
        """Timers and observations of one run(); a restarted run() starts from scratch."""
        self.next_autoclaim = 0.0
        self.next_dead_check = 0.0
        self.next_trim = time.monotonic() + TRIM_INTERVAL_S
        self.last_registry_refresh = 0.0
        #: other consumers' last heartbeat value and when (monotonic) it was first seen
        self.heartbeats: dict[str, tuple[bytes, float]] = {}
        #: a partition answers again: this consumer's pending entries are read again
        self.reread_own = False
        #: the next batch, read while this one is handled (a busy stream)
        self.prefetch: asyncio.Future[list[Entry]] | None = None
        #: a partition stream's intake waiting out its master: the current pause (0: none)
        self.paused_s = 0.0

    async def run(self) -> None:
        """Read, validate, create, acknowledge; until stopped. A stop finishes what was read.

        An intake of a partition's own stream waits out an outage of that partition's master
        here (on Redis Cluster the other partitions' intakes go on): restarted by the supervisor
        instead, it counted as a crashed actor every second of a failover, and fired
        BatonActorRestarting. The node-wide intake crashes and is restarted, as every actor is
        when Redis as a whole is out."""
        self._start_clean()
        finish = True
        # the blocking read is on the pickup path of every run submitted through the stream:
        # on held connections, without redis-py's per-command path
        self.direct = DirectCalls(self.app.redis)
        try:
            while not self.stopping.is_set():
                try:
                    await self._serve()
                except Exception as exc:
                    if group_missing(exc):
                        # Redis lost its data: _serve makes the group again (entries it held are gone)
                        await self._drop_prefetch()
                        self.log.warning("the consumer group of %s is gone (Redis restarted without its data?): "
                                         "made again", self.stream.key)
                        continue
                    if self.stream.partition is None or not is_outage(exc):
                        raise
                    await self._drop_prefetch()
                    if not self.paused_s:
                        self.log.warning("partition %d did not answer (%s): its stream's intake waits for it, %s",
                                         self.stream.partition.index, described(exc)[:300], others_note(self.app))
                    self.paused_s = next_pause(self.paused_s)
                    await self.sleep(self.paused_s)
        except asyncio.CancelledError:
            raise
        except BaseException:
            finish = False  # a crash: the restarted run() reads its pending entries first
            raise
        finally:
            prefetch, self.prefetch = self.prefetch, None
            if prefetch is not None:
                prefetch.cancel()
            if finish:
                await self._finish(prefetch)
            await self.direct.release()

    async def _serve(self) -> None:
        """The consumer group made sure of, this consumer's pending entries handled, then read and
        handle batches until stopped."""
        await ensure_group(self.app, self.stream.key)
        # entries this consumer read before a restart (or an outage) but did not acknowledge
        await self._process_own()
        if self.paused_s:
            assert self.stream.partition is not None
            self.log.info("partition %d answers again: its stream's intake resumed", self.stream.partition.index)
            self.paused_s = 0.0
        #: the last lone entry's acknowledgement, sent with the next read (one write, not two); lost
        #: with this call when it ends, the entries stay pending and are read again (creates are
        #: idempotent on the entry id)
        acks: list[str] = []
        while not self.stopping.is_set():
            now = time.monotonic()
            if acks and (self.reread_own or now >= min(self.next_autoclaim, self.next_dead_check, self.next_trim)):
                await self._acknowledge(acks)  # (before anything else reads this consumer's entries)
                acks = []
            if now >= self.next_autoclaim:
                self.next_autoclaim = now + self.settings.intake_claim_idle_ms / 2000
                await self.process(await self._autoclaim(), claimed="idle")
            if now >= self.next_dead_check:
                self.next_dead_check = now + DEAD_CHECK_INTERVAL_S
                await self.claim_from_dead_nodes()
            if now >= self.next_trim:
                self.next_trim = now + TRIM_INTERVAL_S
                await self.trim()
            if self.reread_own:
                # entries held back for a partition that answers again. A read under way is
                # handled first (what it took is pending too): on a busy stream one always is,
                # and the held entries waited for the idle claim (intake_claim_idle_ms) before
                if self.prefetch is not None:
                    entries, self.prefetch = await self.prefetch, None
                    await self.process(entries)
                self.reread_own = False
                await self._process_own()
            entries = await (self.prefetch or self._read(">", acks))
            acks = []
            # while busy, read the next batch as this one is created: the read
            # overlaps the work (entries read but unprocessed stay pending for
            # this consumer, so a crash here loses nothing). A lone entry means a
            # quiet stream: there the read's own Python would only delay the entry's
            # create call (stream pickup p50 ~1.0 -> ~0.8 ms without it), and its
            # acknowledgement goes with the next read
            self.prefetch = asyncio.ensure_future(self._read(">")) if len(entries) > 1 else None
            acks = await self.process(entries, defer_acks=self.prefetch is None)
        if acks:  # (stopping: no read follows)
            await self._acknowledge(acks)

    async def _drop_prefetch(self) -> None:
        """Cancel a read under way (what it took stays pending for this consumer, read again later)."""
        prefetch, self.prefetch = self.prefetch, None
        if prefetch is not None:
            await cancel_and_wait([prefetch])

    async def _finish(self, prefetch: asyncio.Future[list[Entry]] | None) -> None:
        """Create what this consumer read and did not acknowledge (a drain cancels us mid-batch).

        Shielded from the cancellation that stops the intake, and bounded: what
        is left after FINISH_TIMEOUT_S stays pending, and other nodes take it as
        soon as this node's heartbeat is gone.
        """
        async def settle() -> None:
            await self.runs.settled()  # (runs a create leased to this node start before the drain goes on)
            if prefetch is not None:
                # a read still in flight could deliver entries after ours: let it end first
                # (what it took is pending for this consumer and read again below)
                await asyncio.gather(prefetch, return_exceptions=True)
            await self._process_own()
            await self._forget_self()

        work = asyncio.ensure_future(settle())
        try:
            async with asyncio.timeout(FINISH_TIMEOUT_S):
                await asyncio.shield(work)
        except (TimeoutError, asyncio.CancelledError, RedisError) as exc:
            work.cancel()
            self.log.warning("intake stopped before finishing the entries it read (%s); other nodes take them",
                             described(exc))

    async def _process_own(self) -> None:
        """Handle every entry this consumer read and has not acknowledged (once: entries held back
        for a partition that does not answer stay pending)."""
        start = "0"
        while entries := await self._read(start):
            await self.process(entries)
            start = entries[-1][0]

    async def _forget_self(self) -> None:
        keys = self.app.keys
        pending = await self.app.redis.xpending_range(
            self.stream.key, keys.intake_group, min="-", max="+", count=1, consumername=self.consumer,
        )
        if not pending:  # nothing of ours left: drop the consumer so the group stays small
            await self.app.redis.xgroup_delconsumer(self.stream.key, keys.intake_group, self.consumer)

    async def _read(self, start: str, acks: Sequence[str] = ()) -> list[Entry]:
        """This consumer's next entries (``start`` ">": new ones, blocking; else its pending ones
        after ``start``). ``acks``: entries to acknowledge first (in the same write on a held
        connection; a cluster client's go just before the read)."""
        keys = self.app.keys
        if start == ">" and self.direct.raw:
            read = ("XREADGROUP", "GROUP", keys.intake_group, self.consumer, "COUNT", self.settings.intake_batch,
                    "BLOCK", BLOCK_MS, "STREAMS", self.stream.key, ">")
            if acks:
                return stream_entries(await self.direct.execute_after(
                    ("XACK", self.stream.key, keys.intake_group, *acks), *read))
            return stream_entries(await self.direct.execute(*read))
        if acks:
            await self._acknowledge(acks)
        return stream_entries(await self.app.redis.xreadgroup(
            keys.intake_group, self.consumer, {self.stream.key: start}, count=self.settings.intake_batch,
            block=BLOCK_MS if start == ">" else None,
        ))

    async def _autoclaim(self) -> list[Entry]:
        keys = self.app.keys
        reply = await self.app.redis.xautoclaim(
            self.stream.key, keys.intake_group, self.consumer, self.settings.intake_claim_idle_ms,
            start_id="0-0", count=self.settings.intake_batch,
        )
        items = reply[1] if reply else []
        return [(text(entry_id), fields or {}) for entry_id, fields in items]

    async def claim_from_dead_nodes(self) -> None:
        """Take the pending entries of consumers whose node's heartbeat is gone or frozen."""
        keys = self.app.keys
        redis = self.app.redis
        consumers = await redis.xinfo_consumers(self.stream.key, keys.intake_group)
        others = [(text(c["name"]), int(c.get("pending") or 0), int(c.get("idle") or 0)) for c in consumers]
        # only the consumers that may be gone: one that read within BLOCK_MS has just shown it is not,
        # and one holding nothing matters only once it is silent past the idle claim (to be dropped).
        # Every intake of every node checks every second: looking up each other node's heartbeat cost
        # the node-wide master nodes x nodes x streams reads a second, most of a fleet's idle load
        others = [c for c in others if c[0] != self.consumer and c[2] >= BLOCK_MS
                  and (c[1] or c[2] > self.settings.intake_claim_idle_ms)]
        if not others:
            self.heartbeats.clear()
            return
        pipe = redis.pipeline(transaction=False)
        for name, _, _ in others:
            pipe.hget(keys.node(name), "heartbeat_at")
        beats = await pipe.execute()
        now = time.monotonic()
        stale_after = STALE_HEARTBEATS * self.settings.renew_interval_ms / 1000
        listed = {name for name, _, _ in others}
        for gone in set(self.heartbeats) - listed:  # (gone, or reading again: watched afresh next time)
            del self.heartbeats[gone]
        for (name, pending, idle), beat in zip(others, beats, strict=True):
            why = self._gone(name, beat, idle, now, stale_after)
            if not why:
                continue
            if pending:
                await self._claim_from(name, why)
            elif beat is None and idle > self.settings.intake_claim_idle_ms:
                # gone for good and holding nothing: keep the group's consumer list small
                await redis.xgroup_delconsumer(self.stream.key, keys.intake_group, name)
                self.heartbeats.pop(name, None)

    def _gone(self, name: str, beat: bytes | None, idle_ms: int, now: float, stale_after: float) -> str:
        """Why another node's intake, holding entries and silent for BLOCK_MS at least, is gone ('' when
        it is not): no heartbeat record, a heartbeat frozen for STALE_HEARTBEATS renew intervals (since
        its consumer was first seen silent), or a consumer silent for SILENT_CONSUMER_MS (a live intake
        reads at least every BLOCK_MS; one held up, e.g. by a partition that does not answer, is not).

        Judged by this node's monotonic clock and Redis's idle times, never by
        the other node's wall clock. Taking entries from a node that was only
        slow costs a second, idempotent creation of their runs.
        """
        if beat is None or idle_ms > SILENT_CONSUMER_MS:
            return "its node's heartbeat is gone" if beat is None else f"it has not read for {idle_ms / 1000:.0f}s"
        seen = self.heartbeats.get(name)
        if seen is None or seen[0] != beat:
            self.heartbeats[name] = (beat, now)
            return ""
        return "its node's heartbeat stopped" if now - seen[1] >= stale_after else ""

    async def _claim_from(self, consumer: str, why: str) -> None:
        keys = self.app.keys
        rows = await self.app.redis.xpending_range(
            self.stream.key, keys.intake_group, min="-", max="+", count=self.settings.intake_batch,
            consumername=consumer,
        )
        ids = [row["message_id"] for row in rows]
        if not ids:
            return
        claimed = await self.app.redis.xclaim(
            self.stream.key, keys.intake_group, self.consumer, DEAD_CLAIM_MIN_IDLE_MS, ids,
        )
        # an entry trimmed from the stream meanwhile comes back without fields: it is
        # rejected (missing job) and acknowledged like any other, so it leaves the group
        entries = [(text(entry_id), fields or {}) for entry_id, fields in claimed]
        if entries:
            self.log.info("took %d pending entries of consumer %s: %s", len(entries), consumer, why)
            await self.process(entries, claimed="dead_node")

    async def process(self, entries: list[Entry], claimed: str = "", defer_acks: bool = False) -> list[str]:
        """Validate a batch, create its runs, record rejections, then acknowledge it. With
        ``defer_acks`` and nothing rejected, the acknowledgement is returned to be sent later
        (with the next read) instead; else what is returned is empty."""
        if not entries:
            return []
        started_ns = time.time_ns()
        self.metrics.intake_read.inc(len(entries))
        if claimed:
            self.metrics.intake_claimed.labels(reason=claimed).inc(len(entries))
        specs: list[tuple[str, RunSpec]] = []
        events: list[tuple[str, tuple[str, str]]] = []
        rejected: list[tuple[str, dict[bytes, bytes], SubmissionError]] = []
        ids = [entry_id for entry_id, _ in entries]
        entries = [(self.stream.ref(entry_id), fields) for entry_id, fields in entries]
        for entry_id, fields in entries:
            try:
                if b"event" in fields and b"job" not in fields:
                    events.append((entry_id, parse_stream_event(fields, self.settings)))
                else:
                    specs.append((entry_id, await self._parse(entry_id, fields)))
            except SubmissionError as error:
                rejected.append((entry_id, fields, error))
            except Exception as exc:
                if ends_batch(exc):
                    raise
                rejected.append((entry_id, fields, self.runs.internal(entry_id, exc)))
        failed, held = await self.runs.create(specs)
        if self.settings.tracing:
            self._trace(specs, failed, started_ns)
        for entry_id, (key, data) in events:
            try:
                if not await self._send_event(key, data):
                    held.add(entry_id)
            except Exception as exc:
                if ends_batch(exc):
                    raise
                failed[entry_id] = self.runs.internal(entry_id, exc)
        # entries held back for a partition that does not answer stay pending: read again when it does
        acks = [entry_id for entry_id, (ref, _) in zip(ids, entries, strict=True) if ref not in held]
        by_id = dict(entries)
        rejected.extend((entry_id, by_id[entry_id], error) for entry_id, error in failed.items())
        if defer_acks and not rejected:
            return acks
        keys = self.app.keys
        pipe = self.app.redis.pipeline(transaction=False)
        for entry_id, fields, problem in rejected:
            self.metrics.intake_rejected.labels(reason=problem.reason).inc()
            self.log.warning("rejected stream entry %s: %s (%s)", entry_id, problem, problem.reason)
            pipe.xadd(keys.rejected_stream, rejected_record(entry_id, fields, problem),
                      maxlen=self.settings.rejected_max_len, approximate=True)
        if acks:
            pipe.xack(self.stream.key, keys.intake_group, *acks)
        await pipe.execute()
        return []

    async def _acknowledge(self, acks: Sequence[str]) -> None:
        """Acknowledge entries whose runs exist (or were rejected on record)."""
        await self.app.redis.xack(self.stream.key, self.app.keys.intake_group, *acks)

    async def _send_event(self, key: str, data: str) -> bool:
        """Send an event entry's event to every partition that answers; False when one did not
        (or is out: it and the partitions on its master are skipped, runtime/partition_outages.py).

        The entry is then held (left pending) and sent to every partition again once
        that one answers: at-least-once like everything from the stream, a re-sent event
        finds its waiters already woken and only refreshes the stored copy. Before, a
        partition that did not answer ended the batch, and the node-wide stream stopped
        for every partition.
        """
        ttl_ms = self.settings.event_ttl_s * 1000

        async def send(partition: Partition) -> None:
            await self.app.scripts.send_event_in(partition, key, data, ttl_ms)

        partial = PartialRead(self.outages)
        await read_partitions(self.app.keys.partitions, send, partial)
        return not partial.unanswered

    @staticmethod
    def _trace(specs: list[tuple[str, RunSpec]], failed: dict[str, SubmissionError], started_ns: int) -> None:
        """One ``baton.intake`` span per run created from an entry that carried a trace context."""
        now_ns = time.time_ns()
        for entry_id, spec in specs:
            if spec.trace_context and entry_id not in failed:
                end_span(start_span("baton.intake", traceparent=spec.trace_context, run_id=spec.id, job=spec.job,
                                    kind="consumer", start_ns=started_ns, attributes={"baton.entry_id": entry_id}),
                         end_ns=now_ns)

    async def _parse(self, entry_id: str, fields: dict[bytes, bytes]) -> RunSpec:
        job, queue = fields.get(b"job"), fields.get(b"queue")
        unknown_job = job is not None and self.app.lookup(job.decode(errors="replace")) is None
        if unknown_job or (queue is not None and not self.app.queue_known(queue.decode(errors="replace"))):
            # a job or queue registered by another deployment since we last looked; bounded refresh rate
            now = time.monotonic()
            if now - self.last_registry_refresh > 1.0:
                self.last_registry_refresh = now
                await self.app.refresh_registry()
        return parse_stream_entry(entry_id, fields, self.settings, self.app.keys, self.app.lookup,
                                  self.app.plain_specs, self.app.queue_known)

    async def trim(self) -> None:
        """Drop stream entries every consumer has read and acknowledged."""
        keys = self.app.keys
        redis = self.app.redis
        groups = await redis.xinfo_groups(self.stream.key)
        floor = None
        for g in groups:
            if (g.get("name") or g.get(b"name")) in (keys.intake_group, keys.intake_group.encode()):
                floor = g.get("last-delivered-id") or g.get(b"last-delivered-id")
        if floor is None:
            return
        floor = floor.decode() if isinstance(floor, bytes) else floor
        pending = await redis.xpending(self.stream.key, keys.intake_group)
        low = pending.get("min") if isinstance(pending, dict) else None
        if low:
            floor = low.decode() if isinstance(low, bytes) else low
        await redis.xtrim(self.stream.key, minid=floor, approximate=True)
