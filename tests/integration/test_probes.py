"""A worker's /livez and /readyz (metrics port) under real faults: a blocked event loop, a Redis that goes
away and comes back, a drain, an actor that spends its restart budget."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from actors.supervisor import Supervisor
from runtime import Baton, RunContext, Settings
from runtime.metrics import Metrics
from runtime.probes import Health, start_probe_server
from tests.nodes import eventually, running_node
from tests.servers import RedisProcess


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET a probe; (status, JSON body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def serve(health: Health, registry: CollectorRegistry | None = None) -> int:
    return start_probe_server("127.0.0.1", 0, registry or CollectorRegistry(), health)


class Poller:
    """Probes from a thread of its own, so it keeps going while the test's event loop is blocked."""

    def __init__(self, port: int, path: str) -> None:
        self.seen: list[tuple[int, dict[str, Any]]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(port, path), daemon=True)
        self._thread.start()

    def _poll(self, port: int, path: str) -> None:
        while not self._done.wait(0.1):
            self.seen.append(probe(port, path))

    def stop(self) -> list[tuple[int, dict[str, Any]]]:
        self._done.set()
        self._thread.join(10)
        return self.seen


@pytest.fixture
def poller() -> Iterator[list[Poller]]:
    started: list[Poller] = []
    yield started
    for p in started:
        p.stop()


async def test_liveness_fails_while_the_event_loop_is_blocked(make_app: Any, poller: list[Poller]) -> None:
    # Given a node whose liveness limit is 1 s, and a job that blocks its event loop for 3 s, within its lease
    # of 10 s (past the lease, the attempt fails: tests/integration/test_watchdog.py)
    app = make_app(loop_stall_limit_s=1.0, lease_ttl_ms=10_000)

    @app.job(max_attempts=1)
    async def blocks_the_loop(ctx: RunContext, payload: Any) -> str:
        time.sleep(3)  # the bug being detected: blocking code in an async def
        return "done"

    async with running_node(app) as node:
        port = serve(node.health, node.metrics.registry)
        await eventually(lambda: probe(port, "/readyz")[0] == 200, 10)
        assert probe(port, "/livez") == (200, {"status": "ok"})
        live = Poller(port, "/livez")
        poller.append(live)
        # When the handler blocks the loop
        run = await app.wait_for(await app.trigger("blocks_the_loop"), 20)
        seen = live.stop()
        # Then liveness failed while the loop was blocked, saying why, and recovers once it runs again
        assert run.status == "completed"
        failing = [body for status, body in seen if status == 503]
        assert failing and "event loop blocked" in failing[0]["reason"], seen
        await eventually(lambda: probe(port, "/livez")[0] == 200, 5)


@pytest.mark.timeout(90)
async def test_readiness_follows_redis_and_the_drain_while_liveness_holds(settings: Settings) -> None:
    # Given a node on its own Redis server, serving the probes
    server = RedisProcess().start()
    app = Baton(settings.with_changes(redis_url=server.url))
    try:
        async with running_node(app) as node:
            port = serve(node.health)
            await eventually(lambda: probe(port, "/readyz")[0] == 200, 10)
            # When Redis refuses writes (used memory over maxmemory, no eviction)
            await app.redis.config_set("maxmemory", 1)
            # Then the node is not ready (its heartbeat fails), and says that Redis answers but refuses writes
            status, body = await eventually(lambda: _failing(probe(port, "/readyz")), 20)
            assert (status, body["redis"], body["draining"]) == (503, False, False)
            assert "OOM" in body["redis_error"] or "OutOfMemory" in body["redis_error"], body
            assert probe(port, "/livez")[0] == 200
            await app.redis.config_set("maxmemory", 0)
            await eventually(lambda: probe(port, "/readyz")[0] == 200, 20)
            assert "redis_error" not in probe(port, "/readyz")[1]
            # When Redis goes away
            server.kill()
            # Then the node is not ready (its heartbeat fails), says it lost Redis, but stays alive: it
            # rides the outage out
            status, body = await eventually(lambda: _failing(probe(port, "/readyz")), 20)
            assert {k: v for k, v in body.items() if k != "redis_error"} == {
                "status": "unavailable", "started": True, "redis": False, "draining": False}
            assert "Connect" in body["redis_error"] or "connect" in body["redis_error"], body
            assert probe(port, "/livez")[0] == 200
            # When Redis is back on the same port
            server = RedisProcess(port=server.port).start()
            # Then it is ready again
            await eventually(lambda: probe(port, "/readyz")[0] == 200, 30, interval=0.1)
            # When the node starts draining
            node.request_shutdown()
            # Then readiness fails at once, and liveness holds (the drain is not cut short)
            assert probe(port, "/readyz")[1]["draining"] is True
            assert probe(port, "/livez")[0] == 200
        await app.close()
    finally:
        server.stop()


def _failing(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]] | None:
    """A probe's answer once it fails (503), else None (for eventually)."""
    return answer if answer[0] == 503 else None


async def test_liveness_fails_once_an_actor_spent_its_restart_budget(make_app: Any) -> None:
    # Given a node whose restart budget is 0, with an actor that fails at every start (a persisting cause)
    app = make_app(max_restarts=0)
    node = Supervisor(app, Metrics())

    async def broken() -> None:
        raise RuntimeError("config that will never work")

    node.scheduler.run = broken  # type: ignore[method-assign]
    port = serve(node.health)
    # When the node runs
    await asyncio.wait_for(node.run(), 30)
    # Then it gave up with exit code 1, and liveness says so (Kubernetes restarts the pod if it lingers)
    assert node.exit_code == 1
    status, body = probe(port, "/livez")
    assert status == 503 and "scheduler spent its restart budget" in body["reason"]
    assert "config that will never work" in body["reason"]
    assert probe(port, "/readyz")[0] == 503


def test_metrics_are_served_beside_the_probes() -> None:
    # Given a probe server for a registry with node metrics
    metrics = Metrics()
    metrics.slots_total.set(7)
    port = serve(Health(5), metrics.registry)
    # When /metrics is fetched, then it is the registry's exposition
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert "baton_executor_slots 7.0" in resp.read().decode()
    # and a health that has not started is alive (nothing measured yet) but not ready
    assert probe(port, "/livez")[0] == 200 and probe(port, "/readyz")[0] == 503
