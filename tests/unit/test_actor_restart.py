"""A restarted actor starts clean, by construction: every attribute is built again by the actor's own
__init__ except the inbox, the stop request and what the class names in ``survives``; every task its
failed run() spawned is gone. This covers every actor a node runs, so a new attribute or a new actor is
checked without a test of its own (the leaser's stale tick and renewal task were two members of this class)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from actors.base import Actor
from actors.restart_backoff import RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S, STEADY_LIFE_S, RestartBackoff
from actors.supervisor import Supervisor
from runtime.redis_faults import OUTAGE_PAUSE_MAX_S


async def test_every_actor_restarts_with_fresh_state_and_keeps_only_what_it_names(make_app: Any) -> None:
    # every actor of a node, the API included (the port is never bound: nothing runs here)
    supervisor = Supervisor(make_app(api_port=65000))
    assert supervisor.api is not None
    for actor in supervisor.actors:
        # Given an actor whose run() left state behind: a stray attribute and a changed one
        before = dict(vars(actor))
        actor.leftover_from_failed_run = True  # type: ignore[attr-defined]
        kept = {name: before[name] for name in (*Actor._KEPT, *actor.survives) if name in before}
        # When the supervisor restarts it
        actor.start_afresh()
        after = vars(actor)
        # Then nothing but the named survivors is carried over
        assert "leftover_from_failed_run" not in after, actor.name
        for name, value in kept.items():
            assert after[name] is value, (actor.name, name)
        for name, value in before.items():
            if name in kept or not _is_mutable_state(value):
                continue
            assert after[name] is not value, f"{actor.name}.{name} survived a restart without being named"
        assert set(after) == set(before), actor.name
        for name in actor.survives:
            assert name in before, f"{actor.name}.survives names {name!r}, which __init__ does not build"


def _is_mutable_state(value: Any) -> bool:
    return isinstance(value, dict | list | set | asyncio.Event | asyncio.Task | asyncio.Queue)


class _Crashing(Actor[None]):
    name = "crashing"

    def __init__(self) -> None:
        super().__init__()
        self.started: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        self.started.append(self.spawn(asyncio.sleep(3600), "forever"))
        await asyncio.sleep(0)
        raise RuntimeError("crash")


async def test_tasks_spawned_by_a_failed_run_end_with_it() -> None:
    # Given an actor whose run() spawned a background task and then crashed
    actor = _Crashing()
    with pytest.raises(RuntimeError):
        await actor.live()
    # Then the task is cancelled (not left to fail or act later) and the next life starts with none
    (task,) = actor.started
    assert task.cancelled()
    actor.start_afresh()
    assert actor.started == [] and not actor._spawned


class _Looping(Actor[None]):
    """run() waits on its inbox while a spawned loop does the work (the notifier's shape)."""

    name = "looping"

    def __init__(self, essential: bool) -> None:
        super().__init__()
        self.essential = essential
        self.side: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        self.side.append(self.spawn(asyncio.sleep(3600), "side"))
        self.spawn(self._loop(), "loop", essential=self.essential)
        while not self.stopping.is_set():
            await self.receive(None)

    async def _loop(self) -> None:
        await asyncio.sleep(0)
        raise ConnectionError("the loop's Redis went away")


async def test_an_essential_spawned_loop_that_fails_fails_its_actor() -> None:
    # Given an actor whose run() relies on a spawned loop, and the loop fails
    actor = _Looping(essential=True)
    # Then the actor's life ends with the loop's error (the supervisor restarts it, or the node
    # would run on without the loop, as the notifier did without webhook deliveries), and the
    # other spawned tasks end with it
    with pytest.raises(ConnectionError, match="went away"):
        await asyncio.wait_for(actor.live(), 5)
    assert actor.side[0].cancelled() and not actor._spawned


class _CountedLooping(_Looping):
    """_Looping, counting its lives (across restarts)."""

    survives = ("lives",)

    def __init__(self, essential: bool) -> None:
        super().__init__(essential)
        self.lives = 0

    async def run(self) -> None:
        self.lives += 1
        await super().run()


async def test_the_supervisor_restarts_an_actor_whose_essential_loop_failed(make_app: Any) -> None:
    # Given a supervised actor whose essential loop fails in every life
    supervisor = Supervisor(make_app())
    actor = _CountedLooping(essential=True)
    supervised = asyncio.ensure_future(supervisor._supervise(actor))
    try:
        # Then it is started again after each failure (its restart wait is not cut short by the failure)
        for _ in range(300):
            if actor.lives >= 3 or supervised.done():
                break
            await asyncio.sleep(0.01)
        assert actor.lives >= 3 and not supervised.done(), (actor.lives, supervised)
    finally:
        actor.stop()
        await asyncio.wait_for(supervised, 5)


class _Swallowing(_Looping):
    """run() swallows the cancel that spawn sends (as code it awaits might), then goes on sleeping."""

    async def run(self) -> None:
        self.spawn(self._loop(), "loop", essential=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        while await self.sleep(0.01):
            pass


async def test_a_failed_essential_loop_ends_its_actor_even_if_run_swallows_the_cancel() -> None:
    # Given an actor whose run() swallows the cancel sent when its essential loop failed
    actor = _Swallowing(essential=True)
    # Then its next sleep returns as if stopping, and its life ends with the loop's error all the same
    with pytest.raises(ConnectionError, match="went away"):
        await asyncio.wait_for(actor.live(), 5)
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_an_essential_loop_failing_while_its_actor_stops_ends_the_life_quietly() -> None:
    # Given an actor being stopped, and its essential loop failing then
    actor = _Swallowing(essential=True)
    actor.stop()
    # Then its life ends without an error (nothing to restart: the node is stopping)
    await asyncio.wait_for(actor.live(), 5)


async def test_any_other_spawned_task_that_fails_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Given an actor with a spawned task that is not essential, and it fails
    actor = _Looping(essential=False)
    life = asyncio.ensure_future(actor.live())
    try:
        for _ in range(50):
            if any("failed: ConnectionError" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        # Then the failure is logged with its error, and the actor goes on
        assert any("looping:loop failed: ConnectionError: the loop's Redis went away" in r.getMessage()
                   for r in caplog.records)
        assert not life.done()
    finally:
        actor.stop()
        await asyncio.wait_for(life, 5)


def test_restart_backoff_doubles_caps_and_starts_over_after_a_steady_life() -> None:
    # Given an actor that crashes again and again right after starting
    backoff = RestartBackoff()
    delays = [backoff.after_crash(0.01, outage=False) for _ in range(8)]
    # Then the waits double up to the cap
    assert delays[:3] == pytest.approx([RESTART_BACKOFF_S, 2 * RESTART_BACKOFF_S, 4 * RESTART_BACKOFF_S])
    assert delays[-1] == RESTART_BACKOFF_MAX_S and max(delays) == RESTART_BACKOFF_MAX_S
    # And a crash on a Redis outage waits at most the outage cap, so a node is back soon after Redis
    assert backoff.after_crash(0.01, outage=True) == OUTAGE_PAUSE_MAX_S < RESTART_BACKOFF_MAX_S
    # When it then ran steadily before crashing again, the backoff starts over (a restart long
    # ago does not slow today's recovery)
    assert backoff.after_crash(STEADY_LIFE_S, outage=False) == RESTART_BACKOFF_S


class _FailsOnCue(_CountedLooping):
    """_CountedLooping whose essential loop fails only once ``go`` is set."""

    survives = ("lives", "go")

    def __init__(self) -> None:
        super().__init__(essential=True)
        self.go = asyncio.Event()

    async def _loop(self) -> None:
        await self.go.wait()
        raise ConnectionError("the loop's Redis went away")


async def test_an_actor_failing_as_its_supervision_is_cancelled_is_not_restarted(make_app: Any) -> None:
    # Given a supervised actor whose essential loop fails, and the failure's cancel of the actor's life
    # pending when the supervision itself is cancelled (an event loop closing cancels every task)
    supervisor = Supervisor(make_app())
    actor = _FailsOnCue()
    supervised = asyncio.ensure_future(supervisor._supervise(actor))
    for _ in range(100):
        if actor.lives:
            break
        await asyncio.sleep(0.01)
    actor.go.set()
    while actor._spawn_failure is None:
        await asyncio.sleep(0)
    supervised.cancel()
    # Then the supervision ends, cancelled, without a second life. Before, the life took both cancels
    # for the failure's, the actor restarted with the cancel spent, and ran on: a test's loop hung
    # at teardown on the notifier so
    await asyncio.wait((supervised,), timeout=3)
    try:
        assert supervised.done() and supervised.cancelled(), actor.lives
        assert actor.lives == 1
    finally:
        supervised.cancel()
        await asyncio.gather(supervised, return_exceptions=True)
