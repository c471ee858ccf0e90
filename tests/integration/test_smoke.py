"""End to end in one process: trigger, execute, record."""

from __future__ import annotations

from typing import Any

from runtime import RunContext
from tests.nodes import running_node


async def test_trigger_runs_to_completion(make_app: Any) -> None:
    # Given an app with one async and one sync job
    app = make_app()

    @app.job()
    async def add(ctx: RunContext, payload: Any) -> int:
        return int(payload["a"]) + int(payload["b"])

    @app.job()
    def shout(ctx: RunContext, payload: Any) -> str:
        return str(payload).upper()

    async with running_node(app):
        # When runs are triggered
        a = await app.trigger("add", {"a": 2, "b": 3})
        b = await app.trigger("shout", "hi")
        ra = await app.wait_for(a, 10)
        rb = await app.wait_for(b, 10)
    # Then each completed with its output and one attempt
    assert ra.status == "completed" and ra.output == 5
    assert rb.status == "completed" and rb.output == "HI"
    assert [x.status for x in ra.attempts] == ["completed"]
    assert ra.started_at_ms is not None and ra.finished_at_ms is not None
