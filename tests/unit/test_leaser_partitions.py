"""A leaser duty tries every partition whatever became of the others (actors/leaser.py in_each)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from actors.leaser import in_each
from runtime.errors import RedisUnavailable


async def test_a_failing_partition_does_not_stop_the_others() -> None:
    # Given three partitions, the first two of whose masters refuse the connection
    done: list[int] = []

    async def work(index: int) -> None:
        if index < 2:
            raise RedisConnectionError(f"partition {index}: connection refused")
        done.append(index)

    # When a duty runs over them, Then the third is still served, and the first error is raised after
    with pytest.raises(RedisConnectionError, match="partition 0"):
        await in_each([0, 1, 2], work, 5.0)
    assert done == [2]


async def test_an_error_that_is_not_redis_stops_the_duty_at_once() -> None:
    # (a bug is not a partition's outage: it is raised where it happens)
    done: list[int] = []

    async def work(index: int) -> None:
        if index == 0:
            raise KeyError("bug")
        done.append(index)

    with pytest.raises(KeyError):
        await in_each([0, 1], work, 5.0)
    assert done == [1]  # (the others were under way: they end too)


async def test_a_partition_that_does_not_answer_is_cut_off_and_holds_up_no_other() -> None:
    # Given three partitions, the first of whose masters never answers (black-holed)
    done: list[int] = []

    async def work(index: int) -> None:
        if index == 0:
            await asyncio.Event().wait()
        done.append(index)

    began = time.monotonic()
    # When a duty runs over them with a bound of 0.3 s
    with pytest.raises(RedisUnavailable, match=r"no answer within 0\.3s"):
        await in_each([0, 1, 2], work, 0.3)
    # Then the others were served, and the duty ended at the bound
    assert sorted(done) == [1, 2]
    assert time.monotonic() - began < 2.0


async def test_a_call_answered_while_the_loop_was_held_is_no_outage() -> None:
    # Given a partition whose answer comes 0.1 s after the call (a duty bounded at 0.3 s)
    answered: list[int] = []
    set_aside: list[int] = []

    async def work(index: int) -> None:
        await asyncio.sleep(0.1)
        answered.append(index)

    duty = asyncio.ensure_future(in_each([0], work, 0.3, lambda index, exc: set_aside.append(index)))
    for _ in range(3):  # (the call goes out: in_each, then its bounded call, then the call itself start)
        await asyncio.sleep(0)
    # When the node's own loop is held for a second meanwhile (a handler blocking it)
    time.sleep(1.0)  # (the loop held: what the test is about)
    # Then the duty ends served: the bound measured the stall, not the server (it was taken for an
    # outage: the partition set aside, "did not answer", with a warning)
    await asyncio.wait_for(duty, 5)
    assert answered == [0] and set_aside == []


async def test_a_partition_still_silent_after_a_stall_is_cut_off_a_bound_later() -> None:
    # Given a partition that never answers, and the loop held for a second as the call went out
    set_aside: list[int] = []
    duty = asyncio.ensure_future(in_each([0], lambda index: asyncio.Event().wait(), 0.3,
                                         lambda index, exc: set_aside.append(index)))
    for _ in range(3):
        await asyncio.sleep(0)
    time.sleep(1.0)  # (the loop held)
    began = time.monotonic()
    # Then it is cut off one bound after the stall, and set aside
    with pytest.raises(RedisUnavailable):
        await asyncio.wait_for(duty, 5)
    assert set_aside == [0] and 0.2 < time.monotonic() - began < 1.5
