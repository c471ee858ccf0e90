"""Jobs: named handlers with their options, and the registry that holds them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

from .errors import ConfigError
from .ids import NAME_RE

__all__ = ["Backoff", "Job", "JobOptions", "JobRegistry"]

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

    def to_json(self) -> str:
        """The form stored on each run and read by the Lua retry logic."""
        return orjson.dumps(
            {
                "kind": self.kind,
                "initial_ms": int(self.initial_s * 1000),
                "max_ms": int(self.max_s * 1000),
                "jitter": self.jitter,
            }
        ).decode()

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

    @property
    def limit_spec(self) -> str | None:
        """The "max,per_key" string the claim script reads, or None without limits."""
        if not self.max_concurrency and not self.max_concurrency_per_key:
            return None
        return f"{self.max_concurrency or ''},{self.max_concurrency_per_key or ''}"

    def to_json(self) -> bytes:
        """Registry form, readable by other nodes and the API."""
        return orjson.dumps(asdict(self))


@dataclass(frozen=True)
class Job:
    """A named handler and its options."""

    name: str
    handler: Callable[..., Any]
    options: JobOptions

    @property
    def is_async(self) -> bool:
        """True for ``async def`` handlers; plain ones run in a thread."""
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
