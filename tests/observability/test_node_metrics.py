"""A node's /metrics after real work: runs by outcome, leases, executor, intake, Redis, actors."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime import Baton, Settings
from runtime.metrics import CLAIM_REASONS, DEDUP_REASONS, LOST_STAGES
from tests.nodes import eventually, running_node
from tests.observability.conftest import FAST_OBSERVER, LoadedNode, metrics_http, with_jobs
from tests.observability.support import ROOT, promtool, sample, scrape
from tests.servers import RedisProcess


async def test_run_counters_by_job_and_outcome(loaded_node: LoadedNode) -> None:
    # Given a node that ran one run of each kind, when /metrics is scraped
    text = loaded_node.scrape()

    def v(name: str, **labels: str) -> float | None:
        return sample(text, name, **labels)

    # Then starts, final statuses, retries and attempt outcomes are counted by job
    assert v("baton_runs_started_total", job_name="ok") == 1
    assert v("baton_runs_started_total", job_name="boom") == 2
    assert v("baton_runs_finished_total", job_name="ok", status="completed") == 1
    assert v("baton_runs_finished_total", job_name="chatty", status="completed") == 1
    assert v("baton_runs_finished_total", job_name="boom", status="dead_letter") == 1
    assert v("baton_runs_finished_total", job_name="fatal", status="failed") == 1
    assert v("baton_runs_finished_total", job_name="stuck", status="dead_letter") == 1
    assert v("baton_runs_finished_total", job_name="hold", status="canceled") == 1
    assert v("baton_runs_retried_total", job_name="boom") == 1
    assert v("baton_attempts_total", job_name="boom", outcome="failed") == 2
    assert v("baton_attempts_total", job_name="stuck", outcome="timed_out") == 1
    assert v("baton_attempts_total", job_name="hold", outcome="canceled") == 1
    assert v("baton_attempts_total", job_name="nap", outcome="waiting") == 1
    assert v("baton_run_duration_seconds_count", job_name="ok") == 1
    assert v("baton_pickup_latency_seconds_count", job_name="ok") == 1
    # and leases, slots and intake
    assert v("baton_leases_acquired_total") == 8
    assert 0 <= v("baton_leases_handed_off_total") <= 8
    assert v("baton_leases_held") == 0
    assert v("baton_lease_ttl_seconds") == 2.0
    assert v("baton_lease_remaining_min_seconds") == 2.0  # none held
    assert v("baton_executor_slots") == 10 and v("baton_executor_slots_busy") == 0
    assert v("baton_intake_entries_read_total") == 1
    assert v("baton_intake_entries_rejected_total", reason="unknown_job") == 1
    # and every Lua call and pipeline was timed
    for command in ("runs_claim", "runs_finish", "leases_reap", "runs_promote", "heartbeat", "observe"):
        assert (v("baton_redis_command_duration_seconds_count", command=command) or 0) >= 1, command
    heartbeat = v("baton_heartbeat_timestamp_seconds")
    assert heartbeat is not None and abs(heartbeat - time.time()) < 10


async def test_cluster_gauges_on_a_running_node(loaded_node: LoadedNode) -> None:
    # Given the same node, its observer's view of the cluster (one partition) once every run has settled
    # (the canceled run was the last to finish; the observer reads every count in one pipeline)
    text = await loaded_node.wait_sample("baton_partition_runs", 1, partition="0", state="canceled")

    def state(s: str) -> float | None:
        return sample(text, "baton_partition_runs", partition="0", state=s)

    # Then the backlog, the final statuses and the durable wait are counted from Redis
    assert sample(text, "baton_queue_depth", queue="q-backlog", partition="0") == 4
    assert (sample(text, "baton_queue_oldest_age_seconds", queue="q-backlog", partition="0") or 0) > 0
    assert state("queued") == 4 and state("executing") == 0 and state("waiting") == 1
    assert state("completed") == 2 and state("dead_letter") == 2 and state("failed") == 1
    assert state("canceled") == 1
    assert sample(text, "baton_nodes_live") == 1
    assert sample(text, "baton_leases_overdue", partition="0") == 0


async def test_promtool_check_metrics_passes_on_a_live_node(loaded_node: LoadedNode) -> None:
    # Given the text exposition of a node that did real work
    text = loaded_node.scrape()
    # When promtool lints it
    result = promtool("check", "metrics", stdin=text)
    # Then it passes without a single lint message
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip() and not result.stderr.strip(), result.stdout + result.stderr


async def test_lease_time_left_renewals_lost_leases_and_reclaims(make_app: Callable[..., Baton]) -> None:
    # Given a node executing a run that holds its lease
    app = with_jobs(make_app(**FAST_OBSERVER))
    async with running_node(app) as node:
        with metrics_http(node.metrics.registry) as port:
            run_id = await app.trigger("hold", {"seconds": 30})
            await app.wait_for(run_id, 10, statuses=["executing"])

            def renewed_twice() -> bool:
                return (sample(scrape(port), "baton_leases_renewed_total") or 0) >= 2

            await eventually(renewed_twice, 10)
            text = scrape(port)
            # Then it reports the lease it holds, the time left on it, and how much was left at renewals
            assert sample(text, "baton_leases_held") == 1
            left = sample(text, "baton_lease_remaining_min_seconds")
            assert left is not None and 0 < left <= 2.0
            assert (sample(text, "baton_lease_remaining_at_renewal_seconds_count") or 0) >= 2
            # When another owner's lease replaces this node's (what a reclaim by another node does)
            p = app.keys.partition_of_run(run_id)
            await app.redis.hset(p.run(run_id), "lease_node", "someone-else")
            # Then the next renewal finds the lease lost, and the handler's outcome is fenced off
            text = await _wait(port, "baton_leases_lost_total", 1, stage="renew")
            # and once the stale lease expires, the reaper reclaims it for queue obs and retries the run
            text = await _wait(port, "baton_leases_reclaimed_total", 1, queue="obs")
            # (the lost lease counted once: not again when the outcome the handler's end sent was fenced off)
            assert not sample(text, "baton_leases_lost_total", stage="finish")
            assert sample(text, "baton_attempts_total", job_name="hold", outcome="crashed") == 1
            run = await app.wait_for(run_id, 10)
            assert run.status == "completed"
            text = scrape(port)
            assert sample(text, "baton_runs_retried_total", job_name="hold") == 1
            assert sample(text, "baton_runs_finished_total", job_name="hold", status="completed") == 1
            assert sample(text, "baton_leases_held") == 0


async def _wait(port: int, name: str, value: float, timeout: float = 10, **labels: str) -> str:
    last = [""]

    def check() -> bool:
        last[0] = scrape(port)
        return sample(last[0], name, **labels) == value

    await eventually(check, timeout, interval=0.05)
    return last[0]


@pytest.mark.timeout(60)
async def test_redis_outage_counts_reconnects_not_restarts(settings: Settings, prefix: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    # Given a node on its own Redis server
    server = RedisProcess().start()
    try:
        app = with_jobs(Baton(settings.with_changes(redis_url=server.url, **FAST_OBSERVER)))
        async with running_node(app) as node:
            with metrics_http(node.metrics.registry) as port, caplog.at_level(logging.INFO, logger="baton"):
                # When the server goes away long enough for the client's own retries to give up
                server.kill()

                def reconnecting() -> bool:
                    return sum(_values(scrape(port), "baton_redis_reconnects_total")) >= 3

                await eventually(reconnecting, 30, interval=0.1)
                # and comes back on the same port
                server = RedisProcess(port=server.port).start()
                run_id = await app.trigger("ok", {"back": True})
                assert (await app.wait_for(run_id, 20)).status == "completed"
                await eventually(lambda: any("Redis answers again" in r.getMessage() for r in caplog.records), 10)
                # (saying how long: since the first heartbeat that failed, to since the last that got through,
                # or "at least" when none had got through yet)
                [said] = [r.getMessage() for r in caplog.records if "Redis answers again" in r.getMessage()]
                bounds = re.fullmatch(r"Redis answers again, after (\d+\.\d)(?:-(\d+\.\d)|\+)s without an answer",
                                      said)
                assert bounds is not None and 0 < float(bounds[1]) <= float(bounds[2] or bounds[1]), said
                text = scrape(port)
        await app.close()
    finally:
        server.stop()
    # Then the actors that lost Redis counted reconnects and Redis errors, but no restart: an outage
    # is a state of the server, and must not fire BatonActorRestarting nor log actors as crashed
    assert sum(_values(text, "baton_redis_errors_total")) > 0
    assert _values(text, "baton_actor_restarts_total") and not any(_values(text, "baton_actor_restarts_total"))
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "crashed" in m], messages
    waits = [m for m in messages if " waits for Redis" in m]
    assert waits
    # each actor says so once for the outage, however often it tried again; so does each leaser duty
    assert len(waits) == len(set(m.split(":")[0] for m in waits)), waits
    duties = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING and "failed on a Redis error" in r.getMessage()]
    assert len(duties) == len({m.split(" ")[0] for m in duties}), duties
    assert all(r.levelno <= logging.WARNING for r in caplog.records if "Redis" in r.getMessage())


def _values(text: str, name: str) -> list[float]:
    return [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


async def test_labelled_counters_exist_at_zero_before_their_first_event(make_app: Callable[..., Baton]) -> None:
    # Given a node that has just started and done nothing yet
    app = with_jobs(make_app(**FAST_OBSERVER))
    async with running_node(app) as node:
        with metrics_http(node.metrics.registry) as port:
            text = scrape(port)
    # Then the counters that alerts take increase() of are there at 0, for every label value known at start,
    # so a first burst (a mass reclaim after an OOM, a first lost lease) counts in full
    assert sample(text, "baton_leases_reclaimed_total", queue="obs") == 0
    for stage in LOST_STAGES:
        assert sample(text, "baton_leases_lost_total", stage=stage) == 0, stage
    for actor in [a.name for a in node.actors] + ["supervisor"]:
        for name in ("baton_actor_restarts_total", "baton_redis_errors_total", "baton_redis_reconnects_total"):
            assert sample(text, name, actor=actor) == 0, (name, actor)
    for reason in CLAIM_REASONS:
        assert sample(text, "baton_intake_entries_claimed_total", reason=reason) == 0
    for reason in DEDUP_REASONS:
        assert sample(text, "baton_intake_entries_deduplicated_total", reason=reason) == 0


def test_every_label_value_the_code_counts_is_created_at_start() -> None:
    # Given the label values the actors pass as literals to the counters created at zero
    source = "\n".join(p.read_text() for p in (ROOT / "actors").glob("*.py"))
    stages = set(re.findall(r'leases_lost\.labels\(stage="(\w+)"\)', source))
    claims = set(re.findall(r'claimed="(\w+)"', source))
    # Then each one is in the tuple Metrics.init_node creates at start
    assert stages and stages <= set(LOST_STAGES)
    assert claims and claims <= set(CLAIM_REASONS)


async def test_process_metrics_build_info_and_no_created_series(loaded_node: LoadedNode) -> None:
    # Given a node's /metrics
    text = loaded_node.scrape()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # Then the process and Python collectors are there, and the build info says which Baton runs
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"} <= names
    assert sample(text, "baton_build_info") == 1
    # and no counter or histogram doubles its series with _created
    assert not [n for n in names if n.endswith("_created")]


async def test_only_the_elected_node_exports_the_cluster_gauges(make_app: Callable[..., Baton]) -> None:
    # Given two nodes on one Redis
    first, second = (with_jobs(make_app(node_id=n, **FAST_OBSERVER)) for n in ("n1", "n2"))
    async with running_node(first) as node1, running_node(second) as node2:
        nodes = {"n1": node1, "n2": node2}

        def exporters() -> list[str]:
            return [n for n, node in nodes.items()
                    if node.metrics.registry.get_sample_value("baton_nodes_live") is not None]

        # Then exactly one exports the cluster gauges (the scheduler lease's holder), the other has none
        await eventually(lambda: len(exporters()) == 1 and nodes[exporters()[0]].scheduler.holding, 10)
        (holder,) = exporters()
        other = "n2" if holder == "n1" else "n1"
        assert nodes[other].metrics.registry.get_sample_value("baton_queue_depth", {"queue": "obs",
                                                                                     "partition": "0"}) is None
        await eventually(lambda: nodes[holder].metrics.registry.get_sample_value("baton_nodes_live") == 2, 10)
        # When the holder drains (it hands the lease over at once)
        nodes[holder].request_shutdown()
        # Then the other node takes over the export
        await eventually(lambda: exporters() == [other], 15)
