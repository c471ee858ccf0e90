"""Which projects have webhooks, as a process knows it: never older than REFRESH_S, read in line by the
first submission only, and kept fresh by a task of its own after that, off every submission's path."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from runtime import Baton, Settings, webhooks
from runtime.webhooks import REFRESH_S, WebhookProjects, new_webhook, save_webhook
from tests.servers import RedisProcess


async def _until(condition: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout_s}s"
        await asyncio.sleep(0.02)


async def test_the_first_read_is_in_line_and_then_a_task_keeps_it_fresh(
    make_app: Any, redis: Any, monkeypatch: Any,
) -> None:
    monkeypatch.setattr(webhooks, "REFRESH_S", 0.3)
    app = make_app()
    projects = WebhookProjects(app.keys)
    # Given a webhook of project "a" when the process first asks
    await save_webhook(app.redis, app.keys, new_webhook("a", "http://127.0.0.1:9/hook", ["run.completed"]))
    assert await projects.current(app.redis) == {"a"}
    # When another process adds one of project "b", and nobody asks
    await save_webhook(app.redis, app.keys, new_webhook("b", "http://127.0.0.1:9/hook", ["run.completed"]))
    # Then the process reads it within REFRESH_S on its own
    await _until(lambda: projects.projects == {"a", "b"}, "the keeper read the new webhook's project")
    # and a submission after a quiet spell longer than REFRESH_S answers without reading in line
    # (before, every one did: a round trip more on each pickup path of a quiet node)
    await asyncio.sleep(webhooks.REFRESH_S * 2)
    assert _answered_at_once(projects.current(app.redis)) == {"a", "b"}
    await projects.close()


async def test_the_keeper_stops_once_nobody_asked_for_keep_fresh_s(
    make_app: Any, redis: Any, monkeypatch: Any,
) -> None:
    monkeypatch.setattr(webhooks, "REFRESH_S", 0.2)
    monkeypatch.setattr(webhooks, "KEEP_FRESH_S", 0.5)
    app = make_app()
    projects = WebhookProjects(app.keys)
    assert await projects.current(app.redis) == frozenset()
    keeper = projects._keeper
    assert keeper is not None
    # (a client nobody closed, or a process that stopped submitting, reads no more)
    await _until(keeper.done, "the keeper ended")
    assert keeper.exception() is None
    # Given a webhook added meanwhile, the next submission once the last read is past REFRESH_S reads
    # in line and starts a keeper again
    await save_webhook(app.redis, app.keys, new_webhook("k", "http://127.0.0.1:9/hook", ["run.completed"]))
    await asyncio.sleep(webhooks.REFRESH_S * 1.5)
    assert await projects.current(app.redis) == {"k"}
    assert projects._keeper is not keeper and not projects._keeper.done()
    await projects.close()


async def test_a_read_older_than_refresh_s_is_never_used(make_app: Any, redis: Any) -> None:
    app = make_app()
    projects = WebhookProjects(app.keys)
    assert await projects.current(app.redis) == frozenset()
    # Given a webhook added by another process, and a last read older than REFRESH_S (the keeper
    # had ended after a quiet spell of KEEP_FRESH_S)
    await save_webhook(app.redis, app.keys, new_webhook("c", "http://127.0.0.1:9/hook", ["run.completed"]))
    projects._read_at = time.monotonic() - REFRESH_S * 5
    # Then the next caller waits for a fresh read (a run created now is marked for it)
    assert await projects.current(app.redis) == {"c"}
    await projects.close()


async def test_close_stops_the_keeper(make_app: Any, redis: Any) -> None:
    app = make_app()
    projects = WebhookProjects(app.keys)
    await projects.current(app.redis)
    task = projects._keeper
    assert task is not None and not task.done()
    await projects.close()
    assert task.done() and projects._keeper is None


class HeldReads:
    """A real client whose HVALS replies are held back until released (the read is on the server)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.release = asyncio.Event()
        self.reads = 0

    async def hvals(self, key: str) -> Any:
        self.reads += 1
        reply = await self.redis.hvals(key)
        await self.release.wait()
        return reply


async def test_a_background_read_landing_late_never_hides_a_webhook_just_registered(make_app: Any, redis: Any) -> None:
    app = make_app()
    projects = WebhookProjects(app.keys)
    assert await projects.current(app.redis) == frozenset()
    # Given a background read under way (as the keeper's), its reply (no webhooks yet) held back ...
    held = HeldReads(app.redis)
    late = asyncio.ensure_future(projects.refresh(held))
    await asyncio.sleep(0.05)  # (the read has been answered by the server)
    # When this process registers a webhook (which reads the projects in line) and then the late
    # background reply lands
    await save_webhook(app.redis, app.keys, new_webhook("d", "http://127.0.0.1:9/hook", ["run.completed"]),
                       projects)
    assert await projects.current(app.redis) == {"d"}
    held.release.set()
    await late
    # Then the process still knows the webhook: the older read does not overwrite the newer one
    assert await projects.current(app.redis) == {"d"}
    await projects.close()


@contextlib.asynccontextmanager
async def _read_then_lost(project: str) -> AsyncIterator[tuple[Baton, WebhookProjects, RedisProcess]]:
    """A process that read the projects (one webhook, of ``project``) from a server of its own,
    which then goes down."""
    server = RedisProcess().start()
    app = Baton(Settings(redis_url=server.url, prefix=f"w{project}", metrics_port=0))
    projects = WebhookProjects(app.keys)
    try:
        await save_webhook(app.redis, app.keys, new_webhook(project, "http://127.0.0.1:9/hook", ["run.completed"]))
        assert await projects.current(app.redis) == {project}
        server.kill()
        yield app, projects, server
    finally:
        await projects.close()
        await app.close()
        server.stop()


def _answered_at_once(call: Coroutine[Any, Any, frozenset[str]]) -> frozenset[str]:
    """What the call answers without suspending once (stricter than any bound on its time, and never
    flaky: a read in line would suspend on the socket); it fails the test if it suspends."""
    with pytest.raises(StopIteration) as answered:
        call.send(None)
    value: frozenset[str] = answered.value.value
    return value


async def test_while_redis_does_not_answer_the_last_read_stands() -> None:
    async with _read_then_lost("a") as (app, projects, server):
        projects._read_at = time.monotonic() - REFRESH_S * 5
        # When a submission asks: it gets the last read, not the outage (on Redis Cluster the
        # node-wide keys' master may be down while the run's partition answers)
        assert await projects.current(app.redis) == {"a"}
        # and the next ones do not wait for a read in line again, only in the background
        assert _answered_at_once(projects.current(app.redis)) == {"a"}
        # When the server is back, a background read brings the projects up to date
        server.start()
        deadline = time.monotonic() + 20
        while projects._stale:
            assert time.monotonic() < deadline, "the background read never succeeded"
            await projects.current(app.redis)
            await asyncio.sleep(0.05)
        assert await projects.current(app.redis) == frozenset()  # (the server came back empty)


async def test_callers_that_come_while_a_read_in_line_is_under_way_wait_for_that_one(make_app: Any, redis: Any) -> None:
    app = make_app()
    projects = WebhookProjects(app.keys)
    await save_webhook(app.redis, app.keys, new_webhook("e", "http://127.0.0.1:9/hook", ["run.completed"]))
    # Given a read in line under way (its reply held back)
    held = HeldReads(app.redis)
    first = asyncio.ensure_future(projects.current(held))
    await asyncio.sleep(0.05)
    # When four more submissions ask meanwhile
    others = [asyncio.ensure_future(projects.current(held)) for _ in range(4)]
    await asyncio.sleep(0.05)
    held.release.set()
    # Then all five get its answer, and it was the only read (a master that does not answer costs
    # them one wait together, not one each)
    assert await asyncio.gather(first, *others) == [{"e"}] * 5
    assert held.reads == 1
    await projects.close()


async def test_a_background_read_that_meets_an_outage_keeps_later_callers_from_reading_in_line() -> None:
    async with _read_then_lost("f") as (app, projects, _):
        # Given a background read (the keeper's) that meets the outage
        await projects._refresh_quietly(app.redis)
        # When the last read is past REFRESH_S, a submission asks
        projects._read_at = time.monotonic() - REFRESH_S * 5
        # Then it gets the last read without reading in line (before, the first submission past
        # REFRESH_S, and every one that came while it waited, waited out the client's retries again)
        assert _answered_at_once(projects.current(app.redis)) == {"f"}
