"""The API's listings and the dashboard while one Redis Cluster master is down: they show what the
other masters hold and name the partitions they leave out (runtime/partition_outages.py, PartialRead).
Before, every listing answered 503 until the master came back, and the dashboard showed only errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from runtime import Baton, RunContext, Settings
from runtime.api import new_key
from runtime.api.media import UNANSWERED_HEADER
from runtime.ids import new_run_id
from runtime.statuses import RunStatus
from tests.api.test_cli import baton
from tests.nodes import api_settings, eventually, serving_api
from tests.servers import RedisClusterProcesses
from tests.ui.conftest import UiNode, Watch, signed_in_page

pytestmark = pytest.mark.cluster

PARTITIONS = 6


async def _status(app: Baton, run_id: str, status: str) -> bool:
    run = await app.get_run(run_id)
    return run is not None and run.status == status


async def test_listings_and_the_dashboard_go_on_without_a_dead_master(browser: Any) -> None:
    from playwright.async_api import expect

    # Given a node serving the API on a 3-master cluster, with two finished runs in each of 6 partitions
    cluster = RedisClusterProcesses().start()
    cluster.allow_partial_coverage()
    keys = {"default": new_key()}
    url = "redis://" + ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
    settings = Settings(redis_url=url, redis_cluster=True, prefix="bt", partitions=PARTITIONS, metrics_port=0,
                        api_operator_projects="default", **api_settings(keys))
    app = Baton(settings)

    @app.job()
    async def echo(ctx: RunContext, payload: Any) -> Any:
        return payload

    @app.job(timeout=120)
    async def awaits(ctx: RunContext, payload: Any) -> Any:
        return await ctx.wait_for_event("go", timeout=60)

    raw = RedisCluster.from_url(cluster.url)
    auth = {"Authorization": f"Bearer {keys['default']}"}
    try:
        await raw.initialize()
        async with serving_api(app) as (node, base, http):
            by_partition: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
            while any(len(ids) < 2 for ids in by_partition.values()):
                run_id = new_run_id()
                ids = by_partition[app.keys.partition_of_run(run_id).index]
                if len(ids) < 2:
                    ids.append(await app.trigger("echo", {"n": len(ids)}, id=run_id))
            for ids in by_partition.values():
                for run_id in ids:
                    assert (await app.wait_for(run_id, 20)).status == "completed"
            # (the master to kill holds partitions only: the node-wide keys' master is another)
            wide = raw.nodes_manager.get_node_from_slot(raw.keyslot(app.keys.deployment)).port
            lost = next(n for n in cluster.nodes if n.port != wide)
            on_lost = sorted(p.index for p in app.keys.partitions
                             if raw.nodes_manager.get_node_from_slot(raw.keyslot(p.leased)).port == lost.port)
            assert on_lost and len(on_lost) < PARTITIONS
            healthy_runs = {r for p, ids in by_partition.items() if p not in on_lost for r in ids}
            named = ",".join(str(p) for p in on_lost)

            # (and a run waits for an event in a healthy partition after a lost one: events go to the
            # partitions in order)
            after = [p for p in range(min(on_lost) + 1, PARTITIONS) if p not in on_lost]
            assert after, on_lost
            waiter = new_run_id()
            while app.keys.partition_of_run(waiter).index != after[-1]:
                waiter = new_run_id()
            await app.trigger("awaits", id=waiter)
            healthy_runs.add(waiter)
            await eventually(lambda: _status(app, waiter, RunStatus.WAITING), timeout=20, interval=0.05)

            # When that master is killed
            lost.kill()

            # Then the runs list answers with every run of the other masters, and names the partitions it left out
            async with http.get(f"{base}/v1/runs?limit=100", headers=auth) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                assert resp.headers[UNANSWERED_HEADER] == named
                assert {r["id"] for r in body["data"]} == healthy_runs
            # And the next listings do not wait on the dead master again (its partitions are skipped
            # until a probe is answered; a try costs the client's retries, over a second)
            started = time.monotonic()
            async with http.get(f"{base}/v1/runs?limit=100", headers=auth) as resp:
                assert resp.status == 200 and resp.headers[UNANSWERED_HEADER] == named
            assert time.monotonic() - started < 1.0
            # And the queues' counts answer too, saying what they leave out
            async with http.get(f"{base}/v1/queues", headers=auth) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                assert resp.headers[UNANSWERED_HEADER] == named
                assert any(q["name"] == "default" for q in body["data"])
            # And a run on the dead master is an honest 503, not a 404, answered at once while the API
            # knows that master is out (before, each such request waited out the client's retries, ~1.6 s)
            for run_id in (by_partition[on_lost[0]][0], by_partition[on_lost[-1]][0]):
                started = time.monotonic()
                async with http.get(f"{base}/v1/runs/{run_id}", headers=auth) as resp:
                    assert resp.status == 503
                assert time.monotonic() - started < 1.0
            # And so is a run triggered there (an id of the caller's that hashes to the lost master)
            lost_id = new_run_id()
            while app.keys.partition_of_run(lost_id).index not in on_lost:
                lost_id = new_run_id()
            started = time.monotonic()
            async with http.post(f"{base}/v1/jobs/echo/trigger", headers=auth,
                                 json={"input": {"n": 9}, "id": lost_id}) as resp:
                assert resp.status == 503, await resp.text()
            assert time.monotonic() - started < 1.0
            # But runs whose ids Baton draws are created on the masters that answer, through the API
            # and the app alike (before, a third of them failed: 503 after the client's retries)
            drawn = []
            for n in range(12):
                async with http.post(f"{base}/v1/jobs/echo/trigger", headers=auth, json={"input": {"n": n}}) as resp:
                    assert resp.status == 201, await resp.text()
                    drawn.append((await resp.json())["id"])
                drawn.append(await app.trigger("echo", {"n": n}))
            assert not {app.keys.partition_of_run(r).index for r in drawn} & set(on_lost)
            for run_id in drawn:
                assert (await app.wait_for(run_id, 15)).status == "completed"
            healthy_runs.update(drawn)
            # And a bulk action, which acts on what it finds, refuses rather than act on a part
            async with http.post(f"{base}/v1/runs/bulk-cancel-all", headers=auth, json={"status": ["queued"]}) as resp:
                assert resp.status == 503, await resp.text()

            # And an event sent through the API reaches the waiter on a healthy master, though the call
            # answers 503 for the partitions that did not get it (sent again, it completes)
            # (at once: the API skips the partitions it knows are out, rather than waiting out the client's
            # retries on each; the message names them)
            started = time.monotonic()
            async with http.post(f"{base}/v1/events", headers=auth, json={"key": "go", "data": {"by": "api"}}) as resp:
                assert resp.status == 503, await resp.text()
                assert f"every partition but {named}" in (await resp.json())["error"]
            assert time.monotonic() - started < 1.0
            run = await app.wait_for(waiter, 15)
            assert (run.status, run.output) == ("completed", {"by": "api"})

            # And the CLI prints what it got, and says on stderr which partitions that leaves out
            cli_env = {"BATON_API_URL": base, "BATON_API_KEY": keys["default"]}
            for command in (("runs", "ls"), ("queues", "ls")):
                code, out, err = await baton(None, *command, env=cli_env)
                assert code == 0 and ("default" in out if command[0] == "queues" else healthy_runs & set(out.split()))
                assert f"partition(s) {', '.join(str(p) for p in on_lost)} did not answer" in err, (command, err)

            # And the dashboard's runs page lists the healthy runs under a banner naming the partitions
            ui = UiNode(app, node, base, keys, http, Watch())
            page = await signed_in_page(browser, ui, project="default")
            await page.goto(f"{base}/#/runs")
            await expect(page.locator("#partial")).to_be_visible()
            await expect(page.locator("#partial")).to_contain_text("did not answer")
            for p in on_lost:
                await expect(page.locator("#partial")).to_contain_text(str(p))
            await expect(page.locator("table.runs tbody tr")).to_have_count(len(healthy_runs))

            # When the master comes back (empty: no persistence), the listings are whole again, and so is the page
            lost.start()
            cluster.allow_partial_coverage()

            async def whole() -> bool:
                async with http.get(f"{base}/v1/runs?limit=100", headers=auth) as resp:
                    return resp.status == 200 and UNANSWERED_HEADER not in resp.headers

            await eventually(whole, timeout=30, interval=0.2)
            await page.reload()
            await expect(page.locator("table.runs tbody tr")).to_have_count(len(healthy_runs))
            await expect(page.locator("#partial")).to_be_hidden()
            await page.context.close()
    finally:
        await raw.aclose()
        await app.close()
        await asyncio.to_thread(cluster.stop)


def test_the_dashboard_reads_the_header_the_api_writes() -> None:
    # (one name, written by the server and read by the page: a rename on one side only would hide the banner)
    script = (Path(__file__).parents[2] / "runtime" / "api" / "ui" / "api.js").read_text()
    assert f'const UNANSWERED_HEADER = "{UNANSWERED_HEADER}";' in script
