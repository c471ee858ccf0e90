"""A redis-server and one ``baton worker`` of a given app, owned by one benchmark run (OwnNode)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import spawn, stop, worker_env
from runtime import Baton


async def completed_runs(app: Baton) -> int:
    """Runs completed so far in ``app``'s prefix, every partition (the ``completed`` status indices)."""
    pipe = app.redis.pipeline(transaction=False)
    for p in app.keys.partitions:
        pipe.zcard(p.status("completed"))
    return sum(int(n) for n in await pipe.execute())


@dataclass
class OwnNode:
    """What ``own_node`` started: a Baton client on the server, the worker, the work directory."""

    client: Baton
    worker: subprocess.Popen[bytes]
    work: Path

    @property
    def log(self) -> Path:
        """The worker's log."""
        return self.work / "worker.log"


@asynccontextmanager
async def own_node(app_ref: str, name: str, concurrency: int = 100, **env: str) -> AsyncIterator[OwnNode]:
    """A redis-server of its own (a free port, no persistence) and a ``baton worker`` of app ``app_ref``
    (``module:attribute``) on it, once the worker serves (its first heartbeat). ``env``: more BATON_*
    settings (the metrics port is off unless given). Both stop at the end; the work directory (the
    server's files, the worker's log) is removed unless the block failed, so its error can name it."""
    from bench.main import RedisServer  # (not at import: the worker imports its app's module, which imports this)

    work = Path(tempfile.mkdtemp(prefix=f"baton-{name}-"))
    server = RedisServer(work)
    server.start()
    client = Baton(redis_url=server.url, metrics_port=0)
    worker = None
    try:
        settings = {"BATON_REDIS_URL": server.url, "BATON_CONCURRENCY": str(concurrency), "BATON_METRICS_PORT": "0",
                    **env}
        worker = spawn([sys.executable, "-m", "runtime", "worker", "--app", app_ref],
                       worker_env(server.url, name, concurrency, **settings), work / "worker.log")
        deadline = time.monotonic() + 60
        while int(await client.redis.zcard(client.keys.nodes)) < 1:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start (log: {work / 'worker.log'})")
            await asyncio.sleep(0.05)
        yield OwnNode(client, worker, work)
    finally:
        await client.close()
        if worker is not None:
            stop(worker)
        server.stop()
    shutil.rmtree(work, ignore_errors=True)
