"""dramatiq: ``actor.send()``; ``dramatiq`` CLI with the RedisBroker."""

from __future__ import annotations

import os
from typing import Any

from .base import venv_bin
from .sync_base import SyncAdapter


class DramatiqAdapter(SyncAdapter):
    name = "dramatiq"
    packages = ("dramatiq", "redis", "hiredis")
    one_api = "actor.send()"
    worker_note = ("dramatiq --processes 1 --threads 8 (sync threads); an idle consumer backs off up to the "
                   "1 s worker timeout between polls")
    completion_note = "N − HLEN <queue>.msgs (a message leaves it when acked, after it ran)"

    async def setup(self) -> None:
        from bench.peers.dramatiq_app import build

        self.broker, noop, latency = build(self.redis_url, self.ns)
        self.actors = {"noop": noop, "latency": latency}

    async def teardown(self) -> None:
        self.broker.close()

    def enqueue_sync(self, job: str, data: dict[str, Any]) -> None:
        self.actors[job].send(data)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("dramatiq"), "bench.peers.dramatiq_app", "--processes", "1", "--threads", "8"]

    def completed_sync(self, expected: int) -> int:
        return expected - int(self.broker.client.hlen(f"{self.broker.namespace}:{self.ns}.msgs"))


class DramatiqDefaultAdapter(DramatiqAdapter):
    """``dramatiq`` with no options: its defaults are one process per CPU, 8 threads each."""

    name = "dramatiq-default"
    processes = os.cpu_count() or 1
    worker_note = (f"dramatiq with its defaults: --processes {processes} (= CPUs) --threads 8; the drain row "
                   "is this many worker processes, not one")
    phases = ("drain", "latency")

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("dramatiq"), "bench.peers.dramatiq_app"]
