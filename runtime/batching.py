"""Batch handlers: one handler call for up to ``batch_size`` runs of a job.

A job defined with ``batch_size`` >= 2 has a handler called as
``handler(batch, inputs)``: ``batch`` is a :class:`Batch` (the runs' contexts,
ids and group key), ``inputs`` the runs' inputs in order; it returns a list of
outputs in the same order, where an exception *instance* fails just that run.
A handler that raises fails every run of the batch (one attempt each).

Runs stay runs: each is claimed, leased, renewed, timed out, cancelled,
retried and dead-lettered on its own, exactly as for a one-run handler. The
executor runs each leased run's attempt as usual and, instead of calling the
handler, hands the run to the :class:`Batcher`, which gathers runs of one job
(and one ``batch_key`` group) until ``batch_size`` are there or the first has
waited ``batch_wait_s``, then calls the handler once and answers each run's
attempt with its own result. A batch is therefore never larger than the
node's free slots, and no run waits longer than ``batch_wait_s`` for it to fill.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ConfigError

if TYPE_CHECKING:
    from .context import RunContext
    from .jobs import Job

__all__ = ["Batch", "Batcher", "batch_group", "check_batch_options"]

#: Largest batch a job may ask for (a batch also never exceeds the node's slots).
MAX_BATCH_SIZE = 10_000
#: Longest a run may wait for its batch to fill.
MAX_BATCH_WAIT_S = 60.0

log = logging.getLogger("baton.batching")


def check_batch_options(size: int, wait_s: float, key: str) -> None:
    """Validate a job's batch options at definition time (ConfigError)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise ConfigError(f"batch_size must be an integer within [1, {MAX_BATCH_SIZE}]")
    if not 0 <= wait_s <= MAX_BATCH_WAIT_S:
        raise ConfigError(f"batch_wait_s must be within [0, {MAX_BATCH_WAIT_S:g}] seconds")
    if key and not (key.startswith("input:") and len(key) > len("input:")):
        raise ConfigError("batch_key must be empty or input:<field>")
    if (wait_s or key) and size < 2:
        raise ConfigError("batch_wait_s and batch_key need batch_size of at least 2")


def batch_group(batch_key: str, payload: Any) -> str:
    """The group a run's input puts it in (runs of one batch share it): the JSON of the input's
    ``batch_key`` field, '' without a key (or when the input has no such field)."""
    if not batch_key or not isinstance(payload, dict):
        return ""
    value = payload.get(batch_key[len("input:"):])
    return "" if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class Batch:
    """What a batch handler gets besides the inputs: the runs, in the order of the inputs."""

    job: str
    #: the group key's value (JSON text of the input field named by batch_key; '' without one)
    key: str
    #: each run's context (steps, logs, progress, metadata of that run), in input order
    contexts: list[RunContext] = field(default_factory=list)

    @property
    def run_ids(self) -> list[str]:
        """The runs' ids, in input order."""
        return [c.run_id for c in self.contexts]

    def __len__(self) -> int:
        return len(self.contexts)

    def __iter__(self) -> Iterator[RunContext]:
        return iter(self.contexts)


@dataclass
class _Item:
    ctx: RunContext
    payload: Any
    answer: asyncio.Future[Any]


@dataclass
class _Pending:
    items: list[_Item] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """Gathers the attempts of batch jobs' runs into handler calls (one per executor)."""

    def __init__(self, threads: Executor, timed: Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]) -> None:
        self.threads = threads
        #: how a handler's coroutine is awaited (the executor times its steps: runtime/fencing.StepTimed)
        self.timed = timed
        #: (job, group) -> the batch being filled
        self.pending: dict[tuple[str, str], _Pending] = {}
        #: handler calls under way (kept referenced until they end)
        self.running: set[asyncio.Task[None]] = set()

    async def call(self, job: Job, ctx: RunContext, payload: Any) -> Any:
        """Add one run's attempt to its batch; its own result (or exception) once the batch ran."""
        options = job.options
        group = (job.name, batch_group(options.batch_key, payload))
        loop = asyncio.get_running_loop()
        item = _Item(ctx, payload, loop.create_future())
        pending = self.pending.setdefault(group, _Pending())
        pending.items.append(item)
        if len(pending.items) >= options.batch_size:
            self._flush(job, group)
        elif pending.timer is None:
            # the first run of a batch waits at most batch_wait_s (0: the runs arriving in this loop turn)
            pending.timer = loop.call_later(options.batch_wait_s, self._flush, job, group)
        try:
            return await item.answer
        except asyncio.CancelledError:
            # this run was cancelled (timeout, cancel, drain, lost lease): not part of a batch any more
            if group in self.pending and item in self.pending[group].items:
                self.pending[group].items.remove(item)
                if not self.pending[group].items:
                    self._drop(group)
            raise

    def _drop(self, group: tuple[str, str]) -> list[_Item]:
        pending = self.pending.pop(group)
        if pending.timer is not None:
            pending.timer.cancel()
        return pending.items

    def _flush(self, job: Job, group: tuple[str, str]) -> None:
        if group not in self.pending:
            return
        items = self._drop(group)
        if not items:
            return
        # a context of its own: the handler call belongs to no single run
        task = asyncio.get_running_loop().create_task(
            self._run(job, group[1], items), name=f"batch:{job.name}", context=contextvars.Context())
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        # when every run of the batch was cancelled, so is the handler call
        abandoned = functools.partial(_cancel_if_abandoned, task, items)
        for item in items:
            item.answer.add_done_callback(abandoned)

    async def _run(self, job: Job, key: str, items: list[_Item]) -> None:
        live: list[_Item] = []
        for item in items:
            try:
                # fenced work: the handler starts only for runs whose lease surely holds
                await item.ctx.confirm_lease("the batch handler")
            except Exception as exc:  # noqa: BLE001 - LeaseLost (or a failed renewal) ends that run only
                _answer(item, exc)
                continue
            live.append(item)
        if not live:
            return
        batch = Batch(job.name, key, [i.ctx for i in live])
        inputs = [i.payload for i in live]
        try:
            if job.is_async:
                results = await self.timed(job.handler(batch, inputs))
            else:
                run = contextvars.copy_context().run
                results = await asyncio.get_running_loop().run_in_executor(
                    self.threads, run, job.handler, batch, inputs)
            if not isinstance(results, list | tuple) or len(results) != len(live):
                got = f"{len(results)} results" if isinstance(results, list | tuple) else type(results).__name__
                raise TypeError(f"batch handler of {job.name!r} must return a list of {len(live)} results, got {got}")
        except asyncio.CancelledError:
            for item in live:
                if not item.answer.done():
                    item.answer.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - the handler's failure is every run's attempt failure
            for item in live:
                _answer(item, exc)
            return
        except BaseException as exc:
            from .context import ContinueAsNew, Suspend  # (context imports what imports this module)
            # a durable wait or continuation ends one run's attempt, which a shared call cannot do
            unsupported = RuntimeError(f"{type(exc).__name__} in a batch handler: durable waits (sleep, "
                                       "wait_for_event, trigger_and_wait) and continue_as_new are not supported there")
            for item in live:
                _answer(item, unsupported)
            if not isinstance(exc, Suspend | ContinueAsNew):
                raise
            return
        for item, result in zip(live, results, strict=True):
            _answer(item, result)


def _answer(item: _Item, result: Any) -> None:
    if item.answer.done():
        return
    if isinstance(result, BaseException):
        item.answer.set_exception(result)
    else:
        item.answer.set_result(result)


def _cancel_if_abandoned(task: asyncio.Task[None], items: list[_Item], _done: object) -> None:
    if not task.done() and all(i.answer.cancelled() for i in items):
        task.cancel()
