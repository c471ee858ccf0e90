"""Settings: one frozen object, filled from environment variables and CLI flags.

Every field is documented in the README's configuration table. Nothing else in
Baton reads ``os.environ``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import ConfigError

__all__ = ["Settings", "masked_url"]

ENV_PREFIX = "BATON_"


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of a Baton node. Units are in the field names."""

    #: Redis URL (redis://, rediss://, with user:password); empty = embedded server.
    redis_url: str = ""
    #: Treat redis_url as a Redis Cluster entry point.
    redis_cluster: bool = False
    #: Key prefix: two deployments with different prefixes share nothing.
    prefix: str = "baton"
    #: Queue partitions; every node and producer of a deployment must agree.
    partitions: int = 1
    #: Id of this node (defaults to hostname-pid).
    node_id: str = ""
    #: Comma-separated queues this node serves; empty = every queue of its jobs.
    queues: str = ""
    #: Handler slots of this node (runs executing at once).
    concurrency: int = 100
    #: Lease time-to-live, judged by the Redis server's clock.
    lease_ttl_ms: int = 30_000
    #: How often this node renews all its leases (one call per partition).
    renew_interval_ms: int = 10_000
    #: How often expired leases are reaped and due delayed runs promoted.
    reap_interval_ms: int = 1_000
    #: Most runs claimed in one Lua call.
    claim_batch: int = 100
    #: Upper bound on the wait between claim attempts when nothing wakes the leaser.
    idle_poll_ms: int = 1_000
    #: Take hand-offs: while idle, new runs are leased to this node by the
    #: creating call itself and pushed to a list it blocks on (no claim round trip).
    handoff: bool = True
    #: Stream entries read per intake call.
    intake_batch: int = 500
    #: Pending entries older than this are claimed from dead intake consumers.
    intake_claim_idle_ms: int = 30_000
    #: Largest accepted run input (bytes of JSON).
    max_input_bytes: int = 512 * 1024
    #: Largest value a handler writes as a result: its return value, a step's output, a ctx.output value.
    max_output_bytes: int = 1024 * 1024
    #: Largest checkpoint state a handler stores.
    max_checkpoint_bytes: int = 1024 * 1024
    #: Largest run metadata (the whole merged object a handler sets).
    max_metadata_bytes: int = 64 * 1024
    #: Largest single log entry, progress report, usage or tool-call record, or streamed chunk.
    max_record_bytes: int = 256 * 1024
    #: Defaults for jobs that do not set them.
    default_max_attempts: int = 3
    default_timeout_s: float = 300.0
    #: How long finished (completed/canceled/failed) runs are kept.
    finished_ttl_s: int = 7 * 24 * 3600
    #: How long dead-lettered runs are kept.
    dead_letter_ttl_s: int = 30 * 24 * 3600
    #: Most runs kept per terminal status and partition (oldest dropped first).
    finished_cap: int = 1_000_000
    #: How long an idempotency key maps to its run.
    idempotency_ttl_s: int = 24 * 3600
    #: How often a node checks the exact indices against the run records (0 = never).
    reconcile_interval_ms: int = 60_000
    #: How long a sent event is kept for waits that start after it.
    event_ttl_s: int = 3600
    #: Cap of the rejected-entries stream.
    rejected_max_len: int = 10_000
    #: SIGTERM grace: running handlers get this long to finish.
    shutdown_grace_s: float = 25.0
    #: Prometheus /metrics port of this node (0 = off).
    metrics_port: int = 9464
    #: Address the metrics server binds to.
    metrics_host: str = "0.0.0.0"
    #: How often the cluster-wide gauges (queue depth, oldest run, intake lag) are read from Redis (0 = off).
    observe_interval_ms: int = 5_000
    #: Log format: json or text; empty = text on a terminal, json otherwise.
    log_format: str = ""
    #: Log level.
    log_level: str = "INFO"
    #: Where the embedded server keeps its AOF when no redis_url is given.
    embedded_dir: str = ".baton/redis"
    #: Supervisor restart budget: restarts allowed per actor within the window.
    max_restarts: int = 5
    restart_window_s: float = 60.0
    #: HTTP API port of this node (0 = off; ``baton api`` defaults to 8480).
    api_port: int = 0
    #: Address the HTTP API binds to.
    api_host: str = "0.0.0.0"
    #: API keys, stored hashed: comma-separated ``project:sha256hex`` (``baton apikey PROJECT`` makes one).
    api_keys: str = ""
    #: A plaintext key for project "default", for development only; ``auto`` = generate one and log it once.
    api_dev_key: str = ""
    #: Largest accepted HTTP request body (bytes); larger ones get 413.
    max_body_bytes: int = 1024 * 1024
    #: Most index entries one run listing examines before it returns a partial page with a cursor.
    api_scan_limit: int = 5000

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError("partitions must be at least 1")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.lease_ttl_ms < 100:
            raise ConfigError("lease_ttl_ms must be at least 100")
        if self.renew_interval_ms * 2 > self.lease_ttl_ms:
            raise ConfigError(
                "renew_interval_ms must be at most half of lease_ttl_ms "
                f"(got {self.renew_interval_ms} and {self.lease_ttl_ms})"
            )
        if self.observe_interval_ms < 0:
            raise ConfigError("observe_interval_ms must be 0 (off) or positive")
        if not 0 <= self.api_port <= 65535:
            raise ConfigError("api_port must be within [0, 65535]")
        if self.max_body_bytes < 1024 or self.api_scan_limit < 100:
            raise ConfigError("max_body_bytes must be at least 1024 and api_scan_limit at least 100")
        if self.log_format not in ("", "json", "text"):
            raise ConfigError("log_format must be json or text")
        if not self.node_id:
            object.__setattr__(self, "node_id", f"{socket.gethostname()}-{os.getpid()}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``BATON_*`` variables, then apply explicit overrides.

        ``REDIS_URL`` is accepted as well as ``BATON_REDIS_URL``.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("REDIS_URL"):
            values["redis_url"] = env["REDIS_URL"]
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _cast(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc

    def __repr__(self) -> str:
        """Every field, with the Redis password and the development API key masked: settings end up
        in log lines and error messages."""
        shown: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["redis_url"] = masked_url(self.redis_url)
        if self.api_dev_key:
            shown["api_dev_key"] = "***"
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @property
    def queue_list(self) -> list[str]:
        """Queues named by ``queues``, in order."""
        return [q for q in self.queues.split(",") if q]


def masked_url(url: str) -> str:
    """A URL with its password (user:password@ or ?password=) replaced by ``***``; ``***`` for what does not
    parse as a URL."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(name == "password" for name, _ in query):  # redis-py also takes ?password=
            parts = parts._replace(query=urlencode([(n, "***" if n == "password" else v) for n, v in query], safe="*"))
        return urlunsplit(parts)
    except ValueError:
        return "***"


def _cast(name: str, type_name: Any, raw: str) -> Any:
    type_name = str(type_name)
    try:
        if type_name == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        return raw
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {type_name}") from exc


