"""A worker app with a schedule firing every second, for the scheduler's process tests."""

from __future__ import annotations

from typing import Any

from runtime import Baton, RunContext

app = Baton()


@app.job(cron="* * * * * *")
async def every_second(ctx: RunContext, payload: Any) -> None:
    """Does nothing: the test counts the ticks' runs."""
