"""Executor: runs leased runs' handlers in a pool of slots, and reports outcomes.

It does no Redis I/O of its own: outcomes go to the reporter, which records
them in batches through the fenced ``runs_finish`` script.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from redis.exceptions import RedisError

from runtime.app import Baton
from runtime.context import ContinueAsNew, RunContext, RunLogCapture, Suspend, current_run
from runtime.errors import JobTimeout, LeaseLost, PermanentFailure
from runtime.limits import output_json
from runtime.logs import run_log_context
from runtime.messages import CancelRun, LeaseGranted, ReleaseAll, RunFinished
from runtime.metrics import Metrics
from runtime.scripts import Claimed, Outcome

from .base import Actor

__all__ = ["Executor"]

#: How often a running handler's logs and progress are written to Redis.
FLUSH_INTERVAL_S = 0.2

ExecutorMessage = LeaseGranted | CancelRun | ReleaseAll


class Executor(Actor[ExecutorMessage]):
    """Runs handlers: one asyncio task per leased run, at most ``slots`` at once.

    Cancellation reasons decide the recorded outcome: a user's cancel ends the
    run ``canceled``; a lost lease is reported too but will be fenced off; a
    graceful shutdown ``released`` the run without charging the attempt.
    """

    name = "executor"

    def __init__(self, app: Baton, reporter: Actor[RunFinished], metrics: Metrics) -> None:
        super().__init__(inbox_size=app.settings.concurrency * 2 + 100)
        self.app = app
        self.reporter = reporter
        self.metrics = metrics
        self.slots = app.settings.concurrency
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancel_reasons: dict[str, str] = {}
        self.threads = ThreadPoolExecutor(max_workers=min(self.slots, 64), thread_name_prefix="baton-job")
        self.idle = asyncio.Event()
        self.idle.set()
        # logging calls made inside handlers are copied into their run's log
        root = logging.getLogger()
        if not any(isinstance(h, RunLogCapture) for h in root.handlers):
            root.addHandler(RunLogCapture())
        job_logger = logging.getLogger("baton.job")
        if job_logger.level == logging.NOTSET:
            job_logger.setLevel(logging.INFO)  # ctx.log.info is always recorded in the run log

    async def run(self) -> None:
        """Take messages until stopped; running handlers keep going across restarts."""
        while not self.stopping.is_set():
            msg = await self.receive(None)
            if msg is None:
                break
            if isinstance(msg, LeaseGranted):
                self._start(msg.claimed)
            elif isinstance(msg, CancelRun):
                if msg.reason == "lease_lost":
                    self._lease_lost(msg)
                else:
                    self._cancel(msg.run_id, msg.reason)
            elif isinstance(msg, ReleaseAll):
                for run_id in list(self.tasks):
                    self._cancel(run_id, "released")

    def _start(self, claimed: Claimed) -> None:
        self.idle.clear()
        task = asyncio.get_running_loop().create_task(self._execute(claimed), name=f"run:{claimed.run_id}")
        self.tasks[claimed.run_id] = task
        self.metrics.slots_busy.set(len(self.tasks))

    def _lease_lost(self, msg: CancelRun) -> None:
        """A renewal found the lease gone: stop the handler if it still runs.

        When the handler has already ended, the renewal merely raced the run's
        own finish (or, if the lease really was lost, the finish is fenced and
        counted there), so nothing is counted or logged here.
        """
        task = self.tasks.get(msg.run_id)
        if task is None or task.done():
            return
        self.metrics.leases_lost.labels(stage="renew").inc()
        with run_log_context(msg.run_id, msg.job, msg.attempt):
            self.log.warning("lease of run %s lost; stopping its handler", msg.run_id)
        self._cancel(msg.run_id, "lease_lost")

    def _cancel(self, run_id: str, reason: str) -> None:
        task = self.tasks.get(run_id)
        if task is None or task.done():
            return
        # the first reason wins: a lost lease stays lost even if a cancel follows
        self.cancel_reasons.setdefault(run_id, reason)
        task.cancel()

    async def _execute(self, c: Claimed) -> None:
        started = time.monotonic()
        try:
            outcome = await self._outcome(c)
        except asyncio.CancelledError:
            outcome = self._cancelled(c)
        except Exception as exc:
            self.log.exception("internal error while executing run %s", c.run_id)
            outcome = _failure(c, "failed", exc)
        finally:
            self.tasks.pop(c.run_id, None)
            self.cancel_reasons.pop(c.run_id, None)
            self.metrics.slots_busy.set(len(self.tasks))
            if not self.tasks:
                self.idle.set()
        await self.reporter.send(RunFinished(outcome, c.partition, c.job, time.monotonic() - started, c.attempt))

    def _cancelled(self, c: Claimed) -> Outcome:
        reason = self.cancel_reasons.get(c.run_id, "released")
        if reason == "canceled":
            return _failure(c, "canceled", None)
        if reason == "lease_lost":
            return _failure(c, "failed", None)  # will be fenced off by the token check
        return Outcome(c.run_id, c.token, "released")

    async def _outcome(self, c: Claimed) -> Outcome:
        job = self.app.jobs.get(c.job)
        if job is None:  # the claim script only hands out served jobs; this is a bug guard
            return _failure(c, "failed", RuntimeError(f"job {c.job!r} not defined on this node"), permanent=True)
        # counted once the handler is under way: the metrics are not on the pickup path
        asyncio.get_running_loop().call_soon(self._count_start, c)
        with run_log_context(c.run_id, c.job, c.attempt):
            ctx = await RunContext.for_claim(self.app, c)
            token = current_run.set(ctx)
            flushers: list[asyncio.Task[None]] = []

            def start_flusher() -> None:
                if not flushers:
                    flushers.append(asyncio.get_running_loop().create_task(self._flush_loop(c, ctx)))

            ctx.on_buffer = start_flusher
            timeout_s = c.timeout_ms / 1000 if c.timeout_ms else None
            deadline = asyncio.timeout(timeout_s)
            try:
                payload = orjson.loads(c.input_json)
                async with deadline:
                    if job.is_async:
                        result = await job.handler(ctx, payload)
                    else:
                        # a thread cannot be killed: on timeout the run is recorded
                        # timed_out and the thread finishes in the background
                        loop = asyncio.get_running_loop()
                        run = contextvars.copy_context().run
                        result = await loop.run_in_executor(self.threads, run, job.handler, ctx, payload)
                outcome = Outcome(c.run_id, c.token, "completed", output_json=output_json(self.app.settings, result))
            except Suspend as wait:
                outcome = Outcome(c.run_id, c.token, "waiting", output_json=orjson.dumps(wait.spec).decode())
            except ContinueAsNew as cont:
                outcome = await self._continue(c, ctx, cont.payload)
            except asyncio.CancelledError:
                outcome = self._cancelled(c)
            except TimeoutError as exc:
                if not deadline.expired():  # the handler's own TimeoutError, not ours
                    outcome = _failure(c, "failed", exc)
                else:
                    ctx.log.warning("run timed out after %.3fs", c.timeout_ms / 1000)
                    err = JobTimeout(f"handler ran past its timeout of {c.timeout_ms / 1000:g}s")
                    outcome = _failure(c, "timed_out", err)
            except PermanentFailure as exc:
                outcome = _failure(c, "failed", exc, permanent=True)
            except orjson.JSONEncodeError as exc:
                outcome = _failure(c, "failed", TypeError(f"handler result is not JSON-serialisable: {exc}"))
            except Exception as exc:  # noqa: BLE001 - any handler error is an attempt failure
                ctx.log.warning("handler raised %s: %s", type(exc).__name__, exc)
                outcome = _failure(c, "failed", exc)
            finally:
                for flusher in flushers:
                    flusher.cancel()
                current_run.reset(token)
            # the last logs of the attempt go out before its outcome
            with contextlib.suppress(LeaseLost, RedisError):
                await ctx.flush()
            return outcome

    def _count_start(self, c: Claimed) -> None:
        self.metrics.child(self.metrics.runs_started, c.job).inc()
        self.metrics.child(self.metrics.pickup_latency, c.job).observe(max(c.claimed_at_ms - c.ready_at_ms, 0) / 1000)

    async def _flush_loop(self, c: Claimed, ctx: RunContext) -> None:
        """Write the run's buffered logs and progress a few times a second."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                await ctx.flush()
            except LeaseLost:
                self.log.warning("lease of run %s lost while writing its logs; stopping the handler", c.run_id)
                self._cancel(c.run_id, "lease_lost")
                return
            except RedisError as exc:
                self.log.warning("could not write logs of run %s: %s", c.run_id, exc)

    async def _continue(self, c: Claimed, ctx: RunContext, payload: Any) -> Outcome:
        """Start the continuation run, link both ways, and complete this run."""
        new_id = ctx.continuation_id()
        root, depth = await ctx._lineage_info()
        spec = await self.app._spec(
            {"job": c.job, "input": payload, "id": new_id}, source="continuation",
            extra={"continuation_of": c.run_id, "root_id": root, "lineage_depth": depth, "triggered_by": "continue",
                   "project": await ctx.project()},
        )
        await self.app.create([spec])
        await self.app.scripts.update(c.run_id, c.token, {"continued_as": new_id},
                                      [("continued", orjson.dumps({"run_id": new_id}).decode())])
        return Outcome(c.run_id, c.token, "completed", output_json=orjson.dumps({"continued_as": new_id}).decode())

    def shutdown_threads(self) -> None:
        """Stop the thread pool without waiting for stuck sync handlers."""
        self.threads.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> dict[str, Any]:
        """Slots in use."""
        return {**super().describe(), "busy": len(self.tasks), "slots": self.slots}


def _failure(c: Claimed, status: str, exc: BaseException | None, permanent: bool = False) -> Outcome:
    error = None
    if exc is not None:
        error = {
            "message": str(exc) or type(exc).__name__,
            "type": type(exc).__name__,
            "stack": "".join(traceback.format_exception(exc)),
        }
    elif status == "canceled":
        error = {"message": "canceled while executing", "type": "Canceled"}
    return Outcome(
        c.run_id, c.token, status, error_json=orjson.dumps(error).decode() if error else "", permanent=permanent
    )
