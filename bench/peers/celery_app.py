"""Celery app and tasks: ``celery -A bench.peers.celery_app worker -P threads -c 100``."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from bench.jobs_support import mark_first, record_latency


def build(redis_url: str, ns: str) -> tuple[Any, Any, Any]:
    app = Celery("bench", broker=redis_url)
    # acks_late: a message is acknowledged after its task ran (like every other system here),
    # so completions can be read from the broker (queue + unacked hash)
    app.conf.update(task_default_queue=ns, task_acks_late=True, broker_connection_retry_on_startup=True)

    @app.task(name="noop")
    def noop(payload: dict[str, Any]) -> None:
        mark_first()

    @app.task(name="latency")
    def latency(payload: dict[str, Any]) -> None:
        record_latency(payload["t"])

    return app, noop, latency


app, noop, latency = build(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"),
                           os.environ.get("BENCH_NS", "celery"))
