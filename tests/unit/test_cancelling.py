"""cancel_and_wait ends tasks that swallow a cancellation, as redis-py can while a master fails over."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from runtime import cancelling
from runtime.cancelling import cancel_and_wait, set_within

ROOT = Path(__file__).resolve().parents[2]


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


async def _cancellations_lost(wait: Callable[[asyncio.Event], Awaitable[Any]]) -> list[int]:
    """Tasks running ``wait(event)``, each cancelled (while still running) a few loop turns after
    the event was set: the turns after which the task ended anyway, its cancellation lost."""
    lost = []
    for turns in range(4):
        event = asyncio.Event()
        task = asyncio.ensure_future(wait(event))
        await asyncio.sleep(0)
        event.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        if task.done():
            break
        task.cancel()
        await asyncio.wait([task], timeout=1)
        assert task.done()
        if not task.cancelled():
            lost.append(turns)
    return lost


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12's wait_for is asyncio.timeout")
async def test_wait_for_loses_a_cancellation_that_comes_as_its_wait_ends() -> None:
    # (why Baton's code does not use it: a loop cancelled that way goes on)
    assert await _cancellations_lost(lambda event: asyncio.wait_for(event.wait(), 10))


async def test_set_within_keeps_a_cancellation_that_comes_as_its_wait_ends() -> None:
    assert await _cancellations_lost(lambda event: set_within(event, 10)) == []


async def test_set_within_says_whether_the_event_was_set_in_time() -> None:
    event = asyncio.Event()
    assert await set_within(event, 0.01) is False
    event.set()
    assert await set_within(event, 0.01) is True


def test_no_code_of_baton_waits_with_wait_for() -> None:
    # runtime, actors and the benchmarks' harnesses: asyncio.timeout, or set_within for an event
    files = subprocess.run(["git", "ls-files", "runtime", "actors", "bench"], capture_output=True, text=True,
                           check=True, cwd=ROOT).stdout.split()
    found = []
    for name in files:
        if name.endswith(".py"):
            for number, line in enumerate((ROOT / name).read_text().splitlines(), 1):
                if "wait_for(" in line.split("#")[0] and "asyncio.wait_for" in line and "``" not in line:
                    found.append(f"{name}:{number}: {line.strip()}")
    assert not found, found
