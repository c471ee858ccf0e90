"""Worker labels and affinity across worker processes: required labels are exact, preferred ones
prefer, sticky children stay on their parent's node, an unmatched run waits, and a run whose only
matching node is killed -9 is taken by a new matching node."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from actors.observer import Observer
from runtime import Baton, Settings
from runtime.api.views import native_run
from runtime.metrics import Metrics
from runtime.nodes import list_nodes
from tests import affinity_apps
from tests.integration.test_processes import worker_env
from tests.nodes import eventually, kill_process, running_node, spawn_worker, stop_process

APP = "tests.affinity_apps:app"


def producer(settings: Settings) -> Baton:
    """A client app that knows the affinity test jobs."""
    app = Baton(settings)
    for job in affinity_apps.app.jobs:
        app.jobs.add(job.name, job.handler, job.options)
    return app


async def test_labels_decide_which_worker_process_runs_what(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given three workers: gpu=a100 (region us), region=eu, and one without labels
    app = producer(settings)
    workers = {
        name: spawn_worker(APP, worker_env(settings, name, BATON_LABELS=labels), tmp_path / f"{name}.log")
        for name, labels in (("gpu", "gpu=a100,region=us"), ("eu", "region=eu"), ("plain", ""))
    }
    try:
        await eventually(lambda: len_alive(app, 3), 30)
        # When runs that require, prefer or name no labels are triggered, with sticky children
        gpu_ids = [await app.trigger("on_gpu", i) for i in range(8)]
        eu_ids = [await app.trigger("near_eu", i) for i in range(6)]
        started = time.monotonic()
        nowhere = await app.trigger("near_eu", 0, prefer_labels={"region": "ap"}, prefer_wait=0.5)
        parents = [await app.trigger("sticky_parent", mode) for mode in (True, "hard", "soft", "soft")]
        unmatched = await app.trigger("on_gpu", 0, node_labels={"gpu": "h100"})
        # Then required labels are honoured exactly, and preferred ones win while a node offers them
        assert {(await app.wait_for(i, 20)).output for i in gpu_ids} == {"gpu"}
        assert {(await app.wait_for(i, 20)).output for i in eu_ids} == {"eu"}
        # a preference no node offers only delays the run by its wait
        fallback = await app.wait_for(nowhere, 20)
        assert fallback.status == "completed" and time.monotonic() - started >= 0.5
        # and each sticky child ran on its parent's node
        for run_id in parents:
            out = (await app.wait_for(run_id, 20)).output
            assert (await app.wait_for(out["child"], 20)).output == out["parent"]
        # A run requiring labels no node offers waits, saying why
        run = await app.get_run(unmatched)
        assert run is not None and run.status == "queued"
        view = native_run(run)
        assert view["queued_reason"] == "waiting_for_labels" and view["node_labels"] == {"gpu": "h100"}
        nodes = {n["id"]: n["labels"] for n in await list_nodes(app)}
        assert nodes["gpu"] == {"gpu": "a100", "region": "us"} and nodes["plain"] == {}

        # When the only gpu node is killed -9 while running a gpu run
        hanging = await app.trigger("on_gpu", {"hang": True})
        await eventually(lambda: redis.llen(f"{settings.prefix}:test:hanging"), 20)
        kill_process(workers.pop("gpu"))
        # Then no other node takes it; a new gpu node does, after the lease expired
        workers["gpu2"] = spawn_worker(APP, worker_env(settings, "gpu2", BATON_LABELS="gpu=a100"),
                                       tmp_path / "gpu2.log")
        done = await app.wait_for(hanging, 30)
        assert done.output == "gpu2"
        assert [(a.status, a.worker_id) for a in done.attempts] == [("crashed", "gpu"), ("completed", "gpu2")]
        still = await app.get_run(unmatched)
        assert still is not None and still.status == "queued"
    finally:
        for proc in workers.values():
            stop_process(proc)
        await app.close()


async def len_alive(app: Baton, n: int) -> bool:
    """Whether n nodes heartbeat."""
    return sum(1 for node in await list_nodes(app) if node["alive"]) >= n


async def test_a_job_whose_labels_no_live_node_offers_is_counted(make_app: Any) -> None:
    # Given a node without labels serving a job that requires gpu=a100 (registered by the node)
    app = make_app(node_id="cpu-only")
    app.job(node_labels={"gpu": "a100"})(affinity_apps.anywhere)
    async with running_node(app):
        metrics = Metrics()
        await Observer(app, metrics).observe()
        # Then the observer counts that job
        assert metrics.registry.get_sample_value("baton_jobs_without_label_match") == 1
        # and stops counting it once a node offering the labels is live
        gpu = make_app(node_id="gpu-node", labels="gpu=a100")
        gpu.job(node_labels={"gpu": "a100"})(affinity_apps.anywhere)
        async with running_node(gpu):
            async def matched() -> bool:
                await Observer(app, metrics).observe()
                return metrics.registry.get_sample_value("baton_jobs_without_label_match") == 0
            await eventually(matched, 10)
