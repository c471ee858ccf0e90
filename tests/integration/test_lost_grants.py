"""A lease granted in a reply its node never gets (a hand-off pop's or a claim's, lost with the
connection): the node never runs the run, and its renewals say so. The run is given back, uncharged,
once a renewal past the lease's expiry left it out, instead of being charged as a crash of a node
that is alive (a one-attempt run was dead-lettered)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from actors.fetcher import ready_partition
from bench.chaos.proxy import FaultProxy
from runtime import Settings
from runtime.scripts import grant_margin_ms, new_incarnation
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, spawn_worker, tear_down
from tests.servers import RedisProcess, free_port

#: in the run's input, so in the hand-off entry the pop returns: the reply the proxy loses
MARK = b"lost-with-its-reply"


async def test_a_run_whose_hand_off_pop_reply_was_lost_runs_once_its_node_has_said_it_never_got_it(
        tmp_path: Path) -> None:
    # Given a worker process, idle and waiting for hand-offs, reaching its own redis-server through a
    # proxy (0.5 s of reply timeout past a blocking wait: a grant's margin of 2.5 s; 4 s leases, renewed
    # every 0.5 s)
    server = RedisProcess().start()
    proxy = await FaultProxy(server.port, free_port()).start()
    settings = Settings(redis_url=server.url, prefix="lg", metrics_port=0, lease_ttl_ms=4000, renew_interval_ms=500,
                        reap_interval_ms=200, redis_timeout_ms=500)
    assert settings.lease_ttl_ms > grant_margin_ms(settings) + settings.renew_interval_ms
    app = producer(settings)
    log = tmp_path / "w.log"
    worker = spawn_worker("tests.apps:app", worker_env(settings.with_changes(redis_url=proxy.url), "W",
                                                       BATON_REDIS_TIMEOUT_MS=500), log)
    loop = asyncio.get_running_loop()
    try:
        warm = await app.trigger("steady_steps", {"steps": 0, "sleep": 0})
        assert (await app.wait_for(warm, 30)).status == "completed"
        # When a one-attempt run is handed to it, and the reply of the pop that takes it is lost (the
        # pop runs, the connection closes before the reply passes)
        proxy.lose_replies(MARK, 1, in_reply=True)
        sent = loop.time()
        run_id = await app.trigger("steady_steps", {"steps": 0, "sleep": 0, "mark": MARK.decode()})
        await eventually(lambda: proxy.replies_lost == 1, 10)
        # Then the run completes: given back uncharged as its lease expired, since the node's renewals
        # past the grant's margin left it out (not dead-lettered as a crash of its live node)
        run = await app.wait_for(run_id, 30)
        assert (run.status, [a.status for a in run.attempts]) == ("completed", ["released", "completed"]), (
            log.read_text()[-3000:])
        assert "never got the lease" in run.attempts[0].error["message"]
        # And as its lease expired, not later
        assert loop.time() - sent < settings.lease_ttl_ms / 1000 + 2, loop.time() - sent
        assert worker.poll() is None
        stored = await app.redis.hget(app.keys.partition_of_run(run_id).run(run_id), "attempts")
        assert [a["status"] for a in orjson.loads(stored)] == ["released"]
    finally:
        code = await tear_down(worker, (proxy.stop, app.close), server.stop)
    assert code == 0, log.read_text()[-3000:]


async def test_a_grant_lost_before_the_leasers_first_renewal_is_given_back_uncharged(tmp_path: Path) -> None:
    # Given a node process readied in its partition (as before its first claim there), whose leaser has not
    # renewed yet (late at start: a loaded machine)
    server = RedisProcess().start()
    settings = Settings(redis_url=server.url, prefix="lf", metrics_port=0, node_id="W", lease_ttl_ms=4000,
                        renew_interval_ms=500, reap_interval_ms=200, redis_timeout_ms=500)
    app = producer(settings)
    p = app.keys.partitions[0]
    incarnation = new_incarnation()
    try:
        await app.register_jobs()
        await ready_partition(app, p, incarnation)
        # When a one-attempt run is leased to it and the reply is lost (the claim ran, nobody read it)
        run_id = await app.trigger("steady_steps", {"steps": 0, "sleep": 0})
        granted, _ = await app.scripts.claim(p, "W", 1, ["default"], app.served_jobs(), 0)
        assert [c.run_id for c in granted] == [run_id]
        # and the leaser's first renewal comes past the grant's margin, holding nothing
        await asyncio.sleep(grant_margin_ms(settings) / 1000 + 0.2)
        await app.scripts.renew(p, [], incarnation)

        # Then once the lease expires the run is given back uncharged, as one its node never got: the
        # incarnation began when the partition was readied, before any grant (begun by that first
        # renewal instead, after the grant, it took the grant for an earlier process's and charged a
        # crash: the one-attempt run was dead-lettered, as CI saw once under load)
        async def reaped() -> Any:
            await app.scripts.reap(p)
            run = await app.get_run(run_id)
            return run if run is not None and run.attempts else None

        run = await eventually(reaped, 15)
        assert [a.status for a in run.attempts] == ["released"] and run.status != "dead_letter", run.attempts
        assert "never got the lease" in run.attempts[0].error["message"]
    finally:
        await app.close()
        server.stop()
