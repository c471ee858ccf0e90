"""Which projects have webhooks, as a process knows it: never older than REFRESH_S, and read again in
the background before then, so a steady stream of submissions never waits for that read."""

from __future__ import annotations

import time
from typing import Any

from runtime.webhooks import REFRESH_S, WebhookProjects, new_webhook, save_webhook


async def test_the_first_read_is_in_line_and_a_half_stale_one_is_refreshed_in_the_background(
    make_app: Any, redis: Any,
) -> None:
    app = make_app()
    projects = WebhookProjects(app.keys)
    # Given a webhook of project "a" when the process first asks
    await save_webhook(app.redis, app.keys, new_webhook("a", "http://127.0.0.1:9/hook", ["run.completed"]))
    assert await projects.current(app.redis) == {"a"}
    # When another process adds one of project "b" and the last read is over half REFRESH_S old
    await save_webhook(app.redis, app.keys, new_webhook("b", "http://127.0.0.1:9/hook", ["run.completed"]))
    projects._read_at = time.monotonic() - REFRESH_S * 0.6
    # Then the caller gets the last read at once, and a background read brings in "b"
    assert await projects.current(app.redis) == {"a"}
    assert projects._refreshing is not None
    await projects._refreshing
    assert await projects.current(app.redis) == {"a", "b"}
    await projects.close()


async def test_a_read_older_than_refresh_s_is_never_used(make_app: Any, redis: Any) -> None:
    app = make_app()
    projects = WebhookProjects(app.keys)
    assert await projects.current(app.redis) == frozenset()
    # Given a webhook added by another process after a quiet spell longer than REFRESH_S
    await save_webhook(app.redis, app.keys, new_webhook("c", "http://127.0.0.1:9/hook", ["run.completed"]))
    projects._read_at = time.monotonic() - REFRESH_S * 5
    # Then the next caller waits for a fresh read (a run created now is marked for it)
    assert await projects.current(app.redis) == {"c"}
    assert projects._refreshing is None
    await projects.close()


async def test_close_stops_a_background_read(make_app: Any, redis: Any) -> None:
    app = make_app()
    projects = WebhookProjects(app.keys)
    await projects.current(app.redis)
    projects._read_at = time.monotonic() - REFRESH_S * 0.6
    await projects.current(app.redis)
    task = projects._refreshing
    assert task is not None
    await projects.close()
    assert task.done() and projects._refreshing is None
