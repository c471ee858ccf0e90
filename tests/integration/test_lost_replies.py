"""A worker process whose link to Redis drops right after a handler's write ran, before its reply
came back (a proxy in between loses the reply and closes the connection). The client sends the
write again; each log line, usage record, chunk and checkpoint must still be stored once, and
an outcome sent again must not be reported as fenced off."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.chaos.proxy import FaultProxy
from runtime import Baton, Settings
from runtime.lua_source import library
from tests.integration.test_processes import producer, worker_env
from tests.nodes import spawn_worker, tear_down
from tests.servers import RedisProcess, free_port

ROUNDS = 3
#: the writes whose replies are lost: the first of each kind (FCALL names the operation's library);
#: runs_finish is the outcome's write (sent again, it must not be taken for a fenced-off one)
LOST = ("run_update", "run_append", "checkpoint_add", "runs_finish")


@dataclass
class Stage:
    """A worker process W reaching its own redis-server through a proxy, and a producer app."""

    app: Baton
    proxy: FaultProxy
    worker: subprocess.Popen[bytes]
    log: Path

    def lose_reply(self, operation: str) -> None:
        """Lose the reply of the next FCALL of ``operation`` (its library names it)."""
        name = library(operation).name.encode()
        self.proxy.lose_replies(b"FCALL\r\n$%d\r\n%s\r\n" % (len(name), name), 1)


@contextlib.asynccontextmanager
async def _worker_through_proxy(tmp_path: Path) -> AsyncIterator[Stage]:
    server = RedisProcess().start()
    proxy = await FaultProxy(server.port, free_port()).start()
    app = producer(Settings(redis_url=server.url, prefix="bt", metrics_port=0))
    log = tmp_path / "w.log"
    worker = spawn_worker("tests.apps:app", worker_env(app.settings.with_changes(redis_url=proxy.url), "W"), log)
    try:
        # (a first run loads the operations into Redis: no reply lost is a load's)
        warm = await app.trigger("writes_each_kind", {"rounds": 1})
        assert (await app.wait_for(warm, 30)).status == "completed"
        yield Stage(app, proxy, worker, log)
        assert proxy.replies_lost == 1
        assert worker.poll() is None, log.read_text()[-3000:]
    finally:
        code = await tear_down(worker, (proxy.stop, app.close), server.stop)
    assert code == 0, log.read_text()[-3000:]
    # (read once the worker has exited: an outcome sent again has had its answer by then)
    assert "no longer holds the run" not in log.read_text()


@pytest.mark.parametrize("operation", LOST)
async def test_a_write_whose_reply_was_lost_is_stored_once(tmp_path: Path, operation: str) -> None:
    # Given a worker process that reaches its own redis-server through a proxy
    async with _worker_through_proxy(tmp_path) as stage:
        app = stage.app
        # When the proxy loses the reply of the first call of one operation
        stage.lose_reply(operation)
        run_id = await app.trigger("writes_each_kind", {"rounds": ROUNDS})
        run = await app.wait_for(run_id, 30)
        # Then the run completed
        assert run.status == "completed", (run.status, stage.log.read_text()[-3000:])
        # And every write is stored once, in order, and the checkpoints kept their sequences
        p = app.keys.partition_of_run(run_id)
        events = await app.redis.xrange(p.events(run_id))
        logs = [f[b"data"] for _, f in events if f[b"type"] == b"log"]
        assert [b"round %d" % i in line for i, line in enumerate(logs)] == [True] * ROUNDS, logs
        kinds = [f[b"type"] for _, f in await app.redis.xrange(p.records(run_id))]
        assert kinds == [b"usage"] * ROUNDS
        chunks = [f[b"data"] for _, f in await app.redis.xrange(p.chunks(run_id))]
        assert chunks == [b'{"round":%d}' % i for i in range(ROUNDS)]
        checkpoints = [f[b"sequence"] for _, f in await app.redis.xrange(p.checkpoints(run_id))]
        assert checkpoints == [b"%d" % i for i in range(1, ROUNDS + 1)]
        assert run.output == {"sequences": list(range(1, ROUNDS + 1))}


async def test_a_continuation_link_whose_reply_was_lost_is_written_once(tmp_path: Path) -> None:
    # Given a worker process through the proxy, and a run that continues as new once (it logs
    # nothing: the link is its only run_update)
    async with _worker_through_proxy(tmp_path) as stage:
        app = stage.app
        # When the reply of the link to the new run is lost
        stage.lose_reply("run_update")
        first = await app.wait_for(await app.trigger("continues_once", {"n": 0}), 30)
        # Then both runs complete, linked, and the first's timeline says so once
        assert first.status == "completed" and first.output is not None, first.status
        second = await app.wait_for(first.output["continued_as"], 30)
        assert (second.status, second.output) == ("completed", {"n": 1})
        p = app.keys.partition_of_run(first.id)
        continued = [f[b"data"] for _, f in await app.redis.xrange(p.events(first.id)) if f[b"type"] == b"continued"]
        assert continued == [b'{"run_id":"%s"}' % second.id.encode()]
