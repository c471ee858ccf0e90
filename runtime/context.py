"""The run context handed to every handler: durable steps, logs, progress, waits.

A handler may be executed more than once for one run (a retry, a reclaim after a
crash, a resume after a durable wait). Everything that must not happen twice is
a *step*: its record is written (fenced by the lease token) when it finishes,
and a later execution gets the recorded output back instead of running it again.
Steps are identified by name and by position (runtime/step_positions.py: branches
run at once number their own): a replay that reaches a different step at the
same position fails with :class:`NonDeterminism` instead of mixing two histories.

Durable waits (``sleep``, ``wait_for_event``, ``wait_for_signal``, ``wait_for_token``,
``trigger_and_wait``) end the current attempt without charging it: the slot and
the lease are freed, and the run is queued again when the wait is over,
replaying its completed steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from . import signals, tokens
from .attempt_ends import ContinueAsNew, Endings, Suspend
from .dependencies import parent_outputs
from .errors import LeaseLost, raise_for_status
from .fencing import LeaseClock, lease_margin_s
from .ids import routed_run_id
from .json_values import encode
from .limits import check_tags, fit_log_entry, stored_json
from .records import iso
from .redis_faults import ride_out
from .run_checkpoints import RunCheckpoints
from .run_children import RunChildren
from .run_logs import RunLogCapture, RunLogger, current_run
from .run_records import RunRecords
from .run_steps import RunSteps
from .run_tasks import uncut
from .step_positions import legacy_history, replay_marks, stored_position
from .tracing import span

if TYPE_CHECKING:
    from .app import Baton
    from .scripts import Claimed

__all__ = ["ContinueAsNew", "RunContext", "RunLogCapture", "RunLogger", "Suspend", "current_run"]

T = TypeVar("T")


class RunContext(RunSteps, RunChildren, RunRecords, RunCheckpoints):
    """What a handler can do with its run. Create with :meth:`for_claim` (the executor does)."""

    # (fields that start the same for every run are class attributes until first set: an instance
    # attribute less to store per run, on the drain path)
    _next_index = 0
    _current_step: str | None = None
    _log_seq = 0
    _lineage: tuple[str, int] | None = None
    #: set by the executor: starts the periodic flush the first time something is buffered,
    #: so runs that never log cost no flush task at all
    on_buffer: Callable[[], None] | None = None
    _flush_scheduled = False
    _project = "default"
    _rec_seq = 0
    _chunk_task: asyncio.Task[None] | None = None

    def __init__(self, app: Baton, claimed: Claimed, steps: dict[str, dict[str, Any]] | None = None,
                 lease: LeaseClock | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._app = app
        #: what the node knows of this lease's expiry; without one (a context built outside
        #: a node) the lease is confirmed with Redis before every fenced piece of work
        self._lease = lease or LeaseClock(float("-inf"), lease_margin_s(app.settings.lease_ttl_ms))
        self._claimed = claimed
        self.run_id = claimed.run_id
        self.job = claimed.job
        self.attempt = claimed.attempt
        self.node_id = app.settings.node_id
        self.metadata: dict[str, Any] = orjson.loads(claimed.metadata_json) if claimed.metadata_json else {}
        self.tags: list[str] = orjson.loads(claimed.tags_json) if claimed.tags_json else []
        self._token = claimed.token
        #: the monotonic instant of the grant (the lease's best estimate): what now_ms() counts from, with
        #: the grant's Redis time. Not this context's creation: a run can start well after its lease was granted (a
        #: hand-off popped late, a busy loop), and now_ms() would then be behind Redis by that much
        #: (a durable sleep ended early by it)
        self._mono0 = lease.granted_at if lease is not None and lease.granted_at is not None else time.monotonic()
        self._steps = steps or {}
        # (most runs have no steps recorded: nothing to index)
        self._by_index = {int(r["index"]): r for r in steps.values() if r.get("index") is not None} if steps else {}
        #: the recorded steps by position (records written before positions were stored have none)
        if steps:  # (most runs have none: the empty defaults are the class's)
            self._by_position = {at: r for r in steps.values() if (at := stored_position(r)) is not None}
            self._legacy = legacy_history(steps)
            self._replay_marks = replay_marks(self._by_position)
        #: the position just past the furthest step an earlier attempt reached (completed it, failed in
        #: it, or ended waiting in it): until the handler gets there it runs code that attempt already
        #: ran (``replaying``)
        self._replay_until = 1 + max(self._by_index) if self._by_index else 0
        self._names_used: set[str] = set()
        self.endings = Endings()  # (how the attempt ends, if the handler catches it: see Endings)
        self._lock = threading.Lock()
        self._events: list[tuple[str, str]] = []
        self._fields: dict[str, str] = {}
        self._loop_thread = threading.get_ident()
        # usage / tool-call / output records (flushed with the logs) and streamed chunks (written at once)
        self._records: list[tuple[str, str]] = []
        self._write_numbers: dict[str, int] = {}
        #: one flush or checkpoint at a time: their writes land in order, numbered (_next_write)
        self._write_lock = asyncio.Lock()
        self._chunks: list[tuple[str, str]] = []
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        self._loop: asyncio.AbstractEventLoop | None = loop

    @classmethod
    async def for_claim(cls, app: Baton, claimed: Claimed, lease: LeaseClock | None = None,
                        loop: asyncio.AbstractEventLoop | None = None) -> RunContext:
        """Build the context, loading recorded steps when the run has any (``loop``: the running
        loop, when the caller holds it)."""
        steps: dict[str, dict[str, Any]] = {}
        if claimed.step_count:
            p = app.keys.partition_of_run(claimed.run_id)
            raw = await ride_out(lambda: app.redis.hgetall(p.steps(claimed.run_id)),
                                 lease.time_left if lease is not None else lambda: 0.0, "loading the run's steps")
            steps = {(k.decode() if isinstance(k, bytes) else k): orjson.loads(v) for k, v in raw.items()}
        return cls(app, claimed, steps, lease, loop)

    @property
    def log(self) -> RunLogger:
        """``ctx.log``: lines into this run's log (made on each use: held by the context, a logger that
        names it would be a reference cycle per attempt)."""
        return RunLogger(self)

    # -- fencing ------------------------------------------------------------

    async def confirm_lease(self, work: str) -> None:
        """Raise LeaseLost unless this run's lease surely still holds (see runtime/fencing.py).

        Free while the lease has more than the margin left by the monotonic
        clock; otherwise one renewal call asks Redis. Called before every side
        effect Lua cannot fence: a step function, a child trigger, a handler start.
        """
        if not self._lease.needs_confirmation():
            return
        asked = time.monotonic()
        partition = self._app.keys.partition_of_run(self.run_id)
        lost, _cancel = await self._on_lease(lambda: self._app.scripts.renew(partition, [(self.run_id, self._token)]),
                                             f"confirming the lease before {work}")
        if lost:
            raise LeaseLost(f"run {self.run_id}: lease may have expired ({-self._lease.time_left():.1f}s past "
                            f"its deadline on this node) and is no longer held; {work} was not started")
        self._lease.extend(asked + self._app.settings.lease_ttl_ms / 1000)

    async def _on_lease(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """A call Baton makes for this run, waited through a Redis outage for as long as the lease
        may still hold (runtime/redis_faults.py ride_out); past that, OutageOutlastedLease ends
        the attempt uncharged."""
        return await ride_out(call, self._lease.time_left, f"run {self.run_id}: {what}")

    # -- time ---------------------------------------------------------------

    def now_ms(self) -> int:
        """Current time on the Redis clock, estimated from the lease grant's (ms; see LeaseGranted's
        ``granted_at``). Never behind Redis (a durable sleep must not end early); ahead of it by up to
        the delay between sending the call that granted the lease and Redis running it (well under a
        millisecond mostly, tens of ms for a node's first call on a new connection). To compare moments
        across nodes exactly, read Redis's TIME."""
        return int(self._claimed.claimed_at_ms + (time.monotonic() - self._mono0) * 1000)

    # -- steps --------------------------------------------------------------

    async def _record(self, name: str, index: int, record: dict[str, Any]) -> None:
        completed = record["status"] == "completed"
        record["at"] = list(self._position_of(name))
        await self.flush()
        record_json = encode(record)
        code = await self._on_lease(
            lambda: self._app.scripts.record_step(self.run_id, self._token, name, index, record_json, completed),
            f"recording step {name!r}")
        if code == -1:
            raise LeaseLost(f"run {self.run_id}: lease lost; step {name!r} not recorded")
        raise_for_status(code, self.run_id)
        self._steps[name] = record
        self._by_index[index] = record
        if code == 2 and completed:
            # a pause was requested: this step boundary is where it takes effect; the run is parked
            # (uncharged) and, once resumed, replays its completed steps up to here
            raise self.endings.note(Suspend({"kind": "paused", "step": name, "index": index}))

    def _span(self, name: str, attributes: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
        """A span of this run (current inside the block) when the node traces; nothing otherwise."""
        if not self._app.settings.tracing:
            return contextlib.nullcontext()
        return span(name, run_id=self.run_id, job=self.job, attempt=self.attempt, attributes=attributes)

    @property
    def completed_steps(self) -> list[str]:
        """Names of the steps recorded completed, in order."""
        done = [r for r in self._steps.values() if r.get("status") == "completed"]
        return [str(r["name"]) for r in sorted(done, key=lambda r: int(r.get("index") or 0))]

    # -- logs, progress, metadata -------------------------------------------

    @property
    def replaying(self) -> bool:
        """True while the handler re-runs code an earlier attempt already ran: it has not yet reached the
        furthest step an earlier attempt reached (completed, failed in, or ended waiting in: children, a
        sleep, an event). Completed steps it reaches meanwhile return their recorded outputs; a step
        executed again (a failed one, one a crash cut short) is not replaying while it runs.

        Nothing the handler reports is recorded meanwhile (``ctx.log`` lines, captured ``logging`` calls,
        progress, usage, tool-call and output records, stream chunks, published state, checkpoints the
        earlier attempt stored: they were recorded when that code first ran), so a retry or resume
        neither logs its history twice, nor counts a model call's cost twice, nor goes back to an
        older state."""
        if not self._replay_until:
            return False
        branch = self._in_sequence()
        if branch is self._own or self._legacy:
            return self._next_index < self._replay_until
        # (a branch replays while it has not reached its own furthest recorded step: its siblings may be
        # replaying still, or running code no attempt ran)
        return branch.taken < self._replay_marks.get(branch.anchor, 0)

    def end_replay(self) -> None:
        """The handler's call has ended: whatever is logged from now on (the node's lines on the attempt's
        end) is recorded, however far the handler got."""
        self._replay_until = 0

    def _add_log(self, level: str, message: str, data: Any, created: float) -> None:
        if self.replaying:
            return
        with self._lock:
            self._log_seq += 1
            entry = {
                "id": f"{self.run_id}:{self.attempt}:{self._log_seq}", "runId": self.run_id,
                "stepName": self._current_step, "level": level, "message": message, "data": data,
                "timestamp": iso(created * 1000),
            }
            self._events.append(("log", fit_log_entry(entry, self._app.settings)))
        self._buffered()

    def progress(self, current: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress (the seed's Progress); readable on the run at once after the next flush.
        Not while ``replaying``: the run shows how far an earlier attempt got until this one is past it."""
        value = {"current": current, "total": total, "message": message}
        data = stored_json("progress", value, self._app.settings, "max_record_bytes")
        if self.replaying:
            return
        with self._lock:
            self._fields["progress"] = data
            self._events.append(("progress", data))
        self._buffered()

    def set_metadata(self, **values: Any) -> None:
        """Merge keys into the run's metadata (written with the next flush; nothing when they change nothing,
        as when a retry replays the call)."""
        merged = {**self.metadata, **values}
        data = stored_json("the run's metadata", merged, self._app.settings, "max_metadata_bytes")
        if merged == self.metadata:
            return
        self.metadata = merged
        with self._lock:
            self._fields["metadata"] = data
            self._events.append(("metadata", data))
        self._buffered()

    def _buffered(self) -> None:
        """Something waits to be written: make sure a periodic flush is running."""
        if self._flush_scheduled or self.on_buffer is None:
            return
        self._flush_scheduled = True
        if threading.get_ident() == self._loop_thread:
            self.on_buffer()
        else:  # a plain-def handler's thread
            loop = self._loop or asyncio.get_event_loop()
            loop.call_soon_threadsafe(self.on_buffer)

    def add_tags(self, *tags: str) -> None:
        """Add tags to the run (written with the next flush)."""
        merged = [*self.tags, *(t for t in dict.fromkeys(tags) if t not in self.tags)]
        check_tags(merged)
        self.tags = merged
        with self._lock:
            self._fields["tags"] = encode(self.tags)
        self._buffered()

    def has_buffered(self) -> bool:
        """Whether anything waits to be written (most runs log nothing: their last flush is skipped)."""
        return bool(self._events or self._fields or self._records or self._chunks or self._chunk_task is not None)

    def writes_pending(self) -> bool:
        """Whether a flush has anything to do: entries buffered, or a write still in flight."""
        return self.has_buffered() or self._write_lock.locked()

    async def flush(self) -> None:
        """Write buffered logs, progress, metadata, usage/tool-call/output records and chunks now
        (fenced), after any write still in flight. A cancellation of the caller (a timeout, the
        attempt's end) does not cut the write off: its entries have left the buffer."""
        if self.writes_pending():
            await uncut(self._flush_locked())

    async def _flush_locked(self) -> None:
        async with self._write_lock:
            await self._flush_held()

    async def _flush_held(self) -> None:
        """flush, with the write lock held."""
        with self._lock:
            events, fields, records = self._events, self._fields, self._records
            self._events, self._fields, self._records = [], {}, []
        if events or fields:
            number = self._next_write("u")
            code = await self._on_lease(lambda: self._app.scripts.update(self.run_id, self._token, fields or None,
                                                                         events, number),
                                        "writing logs and progress")
            if code == -1:
                raise LeaseLost(f"run {self.run_id}: lease lost; log/progress writes rejected")
        if records:
            number = self._next_write("rec")
            appended = await self._on_lease(lambda: self._app.scripts.append(self.run_id, self._token, "rec", records,
                                                                             number),
                                            "writing usage, tool-call and output records")
            if appended == -1:
                raise LeaseLost(f"run {self.run_id}: lease lost; usage/tool-call/output records rejected")
        if self._chunks or (self._chunk_task is not None and not self._chunk_task.done()):
            if self._loop is None:  # made outside a running loop: chunks go out here, at the flush
                self._loop = asyncio.get_running_loop()
            self._kick_chunks()
            if self._chunk_task is not None:
                await asyncio.shield(self._chunk_task)

    async def link_continuation(self, new_id: str) -> int:
        """Record on this run the run that continues it (continue-as-new): its ``continued_as``
        field and a ``continued`` timeline event, fenced and numbered like a flush (so a retry after
        a lost reply writes the event once). 1 written, -1 when the lease is gone."""
        event = ("continued", orjson.dumps({"run_id": new_id}).decode())
        async with self._write_lock:
            number = self._next_write("u")
            return await self._on_lease(
                lambda: self._app.scripts.update(self.run_id, self._token, {"continued_as": new_id}, [event], number),
                "linking the run that continues it")

    async def debug_enabled(self) -> bool:
        """Whether debug mode is on for this run (``POST /v1/runs/{id}/debug``); read from Redis each call."""
        p = self._app.keys.partition_of_run(self.run_id)
        return bool(await self._app.redis.hget(p.run(self.run_id), "debug_mode") == b"1")

    async def parent_outputs(self) -> dict[str, Any]:
        """Outputs of the parents this run was created to depend on (``depends_on``, workflow
        parents), by parent name; see runtime/dependencies.py."""
        return await parent_outputs(self._app, self.run_id)

    # -- durable waits ------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the run waits without holding a slot or a lease, then resumes."""
        name, index, _tag, record = self._begin_auto("__sleep")
        if record is not None and record.get("status") == "completed":
            return
        if record is None:
            deadline = self.deadline_after(seconds, "sleep")
            await self._record(name, index, {"name": name, "index": index, "status": "waiting",
                                             "output": {"until": deadline}, "error": None,
                                             "started_at": self.now_ms(), "completed_at": None})
        else:
            deadline = int(record["output"]["until"])
        if self.now_ms() + 1 >= deadline:
            await self._record(name, index, {"name": name, "index": index, "status": "completed",
                                             "output": {"until": deadline}, "error": None,
                                             "started_at": (record or {}).get("started_at"),
                                             "completed_at": self.now_ms()})
            return
        raise self.endings.note(Suspend({"kind": "sleep", "deadline": deadline, "step": name, "index": index}))

    async def wait_for_event(self, key: str, timeout: float | None = None) -> Any:
        """Wait durably for ``send_event(key, data)``; returns ``data``.

        An event sent before the wait starts is kept for ``event_ttl_s`` and
        delivered at once (each run gets an event once). Raises :class:`WaitTimeout`
        after ``timeout`` seconds without an event (uncaught: the run fails, not retried).
        """
        position = self._reserve()  # (before the await: see runtime/step_positions.py)
        project = await self.project()
        if project != "default":
            key = f"{project}/{key}"  # events are scoped to the run's project (see POST /v1/events)
        deadline = self.deadline_after(timeout, "timeout") if timeout is not None else None
        return await signals.keyed_wait(self, "event", key, deadline, f"no event {key!r} within {timeout}s",
                                        step="__event", position=position)

    # -- messages: signals, queries, waitpoint tokens (runtime/signals.py, runtime/tokens.py) ----------

    async def wait_for_signal(self, name: str, timeout: float | None = None) -> Any:
        """Wait durably for ``app.signal(run_id, name, data)``; returns ``data``. Signals sent earlier wait
        in the run's buffer: each call takes the oldest one of ``name`` (in order, each once). Raises
        :class:`WaitTimeout` after ``timeout`` seconds without one."""
        return await signals.wait_for_signal(self, name, timeout)

    async def set_state(self, value: Any) -> None:
        """Publish ``value`` (JSON, at most max_checkpoint_bytes) for ``app.query(run_id)`` to read at once
        (nothing while ``replaying``: the earlier attempt published it)."""
        await signals.set_state(self, value)

    async def create_token(self, timeout: float | None = None, tags: Iterable[str] = ()) -> tokens.WaitToken:
        """Create a waitpoint token (once per run, even across replays): an id and a pre-signed callback
        URL; expires after ``timeout`` seconds (default and most: token_max_timeout_s)."""
        return await tokens.create_token(self, timeout, tags)

    async def wait_for_token(self, token: tokens.WaitToken | str) -> Any:
        """Wait durably until the token is completed; returns the JSON it was completed with. Raises
        :class:`WaitTimeout` once it expires."""
        return await tokens.wait_for_token(self, token)

    # -- continuation -------------------------------------------------------

    def continue_as_new(self, payload: Any = None) -> None:
        """Finish this run now and start a new run of the same job with ``payload``.

        The new run has ``continuation_of`` = this run; this run records
        ``continued_as`` and its output is ``{"continued_as": <new id>}``.
        """
        raise self.endings.note(ContinueAsNew(payload))

    async def start_continuation(self, payload: Any) -> str:
        """Create the continuation run (``payload`` its input) and link both ways; its id (the executor
        then completes this run with ``{"continued_as": <id>}``)."""
        new_id = self.continuation_id()
        root, depth = await self._lineage_info()
        spec = await self._app._spec(
            {"job": self.job, "input": payload, "id": new_id}, source="continuation",
            extra={"continuation_of": self.run_id, "root_id": root, "lineage_depth": depth,
                   "triggered_by": "continue", "project": await self.project()},
        )
        await self._app.create([spec])
        await self.link_continuation(new_id)
        return new_id

    def continuation_id(self) -> str:
        """The deterministic id of this run's continuation (the same on every retry)."""
        base = "c" + hashlib.sha1(self.run_id.encode()).hexdigest()[:25]
        return routed_run_id(self._app.keys, self.run_id, base)
