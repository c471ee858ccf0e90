"""rq job functions (``rq worker`` imports them by path)."""

from __future__ import annotations

from typing import Any

from bench.jobs_support import record_latency


def noop(payload: dict[str, Any]) -> None:
    """Does nothing. (The first start is read from the first job's record, the same for forking workers.)"""


def latency(payload: dict[str, Any]) -> None:
    record_latency(payload["t"])
