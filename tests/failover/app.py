"""The job the failover tests' worker processes run (``--app tests.failover.app:app``).

Each execution appends one line, ``<run id> <attempt> <node id>``, to the file
named by ``$FAILOVER_EFFECTS``: the handler's side effect, kept outside Redis so
that a failover (which may lose Redis's last writes) cannot lose the record of it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from runtime import Backoff, Baton, RunContext

__all__ = ["EFFECTS_ENV", "app"]

#: the environment variable naming the side-effect log
EFFECTS_ENV = "FAILOVER_EFFECTS"

app = Baton()


@app.job(max_attempts=5, backoff=Backoff("fixed", initial_s=0.1, jitter=0))
async def effect(ctx: RunContext, payload: Any) -> Any:
    """Logs its execution (one line, one write: lines of concurrent workers never interleave),
    holds its lease briefly so that runs are executing when Redis fails over, returns its input."""
    line = f"{ctx.run_id} {ctx.attempt} {ctx.node_id}\n".encode()
    fd = os.open(os.environ[EFFECTS_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    await asyncio.sleep(0.05)
    return payload
