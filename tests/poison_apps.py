"""Handlers that end in a BaseException (SystemExit, KeyboardInterrupt, GeneratorExit, one of their own, a
CancelledError nothing asked for), as async and as plain functions, run by a worker process in tests."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from runtime import Backoff, Baton, RunContext

app = Baton()
#: retried once, at once: a test sees both attempts fail within a second
_retry = Backoff("fixed", initial_s=0.05, jitter=0)


class OwnBaseException(BaseException):
    """A handler's own BaseException subclass."""


def _raise(kind: str) -> None:
    if kind == "sys.exit":
        sys.exit(0)
    raised: BaseException = {
        "SystemExit": SystemExit(3), "KeyboardInterrupt": KeyboardInterrupt(), "GeneratorExit": GeneratorExit(),
        "own": OwnBaseException("own"), "CancelledError": asyncio.CancelledError(),
    }[kind]
    raise raised


@app.job(max_attempts=2, backoff=_retry)
async def raises_base(ctx: RunContext, payload: Any) -> None:
    """Raises the BaseException ``payload["kind"]`` names."""
    _raise(payload["kind"])


@app.job(max_attempts=2, backoff=_retry)
def raises_base_in_thread(ctx: RunContext, payload: Any) -> None:
    """The same, as a plain function (run in the node's thread pool)."""
    _raise(payload["kind"])


@app.job()
async def fine(ctx: RunContext, payload: Any) -> Any:
    """Returns its input."""
    return payload


@app.job(max_attempts=1)
async def sleeper(ctx: RunContext, payload: Any) -> int:
    """Sleeps ``payload["seconds"]`` (awaiting: the loop goes on), then returns its attempt."""
    await asyncio.sleep(payload["seconds"])
    return ctx.attempt


@app.job(max_attempts=1)
async def blocker(ctx: RunContext, payload: Any) -> str:
    """Blocks the event loop for ``payload["seconds"]`` (time.sleep in an async def: the poison)."""
    time.sleep(payload["seconds"])
    return "blocked"
