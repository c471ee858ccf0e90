"""The actor base class: a bounded inbox, one run() coroutine, stop-aware waits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Generic, TypeVar

__all__ = ["Actor"]

M = TypeVar("M")


class Actor(Generic[M]):
    """An asyncio actor. Others talk to it only through :meth:`send`.

    Subclasses implement :meth:`run`; the supervisor runs it as a task, restarts
    it if it crashes, and calls :meth:`stop` to end it. The inbox is bounded so
    backpressure is visible (``inbox.qsize()``).
    """

    name = "actor"

    def __init__(self, inbox_size: int = 10_000) -> None:
        self.inbox: asyncio.Queue[M] = asyncio.Queue(maxsize=inbox_size)
        self.stopping = asyncio.Event()
        self.log = logging.getLogger(f"baton.{self.name}")
        #: resolved by send() and stop() while receive() waits (one future, no tasks:
        #: each message hop is on the pickup latency path)
        self._wakeup: asyncio.Future[None] | None = None

    async def send(self, message: M) -> None:
        """Deliver a message, waiting while the inbox is full."""
        await self.inbox.put(message)
        self._wake()

    def send_nowait(self, message: M) -> None:
        """Deliver a message from non-async code (raises if the inbox is full)."""
        self.inbox.put_nowait(message)
        self._wake()

    def _wake(self) -> None:
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self) -> None:
        """The actor's whole life; returns when it has stopped."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask the actor to finish; run() returns soon after."""
        self.stopping.set()
        self._wake()

    async def receive(self, timeout_s: float | None) -> M | None:
        """Next inbox message, or None after ``timeout_s`` or when stopping.

        Messages must arrive through :meth:`send` / :meth:`send_nowait`, which
        wake a waiting receive.
        """
        if self.stopping.is_set():
            return None
        if self.inbox.empty():
            loop = asyncio.get_running_loop()
            waiter = self._wakeup = loop.create_future()
            timer = loop.call_later(timeout_s, _resolve, waiter) if timeout_s is not None else None
            try:
                await waiter
            finally:
                self._wakeup = None
                if timer is not None:
                    timer.cancel()
            if self.stopping.is_set() or self.inbox.empty():
                return None
        return self.inbox.get_nowait()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; returns False when stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

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

    def describe(self) -> dict[str, Any]:
        """State for logs and health output."""
        return {"actor": self.name, "inbox": self.inbox.qsize()}


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

