"""The actor base class: a bounded inbox, one run() coroutine, stop-aware waits.

A crashed actor is restarted clean by construction: :meth:`Actor.start_afresh`
builds every attribute again with the actor's own ``__init__`` and keeps only
the inbox and the attributes the class names in ``survives`` (what the node
still owns: held leases, running handlers, outcomes not yet written). Tasks an
actor starts with :meth:`Actor.spawn` end with the run() that started them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from typing import Any, ClassVar, Generic, TypeVar

from runtime.cancelling import cancel_and_wait, set_within
from runtime.redis_faults import described
from runtime.settings import Settings

__all__ = ["Actor", "Mailbox", "answer", "answered", "being_cancelled", "end_task"]

M = TypeVar("M")


class Mailbox(Generic[M]):
    """An actor's bounded inbox: the one thing actors share.

    The supervisor makes every mailbox before any actor, and gives each actor
    its own and those it sends to, so no actor holds another (and wiring needs
    no placeholder for cycles). A mailbox outlives restarts of its actor.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._queue: asyncio.Queue[M] = asyncio.Queue(maxsize=size)
        #: resolved by a send while the owner waits (one future, no tasks:
        #: each message hop is on the pickup latency path)
        self._waiter: asyncio.Future[None] | None = None

    async def send(self, message: M) -> None:
        """Deliver a message, waiting while the mailbox is full."""
        await self._queue.put(message)
        self.wake()

    def send_nowait(self, message: M) -> None:
        """Deliver a message from non-async code (raises QueueFull if the mailbox is full)."""
        self._queue.put_nowait(message)
        self.wake()

    def post(self, message: M) -> None:
        """Queue a message without waking the owner (raises QueueFull if the mailbox is full): it is
        read in order at the owner's next wake. The sender calls :meth:`wake` soon after."""
        self._queue.put_nowait(message)

    def offer(self, message: M) -> None:
        """Deliver unless a message is waiting already (a nudge: one pending is enough)."""
        if self._queue.empty():
            try:
                self.send_nowait(message)
            except asyncio.QueueFull:  # pragma: no cover - an empty queue has room
                pass

    def empty(self) -> bool:
        """No message is waiting."""
        return self._queue.empty()

    def qsize(self) -> int:
        """Messages waiting."""
        return self._queue.qsize()

    def room(self) -> int:
        """Messages it can take now without waiting."""
        return self._queue.maxsize - self._queue.qsize()

    def get_nowait(self) -> M:
        """The next message (raises QueueEmpty)."""
        return self._queue.get_nowait()

    def wake(self) -> None:
        """End the owner's current wait."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout_s: float | None) -> None:
        """Until a message arrives, wake() is called, or ``timeout_s`` passes."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _resolve, waiter) if timeout_s is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


class Actor(Generic[M]):
    """An asyncio actor. Others talk to it only through :meth:`send`.

    Subclasses implement :meth:`run`; the supervisor runs it as a task, restarts
    it if it crashes, and calls :meth:`stop` to end it. The inbox is bounded so
    backpressure is visible (``inbox.qsize()``).
    """

    name = "actor"
    #: attributes that outlive a crash of run(): the node's own state (leases it
    #: holds, handlers it runs, outcomes not yet written). Every other attribute
    #: is built anew by ``__init__`` before a restart; a new attribute is fresh
    #: on restart unless it is named here.
    survives: ClassVar[tuple[str, ...]] = ()
    #: what every actor keeps: messages sent to it, a stop request, how it was built
    _KEPT: ClassVar[tuple[str, ...]] = ("inbox", "stopping", "_built_with")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def remembering_init(self: Actor[Any], *args: Any, **kw: Any) -> None:
            # the outermost __init__ call names the arguments start_afresh() builds with again
            if "_built_with" not in self.__dict__:
                self._built_with = (args, kw)
            init(self, *args, **kw)

        setattr(cls, "__init__", remembering_init)  # noqa: B010 - assigning __init__ directly upsets mypy

    @classmethod
    def inbox_size(cls, settings: Settings) -> int:
        """How many messages the actor's mailbox holds (bounded, so backpressure is visible)."""
        return 1

    @classmethod
    def mailbox(cls, settings: Settings) -> Mailbox[Any]:
        """A new mailbox for an actor of this class."""
        return Mailbox(cls.inbox_size(settings))

    def __init__(self, inbox: Mailbox[M] | None = None) -> None:
        self.__dict__.setdefault("_built_with", ((inbox,), {}))  # a subclass without an __init__ of its own
        self.inbox: Mailbox[M] = inbox if inbox is not None else Mailbox(1)
        self.stopping = asyncio.Event()
        self.log = logging.getLogger(f"baton.{self.name}")
        #: tasks started by this run() through spawn(); they end with it
        self._spawned: set[asyncio.Task[Any]] = set()
        #: the task running live(), and the error of an essential spawned task that ended it
        self._life: asyncio.Task[Any] | None = None
        self._spawn_failure: BaseException | None = None

    async def send(self, message: M) -> None:
        """Deliver a message to this actor's inbox (its owner's way to talk to it)."""
        await self.inbox.send(message)

    async def run(self) -> None:
        """The actor's whole life; returns when it has stopped."""
        raise NotImplementedError

    async def live(self) -> None:
        """One life of the actor (what the supervisor runs): run(), then end every
        task that run() spawned, however it ended."""
        life = self._life = asyncio.current_task()
        try:
            await self.run()
        except asyncio.CancelledError:
            if self._spawn_failure is None:
                raise
        finally:
            self._life = None  # (what waits on the actor from now on is not its life: see _ending)
            await cancel_and_wait(list(self._spawned))
            self._spawned.clear()
        failure = self._spawn_failure
        if failure is None:
            return
        # run() was ended by an essential task's failure: by the cancel spawn sent it or, had
        # something inside run() swallowed that, at its next sleep() or receive()
        if life is not None and life.cancelling():
            life.uncancel()  # (spawn's cancel, not the caller's)
        if self.stopping.is_set():
            self.log.warning("a task failed while the actor stopped: %s", described(failure))
            return
        raise failure

    def start_afresh(self) -> None:
        """Before a restart: every attribute as ``__init__`` builds it, except
        the inbox, the stop request and ``survives``. No task, exception, timer
        or flag of the failed run() can leak into the next one."""
        kept = {name: self.__dict__[name] for name in (*self._KEPT, *self.survives) if name in self.__dict__}
        args, kwargs = kept["_built_with"]
        self.__dict__.clear()
        self._built_with = (args, kwargs)
        type(self).__init__(self, *args, **kwargs)
        self.__dict__.update(kept)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, essential: bool = False) -> asyncio.Task[Any]:
        """Start a background task owned by this run(): cancelled when run() ends.

        A task that fails is never lost: an ``essential`` one (a loop the actor relies on)
        fails the actor with its error, as if run() had raised it, so the supervisor restarts
        the actor; any other is logged.
        """
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._spawned.add(task)
        task.add_done_callback(functools.partial(self._spawned_ended, essential))
        return task

    def _spawned_ended(self, essential: bool, task: asyncio.Task[Any]) -> None:
        self._spawned.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        life = self._life
        if essential and life is not None and not life.done() and self._spawn_failure is None:
            self._spawn_failure = exc
            life.cancel()
        else:
            self.log.error("task %s failed: %s", task.get_name(), described(exc), exc_info=exc)

    def stop(self) -> None:
        """Ask the actor to finish; run() returns soon after."""
        self.stopping.set()
        self.inbox.wake()

    async def receive(self, timeout_s: float | None) -> M | None:
        """Next inbox message, or None after ``timeout_s`` or when stopping.

        Messages arrive through the inbox's send / send_nowait, which wake a
        waiting receive.
        """
        if self._ending():
            return None
        if self.inbox.empty():
            await self.inbox.wait(timeout_s)
            if self._ending() or self.inbox.empty():
                return None
        return self.inbox.get_nowait()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; returns False when stopping (or when an essential spawned task
        failed: run() should end, and live() raises the task's error)."""
        if self._ending():
            return False
        if await set_within(self.stopping, seconds):
            return False
        return not self._ending()

    def _ending(self) -> bool:
        """Whether run() should end: the actor is stopping, or an essential task failed during this life
        (the supervisor's own sleep before a restart, after the life, waits on the stop request only)."""
        return self.stopping.is_set() or (self._life is not None and self._spawn_failure is not None)

    def drain_inbox(self, limit: int) -> list[M]:
        """Take up to ``limit`` messages that are already waiting, without blocking."""
        out: list[M] = []
        while len(out) < limit:
            try:
                out.append(self.inbox.get_nowait())
            except asyncio.QueueEmpty:
                break
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} inbox={self.inbox.qsize()}>"


def answer(replies: list[asyncio.Future[None]]) -> None:
    """Resolve the waiting replies of a question now answered, and forget them."""
    for reply in replies:
        if not reply.done():
            reply.set_result(None)
    replies.clear()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def answered(reply: asyncio.Future[Any], timeout_s: float, *unless: asyncio.Future[Any] | None) -> bool:
    """Wait for an actor's reply; False after ``timeout_s`` or once one of ``unless`` (the actor's task,
    say) is done."""
    waits: set[asyncio.Future[Any]] = {reply, *(u for u in unless if u is not None)}
    await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    return reply.done() and not reply.cancelled()


def being_cancelled() -> bool:
    """Whether the running task has a cancellation pending (asked of it, not of what it awaited)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


async def end_task(task: asyncio.Task[Any] | None, wait_s: float) -> None:
    """Let ``task`` end on its own for ``wait_s``, then cancel it and wait for it to end.

    A CancelledError met here is the task's (it ended cancelled), unless the caller itself is being
    cancelled (a drain past its deadline): that one goes on, and the task ends on its own time."""
    if task is None or task.done():
        return
    try:
        async with asyncio.timeout(wait_s):
            await asyncio.shield(task)
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()
        if being_cancelled():
            raise asyncio.CancelledError from None
        await cancel_and_wait([task])  # (its error, if any, is retrieved: it is being ended)
