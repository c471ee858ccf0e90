"""A node's drain ends every actor it supervises, so nothing outlives the node."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from actors.base import Actor
from actors.supervisor import Supervisor
from runtime.metrics import Metrics
from tests.nodes import api_settings


async def test_the_drain_ends_every_actor(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given a node running every kind of actor: the API, the notifier, partition streams' intakes, hand-offs
    app = make_app(partitions=2, partition_streams=True, **api_settings({"default": "a-key"}))

    @app.job()
    async def noop(ctx: Any, payload: Any) -> None:
        return None

    node = Supervisor(app, Metrics())
    task = asyncio.create_task(node.run())
    await asyncio.wait_for(node.started.wait(), 10)
    names = {actor.name for actor in node.actors}
    assert {"api", "notifier", "receiver", "intake", "intake.p1", "scheduler"} <= names
    assert await app.wait_for(await app.trigger("noop"), 10) is not None
    # When it drains
    with caplog.at_level(logging.ERROR, logger="baton"):
        node.request_shutdown()
        await asyncio.wait_for(task, 30)
    # Then every actor ended with it, each one stopped in its turn (none left for the last sweep)
    assert sorted(name for name, actor_task in node.tasks.items() if not actor_task.done()) == []
    assert set(node.tasks) == names
    assert not [r for r in caplog.records if "still running at the end of the drain" in r.getMessage()]


class _Idle(Actor[None]):
    """An actor the drain's own steps do not know of."""

    name = "idle"

    async def run(self) -> None:
        while await self.sleep(1.0):
            pass


class _NodeWithAnotherActor(Supervisor):
    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.idle = _Idle()
        super().__init__(app, metrics)

    @property
    def actors(self) -> list[Actor[Any]]:
        return [*super().actors, self.idle]


async def test_an_actor_the_drain_does_not_name_is_stopped_and_said(
        make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given a node with an actor that none of the drain's steps stops
    node = _NodeWithAnotherActor(make_app(), Metrics())
    task = asyncio.create_task(node.run())
    await asyncio.wait_for(node.started.wait(), 10)
    # When it drains
    with caplog.at_level(logging.ERROR, logger="baton"):
        node.request_shutdown()
        await asyncio.wait_for(task, 30)
    # Then that actor ended too, and the node said it had to stop it last
    assert node.tasks["idle"].done()
    assert [r.getMessage() for r in caplog.records if "still running" in r.getMessage()] == [
        "actor idle was still running at the end of the drain: stopped"]
