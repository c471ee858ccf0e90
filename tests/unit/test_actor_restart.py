"""A restarted actor starts clean, by construction: every attribute is built again by the actor's own
__init__ except the inbox, the stop request and what the class names in ``survives``; every task its
failed run() spawned is gone. This covers every actor a node runs, so a new attribute or a new actor is
checked without a test of its own (the leaser's stale tick and renewal task were two members of this class)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.base import Actor
from actors.supervisor import (
    OUTAGE_BACKOFF_MAX_S,
    RESTART_BACKOFF_MAX_S,
    RESTART_BACKOFF_S,
    STEADY_LIFE_S,
    RestartBackoff,
    Supervisor,
)


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


def test_restart_backoff_doubles_caps_and_starts_over_after_a_steady_life() -> None:
    # Given an actor that crashes again and again right after starting
    backoff = RestartBackoff()
    delays = [backoff.after_crash(0.01, outage=False) for _ in range(8)]
    # Then the waits double up to the cap
    assert delays[:3] == pytest.approx([RESTART_BACKOFF_S, 2 * RESTART_BACKOFF_S, 4 * RESTART_BACKOFF_S])
    assert delays[-1] == RESTART_BACKOFF_MAX_S and max(delays) == RESTART_BACKOFF_MAX_S
    # And a crash on a Redis outage waits at most the outage cap, so a node is back soon after Redis
    assert backoff.after_crash(0.01, outage=True) == OUTAGE_BACKOFF_MAX_S < RESTART_BACKOFF_MAX_S
    # When it then ran steadily before crashing again, the backoff starts over (a restart long
    # ago does not slow today's recovery)
    assert backoff.after_crash(STEADY_LIFE_S, outage=False) == RESTART_BACKOFF_S
