"""Fencing helpers: the deadline of a lease a node was handed, and handler steps timed for stalls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from runtime.fencing import StepTimed, handed_deadline, handed_granted_at

TTL_MS = 2000


@pytest.mark.parametrize(("granted_ms", "expected"), [
    # granted while the pop waited: the whole TTL from the pop's start, as for a call that grants
    (10_000, 100.0 + 2.0),
    (12_500, 100.0 + 2.0),
    # granted before the pop started: what was left of it when the pop ran
    (9_500, 100.0 + 1.5),
    # granted a whole TTL or more before: already over
    (8_000, 100.0),
    (5_000, 97.0),
])
def test_a_handed_lease_is_dated_from_its_grant(granted_ms: int, expected: float) -> None:
    # Given a pop sent at monotonic 100 s that saw the Redis clock at 10,000 ms
    # Then a lease granted at granted_ms surely holds until expected (never past its TTL from the pop)
    assert handed_deadline(100.0, 10_000, granted_ms, TTL_MS) == pytest.approx(expected)


async def test_step_timed_passes_results_errors_and_cancellations_through() -> None:
    long_steps: list[int] = []

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("handler error")

    cleaned: list[str] = []

    async def waits_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("finally")

    # A result and an exception come back as from the coroutine itself
    assert await StepTimed(answer(), lambda: long_steps.append(1), 1.0) == 42
    with pytest.raises(ValueError, match="handler error"):
        await StepTimed(fails(), lambda: long_steps.append(1), 1.0)
    # A cancellation of the task reaches the coroutine (its finally runs) and ends the await
    task = asyncio.create_task(_await(StepTimed(waits_forever(), lambda: long_steps.append(1), 1.0)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]
    # and none of those steps was long
    assert long_steps == []


async def test_a_long_step_is_followed_by_the_check_before_anything_else_runs() -> None:
    # Given a step that blocks the loop and another task ready in the same turn of the loop
    order: list[str] = []

    async def blocks() -> None:
        time.sleep(0.05)
        order.append("blocker")

    async def other() -> None:
        order.append("other")

    timed = asyncio.create_task(_await(StepTimed(blocks(), lambda: order.append("check"), 0.01)))
    plain = asyncio.create_task(other())
    await asyncio.gather(timed, plain)
    # Then the check ran right after the blocking step, before the other task's step
    assert order == ["blocker", "check", "other"]


async def _await(awaitable: Any) -> Any:
    return await awaitable


@pytest.mark.parametrize(("granted_ms", "expected"), [
    # granted while the pop waited (the usual hand-off to an idle node): that long after the pop's start
    (10_000, 100.0), (10_700, 100.7),
    # waiting in the list before the pop: that long before it
    (9_500, 99.5),
])
def test_a_handed_lease_is_timed_from_its_grant_not_bounded(granted_ms: int, expected: float) -> None:
    # Given a pop sent at monotonic 100 s that saw the Redis clock at 10,000 ms
    # Then the grant's monotonic instant is its Redis time's offset from that (unlike the deadline,
    # which counts a lease granted while the pop waited from the pop's start)
    assert handed_granted_at(100.0, 10_000, granted_ms) == pytest.approx(expected)


@pytest.mark.parametrize("late_s", [0.0, 0.5, 5.0])
def test_a_run_context_counts_the_redis_clock_from_its_grant_not_its_creation(late_s: float) -> None:
    # Given a lease granted late_s ago (the wall clock stands in for Redis's), renewed since
    from runtime import Baton, Settings
    from runtime.context import RunContext
    from runtime.fencing import LeaseClock
    from runtime.scripts import Claimed

    app = Baton(Settings(lease_ttl_ms=30_000))
    granted_ms = int(time.time() * 1000 - late_s * 1000)
    lease = LeaseClock(time.monotonic() - late_s + 30.0, 1.0, granted_at=time.monotonic() - late_s)
    lease.extend(time.monotonic() + 30.0)
    claimed = Claimed("r1", "n/1", 1, "job", b"null", 1000, granted_ms, 0, granted_ms)
    # When its context is made only now (a hand-off popped late, a busy loop)
    ctx = RunContext(app, claimed, None, lease)
    # Then now_ms() is the Redis clock now, not the grant's time plus nothing: a durable sleep would
    # otherwise end early by as much
    now_ms = int(time.time() * 1000)
    assert now_ms - 2 <= ctx.now_ms() <= now_ms + 2, (ctx.now_ms() - now_ms, late_s)
