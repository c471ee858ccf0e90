"""cancel_and_wait ends tasks that swallow a cancellation, as redis-py can while a master fails over."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime import cancelling
from runtime.cancelling import cancel_and_wait


async def _swallows(times: int, swallowed: list[int]) -> None:
    """Sleeps, swallowing the first ``times`` cancellations (as redis-py 8.1 can in a transaction)."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if len(swallowed) >= times:
                raise
            swallowed.append(1)
            asyncio.current_task().uncancel()  # type: ignore[union-attr]


async def test_a_task_that_swallows_cancellations_is_cancelled_again_until_it_ends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cancelling, "RECANCEL_S", 0.05)
    swallowed: list[int] = []
    task = asyncio.ensure_future(_swallows(2, swallowed))
    await asyncio.sleep(0)
    # Given that one cancel() and a wait leaves such a task running
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.2)
    assert not done and swallowed == [1]
    # When it is cancelled and waited for with cancel_and_wait
    started = time.monotonic()
    await asyncio.wait_for(cancel_and_wait([task]), 5)
    # Then it ended, cancelled, after one more swallowed cancellation
    assert task.cancelled() and swallowed == [1, 1]
    assert time.monotonic() - started < 2


async def test_failed_and_finished_tasks_are_waited_for_and_their_errors_retrieved() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failing, sleeping = asyncio.ensure_future(fails()), asyncio.ensure_future(asyncio.sleep(3600))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        await cancel_and_wait([failing, sleeping])
        assert failing.done() and sleeping.cancelled()
        del failing  # (an error never retrieved is reported when its task is collected)
        await asyncio.sleep(0)
        assert reported == []
    finally:
        loop.set_exception_handler(None)


async def test_nothing_to_end_returns_at_once() -> None:
    done = asyncio.ensure_future(asyncio.sleep(0))
    await done
    await asyncio.wait_for(cancel_and_wait([done]), 1)
    await asyncio.wait_for(cancel_and_wait([]), 1)
