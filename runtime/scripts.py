"""Lua scripts: loaded once from ``runtime/lua/``, called through typed wrappers.

Each script file has a header listing its KEYS and ARGV; ``--@include name``
lines pull in ``lua/includes/name.lua`` (runtime/lua_source.py). Calls go out
through runtime/lua_calls.py (a Redis Function per script, or EVALSHA);
callers never see raw key/argument lists.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from .codec import text
from .connection import socket_timeout_s
from .errors import NotReplicated
from .keys import Keys, Partition
from .lua_calls import SCRIPT_NAMES, LuaCalls
from .redis_faults import despite_outages
from .script_replies import (
    CLAIM_FIELDS,
    Claimed,
    ClaimReply,
    CreateReply,
    Outcome,
    Reaped,
    claimed_runs,
    handed_off,
    handed_off_runs,
    released,
)
from .settings import Settings
from .submission import RunSpec

__all__ = [
    "CLAIM_FIELDS", "SCRIPT_NAMES", "ClaimReply", "Claimed", "CreateReply", "Outcome", "Reaped", "Scripts",
    "grant_margin_ms", "handed_off", "handed_off_runs", "new_incarnation", "released",
]

logger = logging.getLogger("baton.scripts")

#: Approximate caps of a run's record and chunk streams (see run_append.lua).
RECORDS_MAX = 10_000
CHUNKS_MAX = 10_000


class Scripts:
    """Typed wrappers around every Lua script, bound to one client and key space."""

    def __init__(self, redis: Any, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.lua = LuaCalls(redis, settings)
        self._ttl_ms = settings.finished_ttl_s * 1000
        self._dlq_ttl_ms = settings.dead_letter_ttl_s * 1000

    #: called as ``on_call(script name, seconds)`` after each call (the node's Redis round-trip metric)
    on_call: Callable[[str, float], None] | None = None
    #: called with the runs each give_back released (the node's attempts metric: outcome released)
    on_released: Callable[[Sequence[Claimed]], None] | None = None

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        started = time.perf_counter()
        try:
            return await self.lua.call(name, keys, args)
        finally:
            if self.on_call is not None:
                self.on_call(name, time.perf_counter() - started)

    async def create(self, partition: Partition, specs_args: Sequence[Sequence[Any]]) -> list[tuple[str, int]]:
        """Create runs (each a RunSpec.script_args()); returns (id, code) per run."""
        return (await self.create_leasing(partition, specs_args, "")).results

    async def create_leasing(self, partition: Partition, specs_args: Sequence[Sequence[Any]],
                             node_id: str) -> CreateReply:
        """Create runs as ``create`` does, called by node ``node_id`` ('' for none): runs leased to
        that node because it waits for work come back here, not through its hand-off list."""
        args: list[Any] = [partition.prefix, self.keys.wake_channel, node_id]
        for spec in specs_args:
            args.extend(create_args(spec))
        raw, mine, now, room = await self._call("runs_create", [partition.queues], args)
        results = [(text(raw[i]), int(raw[i + 1])) for i in range(0, len(raw), 2)]
        return CreateReply(results, claimed_runs(mine, int(now), partition.index), None if room < 0 else int(room))

    async def claim(
        self, partition: Partition, node_id: str, want: int, queues: Sequence[str],
        jobs: Sequence[str], offset: int, scan: int | None = None, received: int = 0, register_ms: int = 0,
        register_most: int | None = None, piece: int | None = None, keep_registration: bool = False,
    ) -> tuple[list[Claimed], int]:
        """Lease up to ``want`` runnable runs of the given queues and jobs, at most ``piece`` in this call.

        With ``register_ms`` > 0 the node takes hand-offs: runs pushed to it and
        not yet among the ``received`` count against ``want``, and with room
        left it registers as waiting for that long (see includes/claim.lua), for at
        most ``register_most`` runs (default ``want``); a full ``piece`` (more runs are
        likely queued) leaves it unregistered. ``keep_registration`` leaves the registration as
        it is, for a claim sent while another is in flight (hand-offs still count).
        Returns the leased runs and the ms until a rate limit lets a held-back
        run start (-1 when none is held back by a rate limit).
        """
        reply = await self.claim_detailed(partition, node_id, want, queues, jobs, offset, scan=scan, received=received,
                                          register_ms=register_ms, register_most=register_most, piece=piece,
                                          keep_registration=keep_registration)
        return reply.runs, reply.retry_in_ms

    async def claim_detailed(
        self, partition: Partition, node_id: str, want: int, queues: Sequence[str],
        jobs: Sequence[str], offset: int, scan: int | None = None, received: int = 0, register_ms: int = 0,
        register_most: int | None = None, piece: int | None = None, keep_registration: bool = False,
    ) -> ClaimReply:
        """``claim``, and the room the node registered as waiting for. A claim the replicas did not confirm
        (NotReplicated) leased its runs on the master all the same: they are given back, uncharged, before
        the error goes on, rather than left to expire and be charged a crash of a node that never had them."""
        try:
            raw = await self._call(
                "runs_claim", [partition.queues],
                [partition.prefix, node_id, self.settings.lease_ttl_ms, want,
                 scan or max(want * 4, 64), ",".join(queues), ",".join(jobs), offset, self._ttl_ms,
                 self.settings.finished_cap, received, register_ms, want if register_most is None else register_most,
                 self.settings.label_text, int(self.settings.priority_aging_s * 1000), piece or want,
                 "1" if keep_registration else "0", self.keys.wake_channel],
            )
        except NotReplicated as exc:
            if isinstance(exc.reply, list):
                await self.give_back(partition, claimed_runs(exc.reply[3:], int(exc.reply[0]), partition.index),
                                     "unconfirmed")
            raise
        return ClaimReply(claimed_runs(raw[3:], int(raw[0]), partition.index), int(raw[1]), int(raw[2]))

    async def give_back(self, partition: Partition, runs: Sequence[Claimed], why: str) -> None:
        """Release leased runs no handler will start (a claim or a hand-off the replicas did not confirm, a
        claim that came back too late), uncharged, as a drain does, each attempt recording ``why`` (a key of
        RELEASED_BECAUSE). Best effort: a release that fails too leaves them to the reaper."""
        if not runs:
            return
        try:
            statuses = await self.finish(partition, [released(c.run_id, c.token, why) for c in runs])
            if self.on_released is not None:
                self.on_released([c for c, (_, status) in zip(runs, statuses, strict=True) if status != -1])
        except NotReplicated:
            pass  # (written on the master, as the claim was: what the claim's failover would lose anyway)
        except RedisError as exc:
            logger.warning("%d run(s) leased by a claim that was not acknowledged could not be given back "
                           "(%s): they are retried once their leases expire", len(runs), exc)

    async def renew(self, partition: Partition, leases: Sequence[tuple[str, str]],
                    incarnation: str = "") -> tuple[list[str], list[str]]:
        """Extend leases still owned; returns (lost ids, ids to cancel). With ``incarnation`` (the
        node process's: the leaser's call with every lease it holds in the partition), the call
        also notes that this node held nothing else granted to it a reply's wait before
        (leases_renew.lua)."""
        s = self.settings
        args: list[Any] = [partition.prefix, s.lease_ttl_ms, s.node_id, incarnation, grant_margin_ms(s)]
        for run_id, token in leases:
            args.extend((run_id, token))
        lost, cancel = await self._call("leases_renew", [partition.leased], args)
        return [text(x) for x in lost], [text(x) for x in cancel]

    async def finish(self, partition: Partition, outcomes: Sequence[Outcome]) -> list[tuple[str, str | int]]:
        """Record outcomes; returns (id, new status) or (id, -1) when fenced off."""
        args: list[Any] = [partition.prefix, self.keys.wake_channel, self._ttl_ms, self._dlq_ttl_ms,
                           self.settings.finished_cap]
        # a completed attempt needs only its output: the short form is a third of the JSON to write and split
        args.extend(
            orjson.dumps((o.run_id, o.token, o.output_json) if o.outcome == "completed" and not o.error_json
                         else (o.run_id, o.token, o.outcome, o.output_json, o.error_json,
                               "1" if o.permanent else "0", random.random()))
            for o in outcomes
        )
        raw = await self._call("runs_finish", [partition.leased], args)
        return [(text(raw[i]), raw[i + 1] if isinstance(raw[i + 1], int) else text(raw[i + 1]))
                for i in range(0, len(raw), 2)]

    async def reap(self, partition: Partition, limit: int = 500, incarnation: str = "") -> Reaped:
        """Reclaim expired leases, unless Redis itself was just out (see leases_reap.lua). With
        ``incarnation`` (the calling node process's: the leaser's call), a lease granted to that very
        process is left to it for a lease TTL past its expiry, not reaped as its crash."""
        # reapers tick every reap interval, with jitter: a fleet ticking more slowly than the TTL is not out
        quiet_ms = max(self.settings.lease_ttl_ms, 3 * self.settings.reap_interval_ms)
        raw = await self._call(
            "leases_reap", [partition.leased],
            [partition.prefix, limit, self._ttl_ms, self._dlq_ttl_ms, self.settings.finished_cap,
             random.random(), self.keys.wake_channel, self.settings.lease_ttl_ms, quiet_ms,
             self.settings.node_id, incarnation],
        )
        gap_ms, grace_ms = int(raw[0]), int(raw[1])
        runs = [(text(raw[i]), text(raw[i + 1]), text(raw[i + 2])) for i in range(2, len(raw), 3)]
        return Reaped(runs, gap_ms, grace_ms)

    async def trim_indices(self, partition: Partition) -> int:
        """Trim the terminal-status indices by retention and cap (runs past their retention leave
        their project's index too); returns how many entries left by age."""
        return int(await self._call(
            "indices_trim", [partition.leased],
            [partition.prefix, self._ttl_ms, self._dlq_ttl_ms, self.settings.finished_cap],
        ))

    async def promote(self, partition: Partition, limit: int = 1000) -> tuple[int, int]:
        """Move due delayed runs to ready; returns (moved, ms until next due or -1)."""
        moved, wait = await self._call(
            "runs_promote", [partition.delayed],
            [partition.prefix, limit, self.keys.wake_channel, self._ttl_ms, self.settings.finished_cap],
        )
        return int(moved), int(wait)

    async def cancel(self, run_id: str) -> int:
        """Cancel a run; returns the script's status code (see run_cancel.lua)."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call(
            "run_cancel", [p.run(run_id)],
            [p.prefix, run_id, self.keys.cancel_channel, self._ttl_ms, self.settings.finished_cap,
             self.keys.wake_channel],
        ))

    async def replay(self, run_id: str, new_id: str, dead_letter_only: bool = False) -> int:
        """Create ``new_id`` from finished run ``run_id``; returns the status code.

        With ``dead_letter_only`` the source must be dead-lettered and not yet replayed (then it records
        ``replayed_as``).
        """
        p = self.keys.partition_of_run(run_id)
        return int(await self._call(
            "run_replay", [p.run(run_id)],
            [p.prefix, new_id, self.keys.wake_channel, "dead_letter" if dead_letter_only else ""],
        ))

    async def pause(self, run_id: str) -> int:
        """Pause a run; returns the status code (see run_pause.lua)."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call("run_pause", [p.run(run_id)], [p.prefix, run_id]))

    async def resume(self, run_id: str) -> int:
        """Resume a paused run; returns the status code (see run_resume.lua)."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call("run_resume", [p.run(run_id)], [p.prefix, run_id, self.keys.wake_channel]))

    async def reschedule(self, run_id: str, run_at_ms: int | None, delay_ms: int | None) -> int:
        """Move a not-yet-started run to a new start time (absolute, or a delay judged by the Redis clock)."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call(
            "run_reschedule", [p.run(run_id)],
            [p.prefix, run_id, "" if run_at_ms is None else run_at_ms, "" if delay_ms is None else delay_ms,
             self.keys.wake_channel],
        ))

    async def restart(self, run_id: str, new_id: str) -> int:
        """Start ``run_id`` over as ``new_id`` (canceling it if live); returns the status code."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call(
            "run_restart", [p.run(run_id)],
            [p.prefix, run_id, new_id, self.keys.cancel_channel, self.keys.wake_channel, self._ttl_ms,
             self.settings.finished_cap],
        ))

    async def reset_idempotency(self, run_id: str) -> int:
        """Forget the run's idempotency key; 1 reset, 0 nothing mapped to it, -2 missing."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call("run_idem_reset", [p.run(run_id)], [p.prefix, run_id]))

    async def delete(self, run_id: str) -> int:
        """Delete a finished run and its history; 1 deleted, -2 missing, -4 not finished."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call("run_delete", [p.run(run_id)], [p.prefix, run_id]))

    async def watch(self, run_id: str) -> int:
        """Have the run's derived status changes written to its timeline from now on (a live reader
        blocks on the stream); 1 watched, -2 missing."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call("run_watch", [p.run(run_id)], [p.prefix]))

    async def set_debug(self, run_id: str, on: bool) -> int:
        """Set the run's debug-mode flag; 1 set, -2 missing."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call("run_debug", [p.run(run_id)], [p.prefix, run_id, "1" if on else "0"]))

    async def append(self, run_id: str, token: str, stream: str, entries: Sequence[tuple[str, str]],
                     number: int | None = None) -> int:
        """Fenced append of (type, JSON data) entries to the run's 'rec' or 'chunks' stream.

        Returns how many were appended, or -1 when the lease is gone. ``number``: the append's
        number for this lease and stream (1, 2, ... in order): sent again, it is not applied twice.
        """
        p = self.keys.partition_of_run(run_id)
        cap = RECORDS_MAX if stream == "rec" else CHUNKS_MAX
        args: list[Any] = [p.prefix, run_id, token, stream, cap, _number(number)]
        for kind, data in entries:
            args.extend((kind, data))
        raw = await self._call("run_append", [p.run(run_id)], args)
        return int(raw[0]) if isinstance(raw, list) else int(raw)

    async def update(
        self, run_id: str, token: str, fields: dict[str, str] | None, events: Sequence[tuple[str, str]],
        number: int | None = None,
    ) -> int:
        """Fenced write of record fields and timeline events; -1 when the lease is gone. ``number``:
        the write's number for this lease (1, 2, ... in order): sent again, it is not applied twice."""
        p = self.keys.partition_of_run(run_id)
        args: list[Any] = [p.prefix, run_id, token, _number(number), orjson.dumps(fields).decode() if fields else ""]
        for kind, data in events:
            args.extend((kind, data))
        return int(await self._call("run_update", [p.run(run_id)], args))

    async def record_step(self, run_id: str, token: str, name: str, index: int, record_json: str,
                          completed: bool) -> int:
        """Fenced write of one step record; 1 written (2: and a pause was requested), -1 lease gone,
        -6 completed step exists."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call(
            "step_record", [p.run(run_id)],
            [p.prefix, run_id, token, name, index, record_json, "1" if completed else "0"],
        ))

    async def checkpoint(self, run_id: str, token: str, source: str, state_json: str,
                         number: int | None = None, place: str = "") -> int:
        """Fenced checkpoint append; returns its sequence number, or -1 when the lease is gone.
        ``number``: the checkpoint's number for this lease (1, 2, ... in order): sent again, the
        first one's sequence is returned and nothing is stored twice. ``place``: where in the
        handler it was taken (runtime/run_checkpoints.py), kept with it."""
        p = self.keys.partition_of_run(run_id)
        raw = await self._call("checkpoint_add", [p.run(run_id)],
                               [p.prefix, run_id, token, source, state_json, _number(number), place])
        return int(raw[0]) if isinstance(raw, list) else int(raw)

    async def send_event(self, key: str, data_json: str, ttl_ms: int) -> int:
        """Deliver an event to waiting runs in every partition; returns how many woke.

        A partition whose master does not answer (Redis Cluster, one master down) does not keep
        the event from the partitions after it: its error is raised once they have it. Sending
        the event again then completes it (nobody wakes twice)."""
        return sum(await despite_outages(
            self.keys.partitions, lambda p: self.send_event_in(p, key, data_json, ttl_ms)))

    async def send_event_in(self, partition: Partition, key: str, data_json: str, ttl_ms: int) -> int:
        """Deliver an event to the waiting runs of one partition, and store it there for later
        waiters; returns how many woke. Sending it again wakes nobody twice."""
        return int(await self._call("event_send", [partition.event_waiters(key)],
                                    [partition.prefix, key, data_json, ttl_ms, self.keys.wake_channel]))

    async def send_signal(self, run_id: str, name: str, data_json: str, most: int) -> int:
        """Deliver or buffer a signal; 1 delivered, 0 buffered, -2 missing, -3 finished, -9 buffer full."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call("signal_send", [p.run(run_id)],
                                    [p.prefix, run_id, name, data_json, most, self.keys.wake_channel]))

    async def take_message(self, run_id: str, token: str, kind: str, key: str, step: str,
                           index: int, at_json: str = "") -> tuple[str, str, bool] | int:
        """Fenced: take what a beginning event, signal or token wait already has, recording its step (at
        ``at_json``, its position); (step status, data JSON, pause requested), or 0 when nothing arrived yet,
        -1 when the lease is gone."""
        p = self.keys.partition_of_run(run_id)
        raw = await self._call("message_take", [p.run(run_id)],
                               [p.prefix, run_id, token, kind, key, step, index, at_json])
        if isinstance(raw, list):
            return text(raw[0]), text(raw[1]), int(raw[2]) == 1
        return int(raw)

    async def set_state(self, run_id: str, token: str, state_json: str) -> int:
        """Fenced write of the state a handler publishes; the time stored (ms), or -1 when the lease is gone."""
        p = self.keys.partition_of_run(run_id)
        return int(await self._call("state_set", [p.run(run_id)], [p.prefix, run_id, token, state_json]))

    async def create_token(self, run_id: str, token: str, token_id: str, timeout_ms: int, tags_json: str,
                           max_timeout_ms: int) -> tuple[int, int] | None:
        """Fenced, idempotent creation of a waitpoint token in its run's partition; (created_at, expires_at)
        in ms, or None when the lease is gone."""
        p = self.keys.partition_of_run(run_id)
        raw = await self._call("token_create", [p.run(run_id)],
                               [p.prefix, run_id, token, token_id, timeout_ms, tags_json, self._ttl_ms,
                                max_timeout_ms])
        return (int(raw[0]), int(raw[1])) if isinstance(raw, list) else None

    async def settle_token(self, token_id: str, outcome: str, data_json: str, by: str) -> int | tuple[int, str]:
        """Complete or expire a token once; (1 run resumed | 0 not waiting yet, run id), or -2 missing,
        -5 already completed, -7 already expired."""
        p = self.keys.partition_of_run(token_id)
        raw = await self._call("token_settle", [p.token(token_id)],
                               [p.prefix, token_id, outcome, data_json, self.keys.wake_channel, by])
        return (int(raw[0]), text(raw[1])) if isinstance(raw, list) else int(raw)

    async def scheduler_lease(self, node_id: str, ttl_ms: int) -> bool:
        """Take or keep the scheduler lease; True while this node holds it."""
        return int(await self._call("scheduler_lease", [self.keys.scheduler_lease], [node_id, ttl_ms])) == 1

    async def webhook_claim(self, most: int, timeout_ms: int) -> list[str]:
        """Take up to ``most`` due webhook deliveries, hidden from other nodes for ``timeout_ms``."""
        return [text(i) for i in await self._call("webhook_claim", [self.keys.webhook_due], [most, timeout_ms])]

    async def limits_apply(self, partition: Partition, job: str, which: str, spec: str) -> int:
        """Store a job's limits ('code' or runtime 'override'; spec '' deletes) in one partition and
        bring its executing runs' lease sets in line; returns how many runs changed sets."""
        return int(await self._call("limits_apply", [partition.leased], [partition.prefix, job, which, spec]))

    async def reconcile(self, partition: Partition) -> dict[str, int]:
        """Check and repair a partition's exact indices; returns the drift found (expected all 0)."""
        total, leased, cc, ready = await self._call("reconcile", [partition.leased], [partition.prefix])
        return {"total": int(total), "leased": int(leased), "concurrency": int(cc), "ready": int(ready)}


#: where a run's input is among its fields (RunSpec), which create_args sends apart
_INPUT_AT = RunSpec._fields.index("input_json")

#: What a node may take, past the wait for a grant's reply, to hold the lease in its leaser and
#: have a renewal that lists it run (event loop turns and a round trip, and then some)
TAKE_MARGIN_MS = 1_000


def new_incarnation() -> str:
    """A node process's incarnation: the name its lease renewals go by (leases_renew.lua), new for
    each process, the same for all its actors."""
    return secrets.token_hex(8)


def grant_margin_ms(settings: Settings) -> int:
    """How long after a lease's grant a renewal of its node surely lists it, if the node got it: the
    grant's reply may take the reply timeout to arrive (past it, the node drops it), then the node
    TAKE_MARGIN_MS to hold it and renew (leases_renew.lua notes it, leases_reap.lua uses it). A
    renewal held up past that on its way (a server stalled longer) can make a lease its node had
    look never got: that attempt goes uncharged."""
    return int(socket_timeout_s(settings.redis_timeout_ms, settings.durable_timeout_ms) * 1000) + TAKE_MARGIN_MS


def create_args(spec: Sequence[Any]) -> tuple[bytes, Any]:
    """One run's two runs_create arguments, from its fields (RunSpec.script_args()): the fields as a
    JSON array, then the input. The input goes apart, not inside the array as an escaped string,
    and the array stops at its last non-empty field (runs_create takes the missing ones as empty).
    Decoding the whole array was a fifth of what creating a run cost Redis (22k of ~106k
    instructions, callgrind); of that, the escaped ~100-byte input cost ~3k and each empty field
    ~500."""
    fields = list(spec)
    input_json = fields[_INPUT_AT]
    fields[_INPUT_AT] = ""
    end = len(fields)
    while fields[end - 1] == "":  # (the id, first, is never empty)
        end -= 1
    return orjson.dumps(fields[:end]), input_json


def _number(number: int | None) -> str:
    """A fenced write's number as the scripts take it: '' when the write is not numbered."""
    return "" if number is None else str(number)
