"""Executor: runs leased runs' handlers in a pool of slots, and reports outcomes.

Outcomes go to the reporter, which records them in batches through the fenced
``runs_finish`` script. What a handler does through its run context (steps,
logs, child runs, continuations) is written by the context itself, fenced by
the lease token.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
from redis.exceptions import RedisError

from runtime.app import Baton
from runtime.attempt_ends import unwrapped
from runtime.attempt_outcomes import completed, ended, exception_text
from runtime.batching import Batcher
from runtime.codec import text
from runtime.context import ContinueAsNew, RunContext, RunLogCapture, Suspend, current_run
from runtime.errors import (
    EventLoopBlocked,
    HandlerCancelled,
    JobTimeout,
    LeaseLost,
    OutageOutlastedLease,
    PermanentFailure,
)
from runtime.fencing import LeaseClock, StepTimed, lease_margin_s, long_step_s
from runtime.jobs import Job
from runtime.logs import run_log_context
from runtime.messages import AskBusy, Attempt, CancelRun, LeaseGranted, LeasesRenewed, ReleaseAll, RunFinished, WhenIdle
from runtime.metrics import Metrics, observe_many
from runtime.run_tasks import cancel_tasks_of
from runtime.scripts import Claimed, Outcome, released
from runtime.settings import Settings
from runtime.tracing import annotate, end_span, span, start_span

from .base import Actor, Mailbox, answer
from .lost_leases import LostLeases

__all__ = ["JOB_THREADS", "Executor"]

T = TypeVar("T")

#: What the names of the threads plain-def handlers run in begin with.
JOB_THREADS = "baton-job"
#: How often a running handler's logs and progress are written to Redis.
FLUSH_INTERVAL_S = 0.2
#: How long a cancelled handler (timeout, cancel, lost lease, drain) may take to end before the
#: executor records its outcome without it: a handler that ignores cancellation cannot hold a slot
#: and a lease forever
CANCEL_GRACE_S = 5.0

ExecutorMessage = LeaseGranted | LeasesRenewed | CancelRun | ReleaseAll | WhenIdle | AskBusy


class Executor(LostLeases, Actor[ExecutorMessage]):
    """Runs handlers: one asyncio task per leased run, at most ``slots`` at once.

    Cancellation reasons decide the recorded outcome: a user's cancel ends the
    run ``canceled``; a lost lease is reported too but will be fenced off; a
    graceful shutdown ``released`` the run without charging the attempt.
    """

    name = "executor"
    #: running handlers (and what they need to end and report) outlive a crash of run()
    survives = ("tasks", "claimed", "cancel_reasons", "threads", "leases", "contexts", "abandoned", "idle_replies",
                "batcher", "given_back", "lost", "blocking")

    @classmethod
    def inbox_size(cls, settings: Settings) -> int:
        """Room for a grant per slot and then some: the leaser never grants more than the free slots."""
        return settings.concurrency * 2 + 100

    def __init__(self, app: Baton, metrics: Metrics, inbox: Mailbox[ExecutorMessage],
                 reporter: Mailbox[RunFinished]) -> None:
        super().__init__(inbox)
        self.app = app
        self.reporter = reporter
        self.metrics = metrics
        self.slots = app.settings.concurrency
        self.tasks: dict[str, asyncio.Task[None]] = {}
        # read when scraped (on the metrics thread): a gauge set on every start and end of a run
        # took a lock twice per run
        metrics.slots_busy.set_function(lambda: len(self.tasks))
        #: why a running attempt was cancelled: an attempt of a run that is still ending when the
        #: run's next attempt starts here keeps its own reason
        self.cancel_reasons: dict[Attempt, str] = {}
        #: the lease of each running run (what an outcome recorded without its handler needs)
        self.claimed: dict[str, Claimed] = {}
        #: handlers that ignored cancellation past the grace: their outcome is recorded already
        self.abandoned: set[asyncio.Task[None]] = set()
        #: what this node knows of each running run's lease expiry (fencing of side effects)
        self.leases: dict[str, LeaseClock] = {}
        #: each running run's context while its handler runs (to cancel the tasks it started)
        self.contexts: dict[str, RunContext] = {}
        #: runs the watchdog's thread gave back while a handler blocked the loop (actors/stall_release.py):
        #: cancelled by on_stall, first thing when the loop runs again
        self.given_back: set[str] = set()
        #: the run whose handler the watchdog's thread found blocking the loop (cleared by on_stall)
        self.blocking: set[str] = set()
        #: attempts whose lease was counted lost here (baton_leases_lost_total): their fenced outcome is not
        #: counted again when the reporter finds it rejected
        self.lost: set[Attempt] = set()
        self.margin_s = lease_margin_s(app.settings.lease_ttl_ms)
        self.ttl_s = app.settings.lease_ttl_ms / 1000
        self.threads = ThreadPoolExecutor(max_workers=min(self.slots, 64), thread_name_prefix=JOB_THREADS)
        #: a handler step that held the loop this long is followed by on_stall (see StepTimed)
        self.long_step_s = long_step_s(app.settings.lease_ttl_ms)
        #: runs of batch jobs wait here for their batch (runtime/batching.py)
        self.batcher = Batcher(self.threads, self.timed)
        #: runs whose handlers started since the last _count_starts (counted once per loop turn)
        self.started: list[Claimed] = []
        #: the supervisor's WhenIdle questions, answered once nothing runs or waits to run
        self.idle_replies: list[asyncio.Future[None]] = []
        #: the process's event loop, set as run() begins: asyncio.get_running_loop() costs ~0.5 us
        #: here, and the drain path asked for it several times per run
        self.loop: asyncio.AbstractEventLoop | None = None
        # logging calls made inside handlers are copied into their run's log
        root = logging.getLogger()
        if not any(isinstance(h, RunLogCapture) for h in root.handlers):
            root.addHandler(RunLogCapture())
        job_logger = logging.getLogger("baton.job")
        if job_logger.level == logging.NOTSET:
            job_logger.setLevel(logging.INFO)  # ctx.log.info is always recorded in the run log

    async def run(self) -> None:
        """Take messages until stopped; running handlers keep going across restarts."""
        self.loop = asyncio.get_running_loop()
        try:
            while not self.stopping.is_set():
                msg = await self.receive(None)
                if msg is None:
                    break
                self.handle(msg)
                self._answer_if_idle()
        finally:
            if self.stopping.is_set():
                # stuck plain-def handlers are not waited for: their threads end with the process
                self.threads.shutdown(wait=False, cancel_futures=True)

    def handle(self, msg: ExecutorMessage) -> None:
        """Apply one inbox message."""
        if isinstance(msg, LeaseGranted):
            running = self._running(msg.claimed.run_id, msg.claimed.token)
            if running is not None and running.claimed_at_ms == msg.claimed.claimed_at_ms:
                self._granted_again(msg.claimed)
                return
            granted_at = msg.granted_at if msg.granted_at is not None else msg.deadline - self.ttl_s
            self.leases[msg.claimed.run_id] = LeaseClock(msg.deadline, self.margin_s, granted_at)
            self._start(msg.claimed)
        elif isinstance(msg, LeasesRenewed):
            for run_id in msg.run_ids:
                lease = self.leases.get(run_id)
                if lease is not None:
                    lease.extend(msg.deadline)
        elif isinstance(msg, CancelRun):
            if msg.reason == "lease_lost":
                self._lease_lost(msg)
            else:
                self._cancel(msg.run_id, msg.reason, msg.token)
        elif isinstance(msg, ReleaseAll):
            for run_id in list(self.tasks):
                self._cancel(run_id, "drain")
        elif isinstance(msg, WhenIdle):
            self.idle_replies.append(msg.reply)
        elif isinstance(msg, AskBusy):
            if not msg.reply.done():
                msg.reply.set_result(len(self.tasks))

    def _answer_if_idle(self) -> None:
        if self.idle_replies and not self.tasks and self.inbox.empty():
            answer(self.idle_replies)

    def timed(self, handler_call: Coroutine[Any, Any, T]) -> StepTimed[T]:
        """A handler's coroutine, awaited so that a step that blocked the loop is followed at once
        by on_stall (ahead of the handlers already waiting to resume)."""
        return StepTimed(handler_call, self.on_stall, self.long_step_s)

    def _start(self, claimed: Claimed) -> None:
        # An earlier attempt of the run may still be ending here (cancelled, or abandoned): from now
        # on the run id names this attempt, and what the earlier one does at its end is fenced off.
        task = self._loop().create_task(self._execute(claimed), name=f"run:{claimed.run_id}")
        task.add_done_callback(lambda done: self._ended_unstarted(claimed, done))
        self.tasks[claimed.run_id] = task
        self.claimed[claimed.run_id] = claimed

    def _loop(self) -> asyncio.AbstractEventLoop:
        """The event loop (run() has begun whenever a run is started or ended here)."""
        return self.loop or asyncio.get_running_loop()

    def _granted_again(self, c: Claimed) -> None:
        """A grant of the very lease already running here (same token, same grant time) is not
        started: a second task would run the attempt's steps twice under one token, which fencing
        cannot tell apart. (The receiver skips a hand-off popped twice; this holds for any path.
        The grant time tells a run deleted and created again under its id apart.)"""
        self.metrics.leases_granted_again.inc()
        with run_log_context(c.run_id, c.job, c.attempt):
            self.log.error("run %s was granted again under the lease it runs with (%s): not started twice",
                           c.run_id, c.token)

    def _ended_unstarted(self, c: Claimed, task: asyncio.Task[None]) -> None:
        """A task cancelled before its first step never ran _execute (nor its ``finally``): its
        attempt would hold the slot and stay leased, renewed, for as long as the node runs."""
        if self.tasks.get(c.run_id) is task and self.claimed.get(c.run_id) is c:
            self._report_without_handler(c)

    def _running(self, run_id: str, token: str = "") -> Claimed | None:
        """The attempt of ``run_id`` whose handler still runs here; with ``token``, only that
        attempt (news about an earlier lease of the run must not stop the next attempt)."""
        task = self.tasks.get(run_id)
        c = self.claimed.get(run_id)
        if task is None or task.done() or c is None or (token and c.token != token):
            return None
        return c

    def _cancel(self, run_id: str, reason: str, token: str = "") -> None:
        c = self._running(run_id, token)
        # the first reason wins: a lost lease stays lost even if a cancel follows
        if c is None or (c.run_id, c.token) in self.cancel_reasons:
            return
        task = self.tasks[run_id]
        self.cancel_reasons[c.run_id, c.token] = reason
        task.cancel()
        ctx = self.contexts.get(run_id)
        if ctx is not None:  # and what the handler started: a write due in one would go out first
            cancel_tasks_of(ctx)
        self._loop().call_later(CANCEL_GRACE_S, self._abandon, run_id, task)

    def _abandon(self, run_id: str, task: asyncio.Task[None]) -> None:
        """The handler ignored cancellation for CANCEL_GRACE_S: record its outcome without it.

        The task keeps running in the background (asyncio cannot stop it), but its
        slot is free, its lease is given up by the outcome, and whatever it still
        writes is fenced off by the token.
        """
        c = self.claimed.get(run_id)
        if task.done() or self.tasks.get(run_id) is not task or c is None:
            return
        self.abandoned.add(task)
        self.metrics.handlers_abandoned.inc()
        with run_log_context(run_id, c.job, c.attempt):
            self.log.error("handler of run %s ignored cancellation (%s) for %.0fs; its outcome is recorded without "
                           "it and the task is left running in the background", run_id,
                           self.cancel_reasons.get((c.run_id, c.token)), CANCEL_GRACE_S)
        self._report_without_handler(c)

    def _report_without_handler(self, c: Claimed) -> None:
        """Free the attempt's slot and record its cancelled outcome, its handler not having ended it."""
        outcome = self._cancelled(c)
        self._forget(c)
        finished = RunFinished(outcome, c.partition, c.job, 0.0, c.attempt, lost=bool(self.lost) and self._was_lost(c))
        try:
            self.reporter.send_nowait(finished)
        except asyncio.QueueFull:
            self.spawn(self.reporter.send(finished), f"report:{c.run_id}")

    def _forget(self, c: Claimed) -> None:
        """The attempt no longer occupies a slot of this executor (a later attempt of the run
        that started here meanwhile keeps its own)."""
        self.cancel_reasons.pop((c.run_id, c.token), None)
        if self.claimed.get(c.run_id) is not c:
            return
        self.tasks.pop(c.run_id, None)
        self.claimed.pop(c.run_id, None)
        self.leases.pop(c.run_id, None)
        self.contexts.pop(c.run_id, None)
        self._answer_if_idle()

    async def _execute(self, c: Claimed) -> None:
        started = time.monotonic()
        traced: list[Any] = []  # the run's span, when tracing (the parent of its finish span)
        try:
            outcome = await self._outcome(c, traced)
        except asyncio.CancelledError:
            outcome = self._cancelled(c)
        except OutageOutlastedLease as exc:  # (reading the run's steps, before its handler began)
            outcome = self._outage_outlasted(c, exc)
        except Exception as exc:
            self.log.exception("internal error while executing run %s", c.run_id)
            outcome = ended(self.app.settings, c, "failed", exc)
        finally:
            me = asyncio.current_task(self.loop)
            abandoned = me in self.abandoned
            if abandoned:  # its outcome was recorded when it was abandoned
                self.abandoned.discard(me)
            else:
                self._forget(c)
        if abandoned:
            return
        # ended by the reporter once the outcome is written
        finish = (start_span("baton.finish", parent_span=traced[0], run_id=c.run_id, job=c.job, attempt=c.attempt,
                             attributes={"baton.outcome": outcome.outcome}) if traced else None)
        await self.reporter.send(RunFinished(outcome, c.partition, c.job, time.monotonic() - started, c.attempt,
                                             lost=bool(self.lost) and self._was_lost(c),
                                             span=finish))

    def _cancelled_by_handler(self, c: Claimed) -> bool:
        """Whether the CancelledError that ended attempt ``c`` came from its handler: Baton cancels a run
        only through ``_cancel`` (with its reason), and nobody asked the run's task to cancel."""
        task = asyncio.current_task(self._loop())
        return (c.run_id, c.token) not in self.cancel_reasons and (task is None or task.cancelling() == 0)

    def _cancelled(self, c: Claimed) -> Outcome:
        reason = self.cancel_reasons.get((c.run_id, c.token), "drain")
        if reason == "canceled":
            return ended(self.app.settings, c, "canceled", None)
        if reason == "timed_out":
            timeout = JobTimeout(f"handler ran past its timeout of {c.timeout_ms / 1000:g}s")
            return ended(self.app.settings, c, "timed_out", timeout)
        if reason == "lease_lost":
            return ended(self.app.settings, c, "failed", None)  # will be fenced off by the token check
        if reason == "blocked":  # its handler blocked the loop past the lease: its failure, charged
            blocked = EventLoopBlocked("the handler blocked the event loop past the run's lease")
            return ended(self.app.settings, c, "failed", blocked)
        # drained, given back after a stall or an outage that outlasted the lease (reasons named as
        # RELEASED_BECAUSE names them): uncharged (fenced off if the lease was taken meanwhile), its record
        # saying which
        return released(c.run_id, c.token, reason)

    async def _outcome(self, c: Claimed, traced: list[Any]) -> Outcome:
        job = self.app.jobs.get(c.job)
        if job is None:  # the claim script only hands out served jobs; this is a bug guard
            missing = RuntimeError(f"job {c.job!r} not defined on this node")
            return ended(self.app.settings, c, "failed", missing, permanent=True)
        # counted once the handler is under way (the metrics are not on the pickup path), in one
        # callback for the runs a turn of the loop started
        if not self.started:
            self._loop().call_soon(self._count_starts)
        self.started.append(c)
        if not self.app.settings.tracing:
            with run_log_context(c.run_id, c.job, c.attempt):
                return await self._attempt(c, job)
        # one HGET per attempt, only with tracing on: the claim stays as lean as without it
        p = self.app.keys.partitions[c.partition]
        try:
            traceparent = text(await self.app.redis.hget(p.run(c.run_id), "trace_context") or b"")
        except RedisError as exc:  # the run goes on in a trace of its own rather than failing for it
            self.log.warning("could not read the trace context of run %s: %s", c.run_id, exc)
            traceparent = ""
        claim = start_span("baton.claim", traceparent=traceparent, run_id=c.run_id, job=c.job, attempt=c.attempt,
                           start_ns=c.ready_at_ms * 1_000_000, attributes={"baton.partition": c.partition})
        end_span(claim, end_ns=max(c.claimed_at_ms, c.ready_at_ms) * 1_000_000)
        with run_log_context(c.run_id, c.job, c.attempt), \
                span(f"baton.run {c.job}", traceparent=traceparent, run_id=c.run_id, job=c.job, attempt=c.attempt,
                     kind="consumer") as run_span:
            traced.append(run_span)
            outcome = await self._attempt(c, job)
            error = ""
            if outcome.outcome in ("failed", "timed_out") and outcome.error_json:
                error = str(orjson.loads(outcome.error_json).get("message", outcome.outcome))
            annotate(run_span, error=error, attributes={"baton.outcome": outcome.outcome})
            return outcome

    async def _attempt(self, c: Claimed, job: Job) -> Outcome:
        """Run the handler once under the lease; its outcome (the run's log context is set)."""
        loop = self._loop()
        ctx = await RunContext.for_claim(self.app, c, self.leases.get(c.run_id), loop)
        self.contexts[c.run_id] = ctx
        token = current_run.set(ctx)
        flushers: list[asyncio.Task[None]] = []

        def start_flusher() -> None:
            if not flushers:
                flushers.append(loop.create_task(self._flush_loop(c, ctx)))

        ctx.on_buffer = start_flusher
        # the timeout cancels the handler like any other cancellation (with the same grace)
        timer = (loop.call_later(c.timeout_ms / 1000, self._cancel, c.run_id, "timed_out",
                                                       c.token) if c.timeout_ms else None)
        cancel_landed = False
        try:
            try:
                payload = orjson.loads(c.input_json)
                # a handler (re)starting is fenced work too: not once the lease may have expired
                await ctx.confirm_lease("the handler")
                result = await self._call(job, ctx, payload, loop)
            finally:
                # what the node logs of the attempt's end (an error, a timeout) is said however far
                # the handler got, replaying or not
                ctx.end_replay()
                # the tasks it left running end with it, their steps under way recorded first (not when
                # the attempt is cancelled: a cancel does not wait for a step)
                if (settling := ctx.end_branches(wait=sys.exc_info()[0] is not asyncio.CancelledError)) is not None:
                    await settling
            if (caught := ctx.endings.first) is not None:
                ctx.log.warning("the handler caught %r (a BaseException) and returned: the attempt ends in it "
                                "all the same; catch Exception, not BaseException, around durable waits", caught)
                raise caught
            outcome = completed(self.app.settings, c, result)
        except Suspend as wait:
            outcome = Outcome(c.run_id, c.token, "waiting", output_json=orjson.dumps(wait.spec).decode())
        except ContinueAsNew as cont:
            continued = orjson.dumps({"continued_as": await ctx.start_continuation(cont.payload)}).decode()
            outcome = Outcome(c.run_id, c.token, "completed", output_json=continued)
        except asyncio.CancelledError as cancelled:
            cancel_landed = True
            # asyncio keeps the error on the future it cancelled, and its traceback holds the
            # frames that awaited that future: a cycle through this attempt's objects. The
            # traceback says nothing the outcome needs, so it is dropped (see _attempt's finally)
            cancelled.__traceback__ = None
            if self._cancelled_by_handler(c):
                # raised by the handler (or something it awaited that another cancelled): its failure,
                # charged and retried with backoff. Taken for a release (uncharged, at once), it was
                # leased again at once, for ever
                ctx.log.warning("handler raised CancelledError, though nothing cancelled the run")
                outcome = ended(self.app.settings, c, "failed", HandlerCancelled(
                    "the handler raised CancelledError, though nothing cancelled the run"))
            else:
                if self.cancel_reasons.get((c.run_id, c.token)) == "timed_out":
                    ctx.log.warning("run timed out after %.3fs", c.timeout_ms / 1000)
                outcome = self._cancelled(c)
        except OutageOutlastedLease as exc:
            outcome = self._outage_outlasted(c, exc)
        except LeaseLost as exc:
            # fenced work was refused: nothing this attempt reports can land any more
            self._count_lost(c, "fence")
            ctx.log.warning("%s", exc)
            outcome = ended(self.app.settings, c, "failed", exc)
        except PermanentFailure as exc:
            outcome = ended(self.app.settings, c, "failed", exc, permanent=True)
        except Exception as exc:  # noqa: BLE001 - any handler error is an attempt failure
            ctx.log.warning("handler raised %s: %s", type(exc).__name__, exception_text(exc))
            outcome = ended(self.app.settings, c, "failed", exc)
        except BaseException as exc:  # noqa: BLE001 - (SystemExit, KeyboardInterrupt, GeneratorExit, one of its own)
            # the handler's failure like any other: out of the task, SystemExit and KeyboardInterrupt
            # stopped the whole process (and the next node the run went to), any other left the run
            # executing under a lease renewed for ever
            ctx.log.warning("handler raised %s (a BaseException): %s", type(exc).__name__, exception_text(exc))
            outcome = ended(self.app.settings, c, "failed", exc)
        finally:
            if timer is not None:
                timer.cancel()
            for flusher in flushers:
                flusher.cancel()
            # ctx -> start_flusher -> ctx is a reference cycle: broken here, the attempt's
            # objects are freed as it ends instead of piling up for the cyclic collector
            # (whose full passes were the longest pauses of a busy node's event loop)
            ctx.on_buffer = None
            ctx.endings.first = None  # (the ending's traceback holds the handler's frames, which hold ctx)
            current_run.reset(token)
        if not cancel_landed and (c.run_id, c.token) in self.cancel_reasons:
            # cancelled in the handler's last step, with no await left for the cancel to land on: a step
            # that blocked the loop past the lease ends in the lease check (LostLeases.on_stall), which
            # cancels the very task it runs in. The attempt ends in the cancellation all the same (else
            # one the node said failed was recorded completed, after its lease), and the cancel is taken
            # here: pending, it would land on the next await, the outcome's report
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            outcome = self._cancelled(c)
        # the last logs of the attempt go out before its outcome, after a write still in flight
        # (most runs log nothing: their last flush is skipped)
        if ctx.writes_pending():
            with contextlib.suppress(LeaseLost, RedisError):
                await ctx.flush()
        return outcome

    async def _call(self, job: Job, ctx: RunContext, payload: Any, loop: asyncio.AbstractEventLoop) -> Any:
        """The handler's result. A TaskGroup's error group ends the attempt in the wait or continuation
        one of its tasks began, or as the permanent failure one raised (see attempt_ends.unwrapped)."""
        ending: BaseException | None = None
        try:
            if job.options.batch_size > 1:
                return await self.batcher.call(job, ctx, payload)
            if job.is_async:
                return await self.timed(job.handler(ctx, payload))
            # a thread cannot be killed: on timeout the run is recorded timed_out and the thread finishes
            # in the background
            run = contextvars.copy_context().run
            return await loop.run_in_executor(self.threads, run, _in_thread, job.handler, ctx, payload)
        except BaseExceptionGroup as group:
            ending = unwrapped(group, PermanentFailure)
        raise ending  # (out of the except clause: raised in it, the ending's context would be its own group)

    def _count_starts(self) -> None:
        started, self.started = self.started, []
        pickups: dict[str, list[float]] = {}
        for c in started:
            pickups.setdefault(c.job, []).append(max(c.claimed_at_ms - c.ready_at_ms, 0) / 1000)
        for job, seconds in pickups.items():
            self.metrics.child(self.metrics.runs_started, job).inc(len(seconds))
            observe_many(self.metrics.child(self.metrics.pickup_latency, job), seconds)

    async def _flush_loop(self, c: Claimed, ctx: RunContext) -> None:
        """Write the run's buffered logs and progress a few times a second (the attempt's end
        cancels the loop; a write in flight goes on to its end, see RunContext.flush)."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                await ctx.flush()
            except OutageOutlastedLease as exc:
                self._note_outage(c, exc)
                self._cancel(c.run_id, "outage", c.token)  # (given back uncharged: _cancelled)
                return
            except LeaseLost:
                self.log.warning("lease of run %s lost while writing its logs; stopping the handler", c.run_id)
                self._cancel(c.run_id, "lease_lost", c.token)
                return
            except RedisError as exc:
                self.log.warning("could not write logs of run %s: %s", c.run_id, exc)


def _in_thread(handler: Any, ctx: RunContext, payload: Any) -> Any:
    """A plain-function handler's call, in the node's thread pool. A GeneratorExit it raises would be
    thrown into the coroutine awaiting it, which asyncio takes for that coroutine's own close (its
    ending then raises "coroutine ignored GeneratorExit"): it goes on as a RuntimeError saying so."""
    try:
        return handler(ctx, payload)
    except GeneratorExit as exc:
        raise RuntimeError("the handler raised GeneratorExit") from exc
