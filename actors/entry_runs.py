"""Runs from validated submission entries: the intake's run creation (actors/intake.py).

Entries sharing an id, idempotency key or debounce key go out in later rounds
than the first of them; a round's runs are created by one runs_create call per
partition, at once, so on Redis Cluster a master that is down holds back the
entries of its own partitions only (left pending, read again once it answers;
runtime/partition_outages.py). An entry's alias (the entry id, for a run named
otherwise) is written before its run, and a duplicate's alias points at the run
that holds its key.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError, ResponseError

from runtime.admission import rejection
from runtime.app import Baton
from runtime.codec import text
from runtime.errors import RedisUnavailable, SubmissionError
from runtime.messages import LeaseGranted
from runtime.metrics import DEDUP_REASONS, Metrics
from runtime.partition_outages import PartitionOutages
from runtime.redis_faults import is_outage, server_state
from runtime.scripts import Claimed
from runtime.submission import RunSpec

from .delivery import Delivery

__all__ = ["EntryRuns", "ends_batch", "rounds"]

#: runs_create codes for an entry that created nothing, and what held it
_DEDUP_REASON = dict(zip((0, 2, 3), DEDUP_REASONS, strict=True))


class EntryRuns:
    """Creates the runs of one intake's batches (see the module docstring)."""

    def __init__(self, app: Baton, metrics: Metrics, log: logging.Logger, delivery: Delivery | None,
                 outages: PartitionOutages) -> None:
        self.app = app
        self.settings = app.settings
        self.metrics = metrics
        self.log = log
        #: with a delivery, runs this node is waiting for are leased to it as they are created and
        #: start from here: no hand-off list between the stream and the executor
        self.delivery = delivery
        self.outages = outages
        #: the last create-and-deliver step (_create_round): one a cancellation left going is waited for
        self.creating: asyncio.Future[list[tuple[str, int]]] | None = None

    def internal(self, entry_id: str, exc: BaseException) -> SubmissionError:
        """An entry that failed unexpectedly: logged with its id, rejected as internal."""
        self.log.error("stream entry %s failed unexpectedly; rejected as internal", entry_id, exc_info=exc)
        return SubmissionError("internal", f"internal error while handling the entry: {type(exc).__name__}")

    async def create(self, specs: list[tuple[str, RunSpec]]) -> tuple[dict[str, SubmissionError], set[str]]:
        """Create the runs; returns the entries that failed alone, with their error, and the entries
        held back because a partition they touch does not answer (left pending, read again once it does).

        Entries sharing an id, idempotency key or debounce key go out in later
        rounds than the first of them, so within a batch the earliest entry wins.
        A round's runs are created by one call per partition; a call that fails
        on something other than the server is retried one entry at a time to
        find the entry it failed on. On Redis Cluster a master that is down
        holds back the entries of its partitions only.
        """
        failed: dict[str, SubmissionError] = {}
        held: set[str] = set()
        for round_ in rounds(specs):
            live = round_
            if self.outages.any_out():  # (the usual case costs no look at each entry)
                live = []
                for item in round_:
                    if self._held_back(*item):
                        held.add(item[0])
                    else:
                        live.append(item)
            if not live:
                continue
            try:
                renamed = await self._alias_renamed(live)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                # an alias's partition did not answer: entry by entry, to find whose
                renamed = []
                for item in list(live):
                    try:
                        renamed += await self._alias_renamed([item])
                    except Exception as one:
                        if not is_outage(one):
                            raise
                        # (the alias's partition did not answer: the run's own may be on a live master)
                        self._hold(item, one, held, self.app.keys.partition_of_run(item[0]).index)
                        live.remove(item)
            by_partition: dict[int, list[tuple[str, RunSpec]]] = {}
            for item in live:
                by_partition.setdefault(self.app.keys.partition_of_run(item[1].id).index, []).append(item)
            # one call per partition at once: a partition that does not answer costs its own entries
            # only, and the runs the others leased to this node start (they would wait out their leases)
            made = await self._create_groups(list(by_partition.values()), failed)
            done: list[tuple[str, RunSpec]] = []
            results: list[tuple[str, int]] = []
            first_error: BaseException | None = None
            for index, group, outcome in zip(by_partition, by_partition.values(), made, strict=True):
                if isinstance(outcome, BaseException):
                    if is_outage(outcome):
                        for item in group:
                            self._hold(item, outcome, held, index)
                    else:
                        first_error = first_error or outcome
                    continue
                done += group
                results += outcome
            made_ids = {entry_id for entry_id, _ in done} if renamed else set()
            await self._note_aliases(done, results, [e for e in renamed if e in made_ids])
            if first_error is not None:
                raise first_error
        return failed, held

    async def _create_groups(self, groups: list[list[tuple[str, RunSpec]]],
                             failed: dict[str, SubmissionError]) -> list[list[tuple[str, int]] | BaseException]:
        """Each partition's group created at once; its results, or the error its call failed with."""
        if len(groups) == 1:
            # one partition (a lone entry, always on a quiet stream): awaited here, since a gathered
            # task would start a loop turn later, on the pickup path of every run submitted this way
            try:
                return [await self._create_group(groups[0], failed)]
            except Exception as exc:  # noqa: BLE001 - returned as gather's return_exceptions would
                return [exc]
        return await asyncio.gather(*(self._create_group(group, failed) for group in groups), return_exceptions=True)

    def _hold(self, item: tuple[str, RunSpec], exc: BaseException, held: set[str], index: int) -> None:
        """Hold an entry back: partition ``index``, which its run needs, did not answer (``exc``, an outage).
        Only that partition is taken for out: marking the entry's other one too (the run's, when the alias's
        failed) held every entry of a partition whose master answers, and logged it as not answering."""
        self.outages.failed(self.app.keys.partitions[index], exc)
        held.add(item[0])

    def _partitions_of(self, entry_id: str, spec: RunSpec) -> set[int]:
        """The partitions creating an entry's run writes to: the run's, and its alias's when the run
        is not named after the entry."""
        keys = self.app.keys
        return {keys.partition_of_run(spec.id).index, keys.partition_of_run(entry_id).index}

    def _held_back(self, entry_id: str, spec: RunSpec) -> bool:
        """Whether a partition the entry's run needs is out (its master did not answer)."""
        return any(self.outages.is_out(index) for index in self._partitions_of(entry_id, spec))

    async def _create_group(self, group: list[tuple[str, RunSpec]],
                            failed: dict[str, SubmissionError]) -> list[tuple[str, int]]:
        """The runs of one partition's entries created; an entry's own failure goes into ``failed``."""
        try:
            results = await self._create_round([spec for _, spec in group])
        except Exception as exc:
            if ends_batch(exc):
                raise
            results = []
            for entry_id, spec in group:
                try:
                    [result] = await self._create_round([spec])
                except Exception as one:
                    if ends_batch(one):
                        raise
                    failed[entry_id] = self.internal(entry_id, one)
                    result = ("", -1)
                results.append(result)
        for (entry_id, _), (detail, code) in zip(group, results, strict=True):
            # refused inside runs_create (a missing parent, a full max_queued): to the rejected stream
            if code < 0 and (refused := rejection(code, detail)):
                failed[entry_id] = refused
        return results

    async def _alias_renamed(self, specs: list[tuple[str, RunSpec]]) -> list[str]:
        """Alias every entry whose run is not named after it (an ``id`` field, or a routed id
        ``<entry>~k``: with several partitions a run with a limit or key lives in that key's
        partition) before its run is created, so ``get_run(entry)`` finds the run as soon as it
        exists (written after the create, the alias came after the run had started); kept as
        long as runs are. Returns those entries."""
        renamed = [(entry_id, spec.id) for entry_id, spec in specs if spec.id != entry_id]
        if renamed:
            keys = self.app.keys
            keep_ms = self.settings.runs_kept_s * 1000
            pipe = self.app.redis.pipeline(transaction=False)
            for entry_id, run_id in renamed:
                pipe.set(keys.partition_of_run(entry_id).alias(entry_id), run_id, px=keep_ms)
            await pipe.execute()
        return [entry_id for entry_id, _ in renamed]

    async def _create_round(self, specs: list[RunSpec]) -> list[tuple[str, int]]:
        """runs_create for one round; the runs it leased to this node start at once."""
        if self.delivery is None:
            return await self.app.create_detailed(specs, raise_rejected=False)
        # one step no cancellation splits (a drain cancels the intake mid-batch): cut between the call,
        # which leases runs to this node, and their delivery, the runs were leased to no handler, and
        # the reaper charged each a crashed attempt once its lease expired (a rolling update did). The
        # cancelled intake waits for it (settled) before it ends, so the drain finds the runs started
        self.creating = asyncio.ensure_future(self._create_and_deliver(specs, self.delivery))
        return await asyncio.shield(self.creating)

    async def settled(self) -> None:
        """Wait for a create a cancellation left going (_create_round) to deliver what it leased."""
        creating, self.creating = self.creating, None
        if creating is not None:
            await asyncio.gather(creating, return_exceptions=True)  # (its error was the cancelled batch's)

    async def _create_and_deliver(self, specs: list[RunSpec], delivery: Delivery) -> list[tuple[str, int]]:
        # taken before the call: a lease it grants surely holds until then (runtime/fencing.py)
        deadline = time.monotonic() + self.settings.lease_ttl_ms / 1000
        created = await self.app.create_leasing(specs, self.settings.node_id, raise_rejected=False)
        by_partition: dict[int, list[Claimed]] = {}
        for claimed in created.leased:
            by_partition.setdefault(claimed.partition, []).append(claimed)
        for partition, runs in by_partition.items():
            await delivery.deliver(partition, [LeaseGranted(c, deadline) for c in runs],
                                   registration_room=created.registration_rooms.get(partition))
        return created.results

    async def _note_aliases(self, specs: list[tuple[str, RunSpec]], results: list[tuple[str, int]],
                            renamed: list[str]) -> None:
        """Point the alias of an entry that created nothing, because an earlier submission holds
        it, at that submission's run (logged and counted; aliased for its idempotency window),
        and drop the alias ``_alias_renamed`` wrote for an entry whose run was not created."""
        keys = self.app.keys
        refused = {entry_id for (entry_id, _), (_, code) in zip(specs, results, strict=True) if code < 0}
        if unmade := [entry_id for entry_id in renamed if entry_id in refused]:
            await self.app.redis.delete(*(keys.partition_of_run(e).alias(e) for e in unmade))
        found = [(entry_id, spec, run_id, code) for (entry_id, spec), (run_id, code) in zip(specs, results, strict=True)
                 if code in _DEDUP_REASON]
        if not found:
            return
        redis = self.app.redis
        pipe = redis.pipeline(transaction=False)
        for _, _, run_id, _ in found:
            pipe.hget(keys.partition_of_run(run_id).run(run_id), "entry_id")
        holders = await pipe.execute()
        pipe = redis.pipeline(transaction=False)
        noted = 0
        for (entry_id, spec, run_id, code), holder in zip(found, holders, strict=True):
            if text(holder or b"") == entry_id:
                continue  # this very entry, delivered again after a crash: not a duplicate
            reason = _DEDUP_REASON[code]
            self.metrics.intake_deduplicated.labels(reason=reason).inc()
            self.log.info("stream entry %s created nothing: run %s already holds its %s", entry_id, run_id,
                          reason.replace("_", " "))
            if run_id != entry_id:
                pipe.set(keys.partition_of_run(entry_id).alias(entry_id), run_id, px=spec.idempotency_ttl_ms)
            noted += 1
        if noted:
            await pipe.execute()


def rounds(specs: list[tuple[str, RunSpec]]) -> list[list[tuple[str, RunSpec]]]:
    """Split specs so no round holds two that share an id, idempotency key or debounce key."""
    rounds: list[list[tuple[str, RunSpec]]] = []
    seen: dict[str, int] = {}
    for item in specs:
        entry_id, spec = item
        # ids derived from distinct entry ids are distinct: only a given id can repeat
        claims = [f"id:{spec.id}"] if spec.id != entry_id else []
        if spec.idempotency_key:
            claims.append(f"ik:{spec.job}|{spec.idempotency_key}")
        if spec.debounce_key:
            claims.append(f"dk:{spec.job}|{spec.debounce_key}")
        index = max((seen.get(c, -1) for c in claims), default=-1) + 1
        for c in claims:
            seen[c] = index
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(item)
    return rounds


def ends_batch(exc: BaseException) -> bool:
    """Whether an error is about Redis or the connection, not about one entry.

    Such an error ends the batch, which stays pending and is read again; any
    other error rejects the entry it happened on. A script that failed on an
    entry's data is the entry's error; a server state (OOM, READONLY ...) is not.
    """
    if isinstance(exc, ResponseError):
        # the client maps known server states (OOM, READONLY, NOSCRIPT, MOVED ...) to
        # subclasses and strips their code; a plain ResponseError naming a script is
        # a script that failed on its arguments (unless it is a server state the client does not map)
        return type(exc) is not ResponseError or "script" not in str(exc).lower() or server_state(exc)
    # RedisUnavailable: a write not on enough replicas (NotReplicated) is not acknowledged either
    return isinstance(exc, RedisError | OSError | TimeoutError | RedisUnavailable)
