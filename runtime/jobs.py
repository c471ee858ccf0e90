"""Jobs: named handlers with their options, and the registry that holds them."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import orjson

from .affinity import DEFAULT_PREFER_WAIT_S, check_job_affinity
from .batching import check_batch_options
from .errors import ConfigError, SubmissionError
from .ids import NAME_RE
from .ranges import check

__all__ = ["Backoff", "Job", "JobOptions", "JobRegistry", "limit_spec"]

BackoffKind = Literal["fixed", "linear", "exponential"]


@dataclass(frozen=True)
class Backoff:
    """Delay between attempts: fixed, linear (initial * n) or exponential (initial * 2^(n-1)).

    The delay is capped at ``max_s``; ``jitter`` in [0, 1] spreads each delay
    uniformly over ``[d * (1 - jitter), d]`` so retries of many runs do not align.
    """

    kind: BackoffKind = "exponential"
    initial_s: float = 1.0
    max_s: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "linear", "exponential"):
            raise ConfigError(f"backoff kind must be fixed, linear or exponential, not {self.kind!r}")
        if self.initial_s < 0 or self.max_s < 0:
            raise ConfigError("backoff delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("backoff jitter must be within [0, 1]")

    @functools.cached_property
    def encoded(self) -> str:
        """``to_json()``, computed once (every run of a job stores the same text)."""
        return self.to_json()

    def to_json(self) -> str:
        """The form stored on each run and read by the Lua retry logic.

        Compact ("kind,initial_ms,max_ms,jitter") rather than JSON: every value
        of a run record stays under Redis's 64-byte listpack limit, which keeps
        the record several times smaller.
        """
        return f"{self.kind},{int(self.initial_s * 1000)},{int(self.max_s * 1000)},{self.jitter:g}"

    def delay_s(self, attempt: int, random_value: float = 0.0) -> float:
        """Delay after the given charged attempt (1-based); mirrors the Lua formula."""
        initial_ms = int(self.initial_s * 1000)
        if self.kind == "linear":
            d = float(initial_ms * attempt)
        elif self.kind == "exponential":
            d = float(initial_ms * 2 ** (attempt - 1))
        else:
            d = float(initial_ms)
        d = min(d, int(self.max_s * 1000))
        return int(d - d * self.jitter * random_value) / 1000


@dataclass(frozen=True)
class JobOptions:
    """Options of one job. ``None`` means "use the node's default"."""

    queue: str = "default"
    max_attempts: int | None = None
    timeout_s: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    priority: int = 0
    #: Most runs of this job executing at once across all nodes (0 = no limit).
    max_concurrency: int = 0
    #: Most runs per concurrency key executing at once across all nodes (0 = no limit).
    max_concurrency_per_key: int = 0
    version: str = ""
    #: Most runs of this job started per window, across all nodes: (count, window seconds).
    rate_limit: tuple[int, float] | None = None
    #: Most runs started per window for each rate key: (count, window seconds).
    rate_limit_per_key: tuple[int, float] | None = None
    #: Where a run's rate key comes from: "concurrency_key", "label:<name>" or "input:<field>".
    rate_key: str = "concurrency_key"
    #: Versions of this job a worker runs besides its own ("*" = any). Unversioned runs always run.
    accepts_versions: tuple[str, ...] = ()
    #: Default time-to-live of a run that has not started (seconds); None = forever.
    ttl_s: float | None = None
    #: Labels a node must offer to lease runs of this job (runtime/affinity.py).
    node_labels: dict[str, str] = field(default_factory=dict)
    #: Labels a node should offer: preferred for prefer_wait_s after a run is ready, then any node may lease it.
    prefer_labels: dict[str, str] = field(default_factory=dict)
    prefer_wait_s: float = DEFAULT_PREFER_WAIT_S
    #: Batch handler: up to batch_size runs per call, filled for at most batch_wait_s, grouped by
    #: batch_key ("" or "input:<field>"); runtime/batching.py.
    batch_size: int = 1
    batch_wait_s: float = 0.0
    batch_key: str = ""
    #: Completion hooks: jobs started, as runs of their own, when a run of this job completes, fails for good
    #: (failed or dead_letter) or is dead-lettered ("" = none; see runtime/hooks.py).
    on_success: str = ""
    on_failure: str = ""
    on_dead_letter: str = ""
    #: A named concurrency pool shared with other jobs ("" = none); its size is defined by name.
    pool: str = ""
    #: A named rate limit shared with other jobs ("" = none); its rate is defined by name.
    shared_rate: str = ""
    #: Turns per fairness round of the concurrency key of this job's runs (1 = an equal share).
    fairness_weight: int = 1
    #: Most runs of this job admitted and not yet started (0 = no limit); a trigger past it is
    #: rejected with QueueFull (runtime/admission.py).
    max_queued: int = 0

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.queue):
            raise ConfigError(f"invalid queue name {self.queue!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError("timeout must be positive")
        if not -1000 <= self.priority <= 1000:
            raise ConfigError("priority must be within [-1000, 1000]")
        if self.max_concurrency < 0 or self.max_concurrency_per_key < 0:
            raise ConfigError("concurrency limits must not be negative")
        for name, rate in (("rate_limit", self.rate_limit), ("rate_limit_per_key", self.rate_limit_per_key)):
            if rate is not None and (len(rate) != 2 or int(rate[0]) < 1 or float(rate[1]) <= 0):
                raise ConfigError(f"{name} must be (count >= 1, window seconds > 0)")
        if not (self.rate_key == "concurrency_key" or self.rate_key.startswith(("label:", "input:"))):
            raise ConfigError("rate_key must be concurrency_key, label:<name> or input:<field>")
        if self.ttl_s is not None and self.ttl_s <= 0:
            raise ConfigError("ttl must be positive")
        check_job_affinity(self.node_labels, self.prefer_labels, self.prefer_wait_s)
        check_batch_options(self.batch_size, self.batch_wait_s, self.batch_key)
        for kind in ("on_success", "on_failure", "on_dead_letter"):
            target = getattr(self, kind)
            if target and not NAME_RE.match(target):
                raise ConfigError(f"{kind} must name a job, not {target!r}")
        for name, value in (("pool", self.pool), ("shared_rate", self.shared_rate)):
            if value and not NAME_RE.match(value):
                raise ConfigError(f"invalid {name} name {value!r}: use letters, digits, _ . : -")
        try:
            check("fairness_weight", self.fairness_weight)
        except SubmissionError as exc:
            raise ConfigError(str(exc)) from None
        if self.max_queued < 0:
            raise ConfigError("max_queued must not be negative")

    @property
    def hooked(self) -> bool:
        """Whether runs of this job start completion hooks (their outcomes go through the outbox)."""
        return bool(self.on_success or self.on_failure or self.on_dead_letter)

    @property
    def limit_spec(self) -> str | None:
        """The job-table entry the claim script reads, or None without limits:
        "max,max_per_key,rate_n,rate_window_ms,key_rate_n,key_rate_window_ms"."""
        spec = limit_spec(self.max_concurrency, self.max_concurrency_per_key, self.rate_limit,
                          self.rate_limit_per_key)
        if not (self.pool or self.shared_rate):
            return spec
        # the named limits the job shares follow its own six numbers (read by includes/flow.lua)
        return f"{spec or '0,0,0,0,0,0'},{self.pool},{self.shared_rate}"

    @property
    def shared_limit_names(self) -> tuple[str, ...]:
        """The named limits this job shares with others (its pool, its shared rate)."""
        return tuple(dict.fromkeys(n for n in (self.pool, self.shared_rate) if n))

    @property
    def served_spec(self) -> str:
        """How the claim script knows which versions of the job this node runs."""
        if not self.version or "*" in self.accepts_versions:
            return ""
        return "@" + "|".join(dict.fromkeys((self.version, *self.accepts_versions)))

    def to_json(self) -> bytes:
        """Registry form, readable by other nodes and the API."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, blob: bytes | str) -> JobOptions:
        """Read the registry form (fields this version does not know are ignored)."""
        d = orjson.loads(blob)
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["backoff"] = Backoff(**d.get("backoff") or {})
        for name in ("rate_limit", "rate_limit_per_key"):
            if d.get(name) is not None:
                d[name] = (int(d[name][0]), float(d[name][1]))
        d["accepts_versions"] = tuple(d.get("accepts_versions") or ())
        return cls(**d)


def limit_spec(
    max_concurrency: int = 0, max_concurrency_per_key: int = 0, rate_limit: tuple[int, float] | None = None,
    rate_limit_per_key: tuple[int, float] | None = None,
) -> str | None:
    """Encode limits for the partition job table (None when there are none)."""
    if not (max_concurrency or max_concurrency_per_key or rate_limit or rate_limit_per_key):
        return None
    rn, rw = (int(rate_limit[0]), int(rate_limit[1] * 1000)) if rate_limit else (0, 0)
    kn, kw = (int(rate_limit_per_key[0]), int(rate_limit_per_key[1] * 1000)) if rate_limit_per_key else (0, 0)
    return f"{max_concurrency},{max_concurrency_per_key},{rn},{rw},{kn},{kw}"


@dataclass(frozen=True)
class Job:
    """A named handler and its options."""

    name: str
    handler: Callable[..., Any]
    options: JobOptions

    @functools.cached_property
    def is_async(self) -> bool:
        """True for ``async def`` handlers; plain ones run in a thread (asked once: inspect is
        not free, and the executor asks for every run)."""
        return inspect.iscoroutinefunction(self.handler)


class JobRegistry:
    """The jobs one application defines, by name."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def add(self, name: str, handler: Callable[..., Any], options: JobOptions) -> Job:
        """Register a job; a second job with the same name is an error."""
        if not NAME_RE.match(name):
            raise ConfigError(f"invalid job name {name!r}: use letters, digits, _ . : -")
        if name in self._jobs:
            raise ConfigError(f"job {name!r} is already registered")
        job = Job(name, handler, options)
        self._jobs[name] = job
        return job

    def get(self, name: str) -> Job | None:
        """The job with this name, if this application defines it."""
        return self._jobs.get(name)

    def __iter__(self) -> Any:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def names(self) -> list[str]:
        """Job names, sorted."""
        return sorted(self._jobs)
