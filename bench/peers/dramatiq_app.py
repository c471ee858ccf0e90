"""dramatiq broker and actors: ``dramatiq bench.peers.dramatiq_app --processes 1 --threads 8``."""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.jobs_support import mark_first, record_latency


def _noop(payload: dict[str, Any]) -> None:
    mark_first()


def _latency(payload: dict[str, Any]) -> None:
    record_latency(payload["t"])


def build(redis_url: str, ns: str) -> tuple[Any, Any, Any]:
    broker = RedisBroker(url=redis_url)
    dramatiq.set_broker(broker)
    noop = dramatiq.actor(_noop, actor_name="noop", queue_name=ns, broker=broker)
    latency = dramatiq.actor(_latency, actor_name="latency", queue_name=ns, broker=broker)
    return broker, noop, latency


broker, noop, latency = build(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"),
                              os.environ.get("BENCH_NS", "default"))
