"""Settings: one frozen object, filled from environment variables and CLI flags.

Every field is documented in the README's configuration table. Nothing else in
Baton reads ``os.environ``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .affinity import encode_labels, parse_labels
from .connection import REPLY_TIMEOUT_MS
from .errors import ConfigError
from .setting_rules import API_VIEWS, BOUNDS, ENV_PREFIX, REDIS_URL_ALIAS, Bound, check_values, setting_names

__all__ = [
    "API_VIEWS", "BOUNDS", "CLIENT_VARIABLES", "ENV_PREFIX", "REDIS_URL_ALIAS", "Bound", "Settings",
    "check_embedded_allowed", "descriptions", "env_warnings", "masked_url", "setting_names",
]

#: variables with these prefixes configure Redis: when any is set, no embedded server
REDIS_ENV_PREFIXES = (ENV_PREFIX + "REDIS_", "REDIS_")
#: BATON_* variables of the ``baton`` CLI's HTTP client (``baton runs``, ``--api-url``), not settings of a node
CLIENT_VARIABLES = ("BATON_API_URL", "BATON_API_KEY")


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of a Baton node. Units are in the field names."""

    #: Redis URL (redis://, rediss://, with user:password); empty = embedded server.
    redis_url: str = ""
    #: Treat redis_url as a Redis Cluster entry point (it may list several: redis://h1:7000,h2:7000).
    redis_cluster: bool = False
    #: Acknowledge nothing (a submission, a trigger, a step, an outcome) until this many replicas
    #: have the write (Redis WAIT); 0 = off, acknowledge when the master has it.
    durable_replicas: int = 0
    #: How long a write waits for durable_replicas before it fails as not replicated.
    durable_timeout_ms: int = 100
    #: Also wait until the write is fsynced to the AOF of the master and of durable_replicas replicas
    #: (WAITAOF; Redis 7.2+ or Valkey, with appendonly yes), so it survives their crash too.
    durable_fsync: bool = False
    #: How late a reply from Redis may be, past any wait its command asked for (a blocking read, a
    #: durable write's WAIT), before its connection counts as lost: the command goes again on a new
    #: connection, and every connection to that server opened before is replaced when next used.
    redis_timeout_ms: int = REPLY_TIMEOUT_MS
    #: Run Baton's Lua as Redis Functions (FCALL; Redis 7+ or Valkey): loaded once per server, cheaper per
    #: call than scripts. False, or a server that refuses FUNCTION: as scripts (EVALSHA).
    redis_functions: bool = True
    #: Key prefix: two deployments with different prefixes share nothing.
    prefix: str = "baton"
    #: Queue partitions; every node and producer of a deployment must agree.
    partitions: int = 1
    #: Id of this node (defaults to hostname-pid).
    node_id: str = ""
    #: Comma-separated queues this node serves; empty = every queue of its jobs.
    queues: str = ""
    #: Labels this node offers, comma-separated key=value (``gpu=a100,region=eu``): runs that require labels
    #: are leased only by nodes offering all of them (see Worker labels and affinity).
    labels: str = ""
    #: Handler slots of this node (runs held at once, each from its lease's grant to its outcome).
    concurrency: int = 100
    #: Lease time-to-live, judged by the Redis server's clock.
    lease_ttl_ms: int = 30_000
    #: How often this node renews all its leases (one call per partition).
    renew_interval_ms: int = 10_000
    #: How often expired leases are reaped and due runs promoted (a run due sooner is announced
    #: by the script that schedules it, and promoted when due).
    reap_interval_ms: int = 1_000
    #: Most runs claimed in one Lua call.
    claim_batch: int = 100
    #: Upper bound on the wait between claim attempts when nothing wakes the leaser.
    idle_poll_ms: int = 1_000
    #: Take hand-offs: while idle, new runs are leased to this node by the
    #: creating call itself and pushed to a list it blocks on (no claim round trip).
    handoff: bool = True
    #: Also read each partition's own submission stream ({prefix:pN}:submit, one intake and one
    #: blocking connection each), so producers can spread submissions over Redis Cluster masters.
    partition_streams: bool = True
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
    #: (a run with RECORD_DEFAULTS's attempts and timeout, runtime/submission.py, stores neither:
    #: defaults set elsewhere cost each run's record ~16 B more, and mean the same)
    default_max_attempts: int = 3
    default_timeout_s: float = 300.0
    #: How long completed and canceled runs are kept (failed ones: dead_letter_ttl_s).
    finished_ttl_s: int = 7 * 24 * 3600
    #: How long dead-lettered and failed (PermanentFailure) runs are kept.
    dead_letter_ttl_s: int = 30 * 24 * 3600
    #: Most runs kept per terminal status and partition (oldest dropped first).
    finished_cap: int = 1_000_000
    #: How long an idempotency key maps to its run.
    idempotency_ttl_s: int = 24 * 3600
    #: How often a node checks the exact indices against the run records (0 = never).
    reconcile_interval_ms: int = 60_000
    #: Priority aging: a queued run counts one priority level higher per this many seconds it has waited
    #: (0 = off); every node of a deployment should use the same value.
    priority_aging_s: float = 0.0
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
    #: Record OpenTelemetry spans of intake, claims, handlers, steps, child runs and outcomes (needs the
    #: tracing extra and a TracerProvider the application configures); producers propagate regardless.
    tracing: bool = False
    #: Where the embedded server keeps its AOF when no redis_url is given.
    embedded_dir: str = ".baton/redis"
    #: Port of the embedded server on 127.0.0.1 (fixed, so the quick start's commands reach it; 0 = a free port).
    embedded_port: int = 6390
    #: Supervisor restart budget: restarts allowed per actor within the window.
    max_restarts: int = 5
    restart_window_s: float = 60.0
    #: Liveness (``/livez`` on the metrics port) fails once the event loop has been blocked this long.
    loop_stall_limit_s: float = 20.0
    #: HTTP API port of this node (0 = off; ``baton api`` defaults to 8480).
    api_port: int = 0
    #: Address the HTTP API binds to.
    api_host: str = "0.0.0.0"
    #: After SIGTERM the API keeps serving this long, readiness 503, so requests in flight finish and the
    #: load balancer stops routing to it before it stops listening.
    api_drain_s: float = 1.0
    #: Longest an API request (event streams excepted) may take before it answers 503 ``unavailable``
    #: (408 ``request_timeout`` when its body has not arrived by then): on a Redis that takes
    #: connections and never answers, the client's own timeouts took ~70 s.
    api_request_timeout_s: float = 15.0
    #: API keys, stored hashed: comma-separated ``project:sha256hex`` (``baton apikey PROJECT`` makes one).
    api_keys: str = ""
    #: A plaintext key for project "default", for development only; ``auto`` = generate one and log it once.
    api_dev_key: str = ""
    #: Projects whose API keys may use the operator endpoints (queues, schedules, job limits, nodes), which
    #: act on the whole deployment; comma-separated, ``*`` = every project.
    api_operator_projects: str = "default"
    #: Largest accepted HTTP request body (bytes); larger ones get 413.
    max_body_bytes: int = 1024 * 1024
    #: Most index entries one run listing examines before it returns a partial page with a cursor.
    api_scan_limit: int = 5000
    #: The run view of requests that name none (?view= or X-Baton-View): ``strait`` serves Strait's
    #: shapes, lists and status codes to clients that cannot send either.
    api_view: str = "native"
    #: How long a dashboard sign-in lasts (its session cookie and the session in Redis).
    ui_session_ttl_s: int = 8 * 3600
    #: Attempts of one webhook delivery before it is dead-lettered.
    webhook_max_attempts: int = 8
    #: Delay before a webhook delivery's first retry; it doubles with each failure (at most an hour).
    webhook_backoff_ms: int = 1000
    #: How long a webhook endpoint may take to answer a delivery (a longer one counts as failed).
    webhook_timeout_s: float = 10.0
    #: Webhook deliveries one node has in flight at once.
    webhook_concurrency: int = 16
    #: Outbox entries a notifier took but has not acknowledged for this long (its node died) are taken over.
    notify_claim_idle_ms: int = 30_000
    #: Run the notifier actor here (completion hooks, webhook deliveries); off on nodes that must not make
    #: outgoing HTTP requests (another node does it).
    notifier: bool = True
    #: Most signals a run holds that no ctx.wait_for_signal has taken yet; more are refused (409).
    signal_buffer_max: int = 1000
    #: The longest waitpoint token timeout, and the timeout of a token created without one.
    token_max_timeout_s: int = 7 * 24 * 3600
    #: Secret that signs waitpoint token callback URLs (HMAC-SHA256 of the token id); the same on every
    #: node and API process. Empty = tokens get no callback URL (complete them with an API key).
    token_secret: str = ""
    #: Base URL of the HTTP API as callers reach it (e.g. https://baton.example.com), put before the path
    #: of callback URLs; empty = the URL is the path alone.
    api_public_url: str = ""

    def __post_init__(self) -> None:
        check_values(self)
        if not self.node_id:
            object.__setattr__(self, "node_id", f"{socket.gethostname()}-{os.getpid()}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``BATON_*`` variables, then apply explicit overrides.

        ``REDIS_URL`` is accepted as well as ``BATON_REDIS_URL``. A ``BATON_REDIS_*``
        name that is not a setting is an error (a Redis setting Baton would
        otherwise ignore); see ``check_embedded_allowed`` for the other half.
        """
        env = os.environ if environ is None else environ
        for name in _redis_variables(env):
            if name.startswith(ENV_PREFIX) and name not in _ENV_FIELDS:
                raise ConfigError(_unsupported_redis_variable(name))
        values: dict[str, Any] = {}
        if env.get(REDIS_URL_ALIAS):
            values["redis_url"] = env[REDIS_URL_ALIAS]
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
        if self.token_secret:
            shown["token_secret"] = "***"
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @property
    def runs_kept_s(self) -> int:
        """How long the record of a finished run is kept at most (completed or dead-lettered): what
        outlives nothing but runs (an entry's alias, a batch) is kept as long."""
        return max(self.finished_ttl_s, self.dead_letter_ttl_s)

    def may_operate(self, project: str) -> bool:
        """Whether keys of ``project`` may use the operator endpoints (``api_operator_projects``)."""
        allowed = self.api_operator_projects.split(",")
        return "*" in allowed or project in allowed

    @property
    def label_map(self) -> dict[str, str]:
        """The labels this node offers, by key."""
        return parse_labels(self.labels)

    @functools.cached_property
    def label_text(self) -> str:
        """The labels in the form the claim script compares (keys sorted)."""
        return encode_labels(self.label_map)

    @property
    def queue_list(self) -> list[str]:
        """Queues named by ``queues``, in order."""
        return [q for q in self.queues.split(",") if q]


#: BATON_* variable name -> field
_ENV_FIELDS = {ENV_PREFIX + f.name.upper(): f.name for f in fields(Settings)}
_REDIS_SUPPORTED = (
    f"BATON_REDIS_URL (or {REDIS_URL_ALIAS}: redis://, rediss:// for TLS, unix://) and BATON_REDIS_CLUSTER"
)


def env_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``BATON_*`` variable that is neither a setting nor a CLI client variable.

    Names only: a value may be a secret. ``Settings.from_env`` already refused
    unknown ``BATON_REDIS_*`` names; the rest are ignored, so a typo is reported.
    """
    env = os.environ if environ is None else environ
    known = [*_ENV_FIELDS, *CLIENT_VARIABLES]
    out = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in _ENV_FIELDS or name in CLIENT_VARIABLES:
            continue
        if name.startswith(REDIS_ENV_PREFIXES[0]):
            continue  # not ignored: from_env refuses it, saying why (a warning saying "ignoring" contradicted that)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"ignoring {name}: not a Baton setting{hint}")
    return out


def check_embedded_allowed(environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError when any Redis variable is set: called before a node with no
    redis_url starts the embedded server, which is only for a node given no Redis
    configuration at all (a misspelt or unsupported one must not end up there).

    Checked there rather than in ``from_env``: the URL may come from a flag, which
    an app module's own ``Baton()``, built from the environment at import, never sees.
    """
    names = _redis_variables(os.environ if environ is None else environ)
    if names:
        raise ConfigError(
            f"{', '.join(names)} set but no Redis URL: Baton reads only {_REDIS_SUPPORTED}, and does not "
            "start its embedded server while Redis variables are set. Set BATON_REDIS_URL, or unset them "
            "to use the embedded server"
        )


def _redis_variables(env: Mapping[str, str]) -> list[str]:
    """Names of the Redis-related variables set (empty ones too: an empty URL is still a Redis setting)."""
    return sorted(n for n in env if n.startswith(REDIS_ENV_PREFIXES))


def _unsupported_redis_variable(name: str) -> str:
    """Why a ``BATON_REDIS_*`` name that is not a setting is refused, with what to use instead."""
    close = difflib.get_close_matches(name, list(_ENV_FIELDS), n=1, cutoff=0.8)
    if close:
        hint = f"did you mean {close[0]}?"
    elif "SENTINEL" in name:
        hint = "a Sentinel-managed master is a BATON_REDIS_URL of the form redis+sentinel://host:26379/service_name"
    else:
        hint = "credentials, host, port and database go in BATON_REDIS_URL (redis://user:password@host:port/db)"
    return f"{name} is not a Baton setting ({hint}); Baton reads {_REDIS_SUPPORTED}"


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
        raise ConfigError(f"{setting_names(name)}: {raw!r} is not a valid {type_name}") from exc


def descriptions() -> dict[str, str]:
    """Each field's description: the ``#:`` comment above it in the class body (the one
    source for ``--help``; a field without one of its own shares the comment above it)."""
    out: dict[str, str] = {}
    comment: list[str] = []
    for line in inspect.getsource(Settings).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            if out and not comment and not stripped[2:].strip():
                continue
            comment.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+): [\w| ]+ = ", stripped)
        if match and match.group(1) in Settings.__dataclass_fields__:
            out[match.group(1)] = " ".join(comment) if comment else out.get(_previous(out), "")
            comment = []
        elif not stripped:
            comment = []
    return out


def _previous(seen: dict[str, str]) -> str:
    return next(reversed(seen)) if seen else ""
