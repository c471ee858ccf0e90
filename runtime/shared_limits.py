"""Named limits that several jobs share: concurrency pools and rate limits, defined by name.

A job names them with ``@app.job(pool="gpu", shared_rate="openai")``; the values
live under the name, defined by the code (``app.define_pool("gpu", 2)``,
``app.define_rate_limit("openai", 60, 60)``, written to every partition's
``limits`` hash when a worker starts) and changeable at runtime on every node at
once (``limits:override``, which wins; HTTP ``PUT /v1/limits/{name}``, ``baton
limits shared-set``). One name may carry both a pool size and a rate.

The claim script decides them exactly (includes/flow.lua): a pool counts the
leased run ids of all its jobs in one set, so a crash cannot leak a slot (the
reaper releases a dead node's runs); a shared rate is the GCRA of per-job
rates, over one key. Both hold in one partition only, so every run of a job
that shares a limit routes to the partition of the limit's name (see
``submission.shared_limit_routing``); a job naming a pool and a different
shared rate must name two that route to the same partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .codec import text
from .errors import ConfigError, SubmissionError
from .ids import NAME_RE
from .job_limits import MAX_LIMIT, MAX_WINDOW_S, limit_count, limit_rate, rate_dict
from .jobs import Job, JobOptions
from .keys import Keys, Partition
from .submission import shared_limit_routing

if TYPE_CHECKING:
    from .app import Baton

__all__ = ["SharedLimit", "SharedLimits", "check_routing", "clear_shared_limit", "decode_shared",
           "list_shared_limits", "publish_definitions", "read_shared_limit", "set_shared_limit"]


@dataclass(frozen=True)
class SharedLimit:
    """The values of one named limit: 0 / None = none."""

    pool_size: int = 0
    rate_limit: tuple[int, float] | None = None

    @property
    def spec(self) -> str:
        """The hash entry the claim script reads: "pool_size,rate_n,rate_window_ms"."""
        n, window_ms = (self.rate_limit[0], round(self.rate_limit[1] * 1000)) if self.rate_limit else (0, 0)
        return f"{self.pool_size},{n},{window_ms}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and the CLI."""
        return {"pool_size": self.pool_size, "rate_limit": rate_dict(self.rate_limit)}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> SharedLimit:
        """Read the JSON shape; a missing field is no limit. Raises SubmissionError (reason ``bad_limits``)."""
        unknown = sorted(set(body) - {"pool_size", "rate_limit"})
        if unknown:
            raise SubmissionError("bad_limits", f"unknown field(s) {', '.join(unknown)}: use pool_size, rate_limit")
        return cls(limit_count(body, "pool_size"), limit_rate(body, "rate_limit"))


def decode_shared(spec: Any) -> SharedLimit | None:
    """A ``limits`` hash entry as a SharedLimit; None when absent (malformed reads as no limit, as in Lua)."""
    if spec is None:
        return None
    parts = [*text(spec).split(","), "0", "0", "0"][:3]
    try:
        size, n, window_ms = (int(float(x or 0)) for x in parts)
    except ValueError:
        return SharedLimit()
    return SharedLimit(size, (n, window_ms / 1000) if n else None)


def _name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"invalid limit name {name!r}: use letters, digits, _ . : -")
    return name


class SharedLimits:
    """The named limits an application's code defines (``app.define_pool``, ``app.define_rate_limit``)."""

    def __init__(self) -> None:
        self._defined: dict[str, SharedLimit] = {}

    def define_pool(self, name: str, size: int) -> None:
        """At most ``size`` runs of all jobs with ``pool=name`` execute at once, across all nodes."""
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_LIMIT:
            raise ConfigError(f"pool size must be an integer between 1 and {MAX_LIMIT}")
        current = self._defined.get(_name(name), SharedLimit())
        self._defined[name] = SharedLimit(size, current.rate_limit)

    def define_rate_limit(self, name: str, count: int, window_s: float) -> None:
        """At most ``count`` runs of all jobs with ``shared_rate=name`` start per ``window_s`` (GCRA)."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_LIMIT:
            raise ConfigError(f"rate count must be an integer between 1 and {MAX_LIMIT}")
        if not 0.001 <= float(window_s) <= MAX_WINDOW_S:
            raise ConfigError(f"rate window must be between 0.001 and {MAX_WINDOW_S:g} seconds")
        current = self._defined.get(_name(name), SharedLimit())
        self._defined[name] = SharedLimit(current.pool_size, (count, float(window_s)))

    def items(self) -> list[tuple[str, SharedLimit]]:
        """The defined limits, by name."""
        return sorted(self._defined.items())


def check_routing(keys: Keys, jobs: list[Job]) -> None:
    """Refuse a job whose pool and shared rate live in two partitions (neither could stay exact)."""
    for job in jobs:
        names = job.options.shared_limit_names
        if len({keys.partition_for(shared_limit_routing(n)).index for n in names}) > 1:
            raise ConfigError(
                f"job {job.name!r}: pool {job.options.pool!r} and shared_rate {job.options.shared_rate!r} route to "
                f"two of the {keys.partition_count} partitions; use one name for both, or names in one partition")


async def publish_definitions(app: Baton, p: Partition) -> None:
    """Write the code's named limits to partition ``p`` (a worker starting)."""
    defined = app.shared_limits.items()
    if defined:
        await app.redis.hset(p.shared_limits, mapping={name: limit.spec for name, limit in defined})


async def _write_override(app: Baton, name: str, spec: str | None) -> None:
    pipe = app.redis.pipeline(transaction=False)
    for p in app.keys.partitions:
        if spec is None:
            pipe.hdel(p.shared_limits_override, name)
        else:
            pipe.hset(p.shared_limits_override, name, spec)
    await pipe.execute()
    # nodes holding runs back for a pool or a rate claim again at once
    await app.redis.publish(app.keys.wake_channel, "limits")


async def set_shared_limit(app: Baton, name: str, limit: SharedLimit) -> None:
    """Override a named limit on every node at once (until cleared). A smaller pool lets no new run in until
    its occupancy falls below the new size; running ones are not stopped."""
    await _write_override(app, _name(name), limit.spec)


async def clear_shared_limit(app: Baton, name: str) -> None:
    """Drop a named limit's runtime override: the code's values apply again."""
    await _write_override(app, _name(name), None)


async def _users(app: Baton) -> dict[str, list[str]]:
    """Named limit -> the jobs registered (by workers, or defined here) that use it."""
    registry = await app.redis.hgetall(app.keys.registry)
    options = {text(job): JobOptions.from_json(blob) for job, blob in registry.items()}
    options.update({j.name: j.options for j in app.jobs})
    users: dict[str, list[str]] = {}
    for job, o in sorted(options.items()):
        for name in o.shared_limit_names:
            users.setdefault(name, []).append(job)
    return users


async def _states(app: Baton, names: list[str], users: dict[str, list[str]]) -> list[dict[str, Any]]:
    p = app.keys.partitions[0]  # definitions and overrides are written to every partition alike
    pipe = app.redis.pipeline(transaction=False)
    for name in names:
        pipe.hget(p.shared_limits, name)
        pipe.hget(p.shared_limits_override, name)
        # the pool's runs live in the partition its name routes to
        pipe.scard(app.keys.partition_for(shared_limit_routing(name)).pool_leases(name))
    raw = await pipe.execute()
    out = []
    for i, name in enumerate(names):
        registered = decode_shared(raw[3 * i]) or SharedLimit()
        override = decode_shared(raw[3 * i + 1])
        out.append({"name": name, "registered": registered.to_dict(),
                    "override": None if override is None else override.to_dict(),
                    "effective": (override or registered).to_dict(), "jobs": users.get(name, []),
                    "pool_leased": int(raw[3 * i + 2])})
    return out


async def list_shared_limits(app: Baton) -> list[dict[str, Any]]:
    """Every named limit defined, overridden or used by a registered job, with its state."""
    users = await _users(app)
    p = app.keys.partitions[0]
    names = sorted({text(n) for n in await app.redis.hkeys(p.shared_limits)}
                   | {text(n) for n in await app.redis.hkeys(p.shared_limits_override)} | set(users))
    return await _states(app, names, users)


async def read_shared_limit(app: Baton, name: str, known_only: bool = True) -> dict[str, Any] | None:
    """One named limit: the code's values, the runtime override (None without one), those in force, the jobs
    that use it and the runs its pool holds now. With ``known_only``, None when nothing defines or uses it."""
    [state] = await _states(app, [_name(name)], await _users(app))
    unknown = state["override"] is None and not state["jobs"] and state["registered"] == SharedLimit().to_dict()
    return None if known_only and unknown else state
