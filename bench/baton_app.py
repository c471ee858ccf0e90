"""Baton's benchmark jobs: ``python -m runtime worker --app bench.baton_app:app``.

Settings come from BATON_* variables (BATON_REDIS_URL, BATON_PREFIX,
BATON_CONCURRENCY ...) set by the harness; BENCH_REDIS_URL is for the helpers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.jobs_support import amark_first, arecord_latency
from runtime import Baton, RunContext

app = Baton()


@app.job()
async def noop(ctx: RunContext, payload: Any) -> None:
    """Does nothing (the first run of a process notes the time)."""
    await amark_first()


@app.job()
async def latency(ctx: RunContext, payload: Any) -> None:
    """Records start minus submit time."""
    await arecord_latency(payload["t"])


@app.job(timeout=600)
async def hold(ctx: RunContext, payload: Any) -> None:
    """Keeps its lease for ``payload['s']`` seconds (renewal measurement)."""
    await asyncio.sleep(float(payload["s"]))
