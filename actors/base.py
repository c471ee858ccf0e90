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

    async def send(self, message: M) -> None:
        """Deliver a message, waiting while the inbox is full."""
        await self.inbox.put(message)

    def send_nowait(self, message: M) -> None:
        """Deliver a message from non-async code (raises if the inbox is full)."""
        self.inbox.put_nowait(message)

    async def run(self) -> None:
        """The actor's whole life; returns when it has stopped."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask the actor to finish; run() returns soon after."""
        self.stopping.set()

    async def receive(self, timeout_s: float | None) -> M | None:
        """Next inbox message, or None after ``timeout_s`` or when stopping."""
        if self.stopping.is_set():
            return None
        if not self.inbox.empty():  # fast path: no tasks to create
            return self.inbox.get_nowait()
        get = asyncio.ensure_future(self.inbox.get())
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({get, stop}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not get.done():
                get.cancel()
        if get in done and not get.cancelled():
            return get.result()
        return None

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
