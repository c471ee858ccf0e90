"""A job's concurrency and rate limits as an operator reads and changes them at runtime.

The claim script reads a job's limits from each partition's job table: the
runtime override (``jobs:override``, written by ``Baton.set_limits``) wins over
what the code registered (``jobs``). Both hold the same spec text (see
``runtime.jobs.limit_spec``); this module decodes it for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .codec import text
from .errors import SubmissionError

if TYPE_CHECKING:
    from .app import Baton

__all__ = ["MAX_LIMIT", "MAX_WINDOW_S", "JobLimits", "decode_limits", "limit_count", "limit_rate", "rate_dict",
           "read_limits", "set_limits"]

#: the largest concurrency limit or rate count an operator may set
MAX_LIMIT = 1_000_000
#: the longest rate window (a day)
MAX_WINDOW_S = 86_400.0


@dataclass(frozen=True)
class JobLimits:
    """Limits of one job: 0 / None = no limit."""

    max_concurrency: int = 0
    max_concurrency_per_key: int = 0
    rate_limit: tuple[int, float] | None = None
    rate_limit_per_key: tuple[int, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and the CLI (rates as ``{"count", "window_s"}``)."""
        return {"max_concurrency": self.max_concurrency, "max_concurrency_per_key": self.max_concurrency_per_key,
                "rate_limit": rate_dict(self.rate_limit), "rate_limit_per_key": rate_dict(self.rate_limit_per_key)}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> JobLimits:
        """Read the JSON shape; a missing field is no limit. Raises SubmissionError (reason ``bad_limits``)."""
        return cls(limit_count(body, "max_concurrency"), limit_count(body, "max_concurrency_per_key"),
                   limit_rate(body, "rate_limit"), limit_rate(body, "rate_limit_per_key"))


def limit_count(body: dict[str, Any], name: str) -> int:
    """A concurrency limit of a JSON body (0 when missing = none); SubmissionError ``bad_limits`` when bad."""
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
        raise SubmissionError("bad_limits", f"{name} must be an integer between 0 and {MAX_LIMIT}")
    return value


def limit_rate(body: dict[str, Any], name: str) -> tuple[int, float] | None:
    """A rate ``{"count", "window_s"}`` of a JSON body as (count, window s); None when missing or null."""
    value = body.get(name)
    if value is None:
        return None
    n, window = (value.get("count"), value.get("window_s")) if isinstance(value, dict) else (None, None)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LIMIT:
        raise SubmissionError("bad_limits", f"{name}.count must be an integer between 1 and {MAX_LIMIT}")
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0.001 <= window <= MAX_WINDOW_S:
        raise SubmissionError("bad_limits", f"{name}.window_s must be between 0.001 and {MAX_WINDOW_S:g}")
    return (n, float(window))


def rate_dict(rate: tuple[int, float] | None) -> dict[str, Any] | None:
    """A rate in the JSON shape of the API and the CLI."""
    return None if rate is None else {"count": rate[0], "window_s": rate[1]}


def decode_limits(spec: Any) -> JobLimits | None:
    """A job-table entry ("max,per_key,rate_n,rate_window_ms,key_n,key_window_ms") as JobLimits; None when
    absent. A malformed entry reads as no limits, as the claim script reads it."""
    if spec is None:
        return None
    parts = [*text(spec).split(","), "0", "0", "0", "0", "0", "0"][:6]
    try:
        n = [float(x or 0) for x in parts]
    except ValueError:
        return JobLimits()
    return JobLimits(int(n[0]), int(n[1]), (int(n[2]), n[3] / 1000) if n[2] else None,
                     (int(n[4]), n[5] / 1000) if n[4] else None)


async def read_limits(app: Baton, job: str) -> dict[str, Any]:
    """The limits the code registered, the runtime override (None without one) and the effective ones."""
    p = app.keys.partitions[0]  # set_limits and register_jobs write every partition alike
    pipe = app.redis.pipeline(transaction=False)
    pipe.hget(p.jobs, job)
    pipe.hget(p.jobs_override, job)
    registered_spec, override_spec = await pipe.execute()
    registered = decode_limits(registered_spec) or JobLimits()
    override = decode_limits(override_spec)
    return {"job": job, "registered": registered.to_dict(),
            "override": None if override is None else override.to_dict(),
            "effective": (override or registered).to_dict()}


async def set_limits(app: Baton, job: str, limits: JobLimits) -> None:
    """Override the job's limits on every node at once (until cleared)."""
    await app.set_limits(job, max_concurrency=limits.max_concurrency,
                         max_concurrency_per_key=limits.max_concurrency_per_key, rate_limit=limits.rate_limit,
                         rate_limit_per_key=limits.rate_limit_per_key)
