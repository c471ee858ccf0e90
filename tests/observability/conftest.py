"""Fixtures of the observability tests: nodes that serve /metrics, and a node under a small load."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from actors.supervisor import Supervisor
from runtime import Baton
from tests.nodes import eventually, running_node
from tests.observability import jobs
from tests.observability.support import sample, scrape


@contextlib.contextmanager
def metrics_http(registry: CollectorRegistry) -> Iterator[int]:
    """Serve a registry's /metrics on a free loopback port, as ``baton worker`` does; yields the port."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def with_jobs(app: Baton, *extra: tuple[str, Any, dict[str, Any]]) -> Baton:
    """Give an app the observability test jobs (plus producer-only ones: name, handler, options)."""
    for job in jobs.app.jobs:
        app.jobs.add(job.name, job.handler, job.options)
    for name, handler, options in extra:
        app.job(name, **options)(handler)
    return app


#: settings of the tests' nodes: the observer reads Redis every 100 ms
FAST_OBSERVER = {"observe_interval_ms": 100}


@dataclass
class LoadedNode:
    """A running node that has handled a small mixed load, serving /metrics."""

    app: Baton
    producer: Baton
    node: Supervisor
    port: int
    runs: dict[str, str]  #: what -> run id

    def scrape(self) -> str:
        """The node's /metrics now."""
        return scrape(self.port)

    async def wait_sample(self, name: str, value: float, timeout: float = 10, **labels: str) -> str:
        """Scrape until a sample has the value; returns that scrape."""
        last: list[str] = [""]

        def check() -> bool:
            last[0] = self.scrape()
            return sample(last[0], name, **labels) == value

        try:
            await eventually(check, timeout, interval=0.05)
        except AssertionError:
            last_value = sample(last[0], name, **labels)
            raise AssertionError(f"{name}{labels} != {value} after {timeout}s; last: {last_value}") from None
        return last[0]


async def _unserved(ctx: Any, payload: Any) -> None:  # defined by producers only: no node serves it
    return None


@pytest.fixture
async def loaded_node(make_app: Callable[..., Baton]) -> AsyncIterator[LoadedNode]:
    """A node with one run of each outcome behind it: completed, retried then dead-lettered, permanently
    failed, timed out, canceled, logged from a thread; one rejected stream entry; one durable wait; and a
    backlog of a queue no node serves."""
    app = with_jobs(make_app(**FAST_OBSERVER))
    producer = with_jobs(make_app(), ("unserved", _unserved, {"queue": "q-backlog"}))
    async with running_node(app) as node:
        with metrics_http(node.metrics.registry) as port:
            runs = {
                "ok": await producer.trigger("ok", {"n": 1}),
                "boom": await producer.trigger("boom"),
                "fatal": await producer.trigger("fatal"),
                "stuck": await producer.trigger("stuck"),
                "chatty": await producer.trigger("chatty", "hi"),
                "nap": await producer.trigger("nap"),
            }
            for i in range(4):
                await producer.trigger("unserved", {"i": i})
            await app.redis.xadd(app.keys.submit_stream, {"job": "no_such_job"})
            for key in ("ok", "boom", "fatal", "stuck", "chatty"):
                await producer.wait_for(runs[key], 45)  # generous: the suite may load both cores
            await producer.wait_for(runs["nap"], 20, statuses=["waiting"])
            runs["hold"] = await producer.trigger("hold", {"seconds": 30})
            await producer.wait_for(runs["hold"], 20, statuses=["executing"])
            await producer.cancel(runs["hold"])
            await producer.wait_for(runs["hold"], 20)
            loaded = LoadedNode(app, producer, node, port, runs)
            await loaded.wait_sample("baton_intake_entries_rejected_total", 1, reason="unknown_job")
            await loaded.wait_sample("baton_queue_depth", 4, queue="q-backlog", partition="0")
            yield loaded
