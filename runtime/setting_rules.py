"""What each setting accepts: the numeric ranges, the text shapes and the types, checked wherever a
Settings is built (environment, flags, code), and how a person names a setting in an error."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from .affinity import parse_labels
from .connection import redis_url_problem
from .errors import ConfigError
from .ids import NAME_RE

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["API_VIEWS", "BOUNDS", "ENV_PREFIX", "MIN_DEV_KEY_LEN", "REDIS_URL_ALIAS", "Bound", "check_values",
           "setting_names"]

#: the prefix of every variable that sets a Baton setting
ENV_PREFIX = "BATON_"
#: the conventional name accepted for BATON_REDIS_URL
REDIS_URL_ALIAS = "REDIS_URL"
#: the shortest development key (api_dev_key) accepted: a short key is a guessable one
MIN_DEV_KEY_LEN = 16

#: the year, in seconds: the longest retention or timeout accepted
_YEAR_S = 365 * 24 * 3600
_DAY_MS = 24 * 3600 * 1000
#: Redis's largest string (bytes)
_REDIS_MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Bound:
    """The accepted range of a numeric setting; with ``off``, 0 is accepted too and means off."""

    lo: float
    hi: float
    off: bool = False

    def admits(self, value: float) -> bool:
        """Whether ``value`` is in range (NaN and infinities never are)."""
        return math.isfinite(value) and (self.lo <= value <= self.hi or (self.off and value == 0))

    def __str__(self) -> str:
        span = f"between {_number(self.lo)} and {_number(self.hi)}"
        return f"0 (off) or {span}" if self.off else span


def _number(x: float) -> str:
    """A bound as people write it: 100000, not 1e+05."""
    return str(int(x)) if x == int(x) else str(x)


#: The range of every numeric setting, checked wherever a Settings is built (env, flags, code).
BOUNDS: dict[str, Bound] = {
    "partitions": Bound(1, 1024),
    "durable_replicas": Bound(1, 100, off=True),
    "durable_timeout_ms": Bound(1, 60_000),
    "redis_timeout_ms": Bound(100, 600_000),
    "concurrency": Bound(1, 100_000),
    "lease_ttl_ms": Bound(100, _DAY_MS),
    "renew_interval_ms": Bound(1, _DAY_MS // 2),
    "reap_interval_ms": Bound(1, 3600_000),
    "claim_batch": Bound(1, 10_000),
    "idle_poll_ms": Bound(1, 3600_000),
    "intake_batch": Bound(1, 100_000),
    "intake_claim_idle_ms": Bound(1, _DAY_MS),
    "max_input_bytes": Bound(1, _REDIS_MAX_BYTES),
    "max_output_bytes": Bound(1, _REDIS_MAX_BYTES),
    "max_checkpoint_bytes": Bound(1, _REDIS_MAX_BYTES),
    "max_metadata_bytes": Bound(1, _REDIS_MAX_BYTES),
    "max_record_bytes": Bound(1, _REDIS_MAX_BYTES),
    "default_max_attempts": Bound(1, 10_000),
    "default_timeout_s": Bound(0.001, _YEAR_S),
    "finished_ttl_s": Bound(1, 10 * _YEAR_S),
    "dead_letter_ttl_s": Bound(1, 10 * _YEAR_S),
    "finished_cap": Bound(1, 1_000_000_000),
    "idempotency_ttl_s": Bound(1, 10 * _YEAR_S),
    "reconcile_interval_ms": Bound(100, _DAY_MS, off=True),
    "priority_aging_s": Bound(0.001, _DAY_MS / 1000, off=True),
    "event_ttl_s": Bound(1, 10 * _YEAR_S),
    "rejected_max_len": Bound(1, 1_000_000_000),
    "shutdown_grace_s": Bound(0, 3600),
    "metrics_port": Bound(1, 65535, off=True),
    "observe_interval_ms": Bound(10, 3600_000, off=True),
    "max_restarts": Bound(0, 1000),
    "loop_stall_limit_s": Bound(0.5, 3600),
    "restart_window_s": Bound(0.001, _YEAR_S),
    "api_port": Bound(1, 65535, off=True),
    "embedded_port": Bound(1, 65535, off=True),
    "api_drain_s": Bound(0, 3600),
    "api_request_timeout_s": Bound(0.1, 3600),
    "max_body_bytes": Bound(1024, _REDIS_MAX_BYTES),
    "api_scan_limit": Bound(100, 10_000_000),
    "ui_session_ttl_s": Bound(60, 30 * 86_400),
    "webhook_max_attempts": Bound(1, 100),
    "webhook_backoff_ms": Bound(1, 3600_000),
    "webhook_timeout_s": Bound(0.1, 300),
    "webhook_concurrency": Bound(1, 1000),
    "notify_claim_idle_ms": Bound(100, _DAY_MS),
    "signal_buffer_max": Bound(1, 100_000),
    "token_max_timeout_s": Bound(1, 10 * _YEAR_S),
}

#: The shapes the API renders runs in: Baton's own, then each seed system's (runtime/api/views.py).
API_VIEWS = ("native", "durably", "trigger", "hatchet", "strait")
#: Text settings with a fixed shape. The prefix is a Redis hash tag and an ACL key
#: pattern: no braces, glob characters or ':' (``{p:p0}`` would be partition 0 of ``p``).
_TEXT_RULES = (
    ("prefix", re.compile(r"[A-Za-z0-9_.-]{1,64}"), "1-64 letters, digits, '_', '.' or '-'"),
    ("node_id", re.compile(r"[^\s{}]{0,200}"), "at most 200 characters, no spaces or braces"),
    ("log_format", re.compile(r"|json|text"), "json or text"),
    ("metrics_host", re.compile(r"\S+"), "an address"),
    ("api_host", re.compile(r"\S+"), "an address"),
    ("embedded_dir", re.compile(r".+"), "a directory"),
    ("api_operator_projects", re.compile(r"\*|[a-z0-9][a-z0-9_-]{0,63}(,[a-z0-9][a-z0-9_-]{0,63})*|"),
     "comma-separated project names, or *"),
    ("api_view", re.compile("|".join(API_VIEWS)), " or ".join(API_VIEWS)),
    ("api_public_url", re.compile(r"(https?://[^\s?#]+)?"), "an http(s) URL without query or fragment"),
)
#: Python types a field of each annotated type accepts (an int is a valid float)
_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool, "str": str}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def setting_names(name: str) -> str:
    """How a person sets a field: its variable(s) and flag, for error messages."""
    alias = f" / {REDIS_URL_ALIAS}" if name == "redis_url" else ""
    return f"{ENV_PREFIX}{name.upper()}{alias} (--{name.replace('_', '-')})"


def check_values(settings: Settings) -> None:
    """Raise ConfigError, naming the variable and flag, for the first value out of its range or type."""
    for f in fields(settings):
        value: Any = getattr(settings, f.name)
        kind = str(f.type)
        wanted = _TYPES[kind]
        if not isinstance(value, wanted) or (kind != "bool" and isinstance(value, bool)):
            # the type only: a value of the wrong type may still be a URL with a password
            raise ConfigError(f"{setting_names(f.name)} must be of type {kind}, got {type(value).__name__}")
        bound = BOUNDS.get(f.name)
        if bound is not None and isinstance(value, int | float) and not bound.admits(value):
            raise ConfigError(f"{setting_names(f.name)} must be {bound}, got {value!r}")
    if settings.renew_interval_ms * 2 > settings.lease_ttl_ms:
        raise ConfigError(
            f"{setting_names('renew_interval_ms')} must be at most half of lease_ttl_ms "
            f"(got {settings.renew_interval_ms} and {settings.lease_ttl_ms})"
        )
    for name, pattern, what in _TEXT_RULES:
        if not pattern.fullmatch(getattr(settings, name)):
            raise ConfigError(f"{setting_names(name)} must be {what}, got {getattr(settings, name)!r}")
    dev_key = settings.api_dev_key.strip()
    if dev_key and dev_key != "auto" and len(dev_key) < MIN_DEV_KEY_LEN:  # (a key: its length, not its text)
        raise ConfigError(f"{setting_names('api_dev_key')} must be 'auto' or at least {MIN_DEV_KEY_LEN} characters, "
                          f"got {len(dev_key)}")
    if settings.log_level.upper() not in _LOG_LEVELS:
        levels = ", ".join(_LOG_LEVELS)
        raise ConfigError(f"{setting_names('log_level')} must be one of {levels}, got {settings.log_level!r}")
    try:
        parse_labels(settings.labels)
    except ConfigError as exc:
        raise ConfigError(f"{setting_names('labels')}: {exc}") from None
    bad_queue = next((q for q in settings.queue_list if not NAME_RE.match(q)), None)
    if bad_queue is not None:
        raise ConfigError(f"{setting_names('queues')} must be comma-separated queue names, got {bad_queue!r}")
    if settings.redis_url:
        problem = redis_url_problem(settings.redis_url, settings.redis_cluster)
        if problem:
            raise ConfigError(f"{setting_names('redis_url')}: {problem}")
