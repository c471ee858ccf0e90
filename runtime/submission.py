"""Validation of submissions: one path for stream entries, the Python client and the API.

A submission becomes a :class:`RunSpec`, the exact argument block of the
``runs_create`` Lua script. Anything invalid raises :class:`SubmissionError`
with a short reason code and a message for people.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, cast

import orjson

from .errors import SubmissionError, UnknownJob
from .ids import NAME_RE, RUN_ID_RE, routed_run_id
from .jobs import Backoff, JobOptions
from .keys import Keys
from .settings import Settings

__all__ = [
    "EVENT_FIELDS", "STREAM_FIELDS", "PlainSpecs", "RunSpec", "build_spec", "parse_stream_entry", "parse_stream_event",
]

#: Fields a stream entry may carry; every other field is rejected as a typo.
STREAM_FIELDS = frozenset(
    {
        "job", "input", "id", "queue", "priority", "delay", "delay_ms", "run_at",
        "idempotency_key", "idempotency_ttl", "concurrency_key", "labels", "tags",
        "metadata", "max_attempts", "timeout", "version", "ttl", "debounce_key", "debounce_window",
        "debounce_mode", "debounce_max",
    }
)

#: Fields of a stream entry that sends an event (for wait_for_event) instead of a run.
EVENT_FIELDS = frozenset({"event", "data"})

MAX_TAGS = 10
#: The backoff of jobs that set none (one instance, so its encoding is computed once).
DEFAULT_BACKOFF = Backoff()
MAX_TAG_LEN = 128
MAX_KEY_LEN = 256


class RunSpec(NamedTuple):
    """One run to create, already validated and routed.

    A named tuple rather than a frozen dataclass: creating one per submitted run
    is on the enqueue hot path, and a frozen dataclass's ``__init__`` costs
    several times more.
    """

    id: str
    job: str
    queue: str
    input_json: str
    priority: int
    delay_ms: int | None
    run_at_ms: int | None
    labels_json: str
    tags_json: str
    metadata_json: str
    concurrency_key: str
    idempotency_key: str
    idempotency_ttl_ms: int
    max_attempts: int
    timeout_ms: int
    backoff_json: str
    version: str
    source: str
    entry_id: str
    extra_json: str
    ttl_ms: int | None = None
    rate_key: str = ""
    debounce_key: str = ""
    debounce_spec: str = ""

    def script_args(self) -> list[str | int]:
        """The 24 ARGV fields of runs_create, in the order its header lists."""
        return [
            self.id, self.job, self.queue, self.input_json, self.priority,
            "" if self.delay_ms is None else self.delay_ms,
            "" if self.run_at_ms is None else self.run_at_ms,
            self.labels_json, self.tags_json, self.metadata_json, self.concurrency_key,
            self.idempotency_key, self.idempotency_ttl_ms, self.max_attempts,
            self.timeout_ms, self.backoff_json, self.version, self.source, self.entry_id,
            self.extra_json, "" if self.ttl_ms is None else self.ttl_ms, self.rate_key, self.debounce_key,
            self.debounce_spec,
        ]


JobLookup = Callable[[str], JobOptions | None]


class PlainSpecs:
    """Specs of runs submitted with nothing but a job and an input, the common case.

    Everything but the id and the input follows from the job's options, so it
    is validated once per job (by :func:`build_spec`) and reused: per run, only
    the input is encoded and checked and an id drawn. A job whose options
    change (a registry refresh) is validated again. Jobs with a per-key rate
    limit take their key from the input and always go through build_spec.
    """

    def __init__(self, settings: Settings, keys: Keys) -> None:
        self.settings = settings
        self.keys = keys
        #: job -> (its options when validated, the validated spec, its routing key)
        self._bases: dict[str, tuple[JobOptions, RunSpec, str | None]] = {}

    def spec(
        self, lookup: JobLookup, job: str, input_json: str, source: str, entry_id: str = "",
        derived_id: str | None = None,
    ) -> RunSpec | None:
        """The spec of one run, or None when this job needs the full path."""
        options = lookup(job)
        if options is None or options.rate_limit_per_key:
            return None
        cached = self._bases.get(job)
        if cached is None or cached[0] is not options:
            base = build_spec(self.settings, self.keys, lookup, job=job, input_json="null")
            cached = (options, base, _routing_key(job, options, "", "", "", ""))
            self._bases[job] = cached
        if len(input_json) > self.settings.max_input_bytes:
            raise SubmissionError(
                "too_large", f"input is {len(input_json)} bytes; the limit is {self.settings.max_input_bytes}"
            )
        _, base, routing = cached
        return base._replace(
            id=routed_run_id(self.keys, routing, derived_id), input_json=input_json, source=source, entry_id=entry_id,
        )


def parse_stream_entry(
    entry_id: str, raw: Mapping[bytes, bytes] | Mapping[str, str], settings: Settings, keys: Keys,
    lookup: JobLookup, plain: PlainSpecs | None = None,
) -> RunSpec:
    """Validate one submission-stream entry; the run id defaults to the entry id.

    With ``plain``, an entry of only ``job`` and ``input`` takes the short path
    (same checks, done once per job).
    """
    if plain is not None and len(raw) <= 2:
        spec = _plain_stream_entry(entry_id, raw, lookup, plain)
        if spec is not None:
            return spec
    fields: dict[str, str] = {}
    items: Any = raw.items()
    for k, v in items:
        key = k.decode() if isinstance(k, bytes) else k
        try:
            fields[key] = v.decode() if isinstance(v, bytes) else v
        except UnicodeDecodeError:
            raise SubmissionError("bad_encoding", f"field {key!r} is not UTF-8") from None
    unknown = sorted(set(fields) - STREAM_FIELDS)
    if unknown:
        raise SubmissionError("unknown_field", f"unknown field(s): {', '.join(unknown)}")
    if "job" not in fields:
        raise SubmissionError("missing_field", "field 'job' is required")
    if len(fields.get("input", "")) > settings.max_input_bytes:
        raise SubmissionError(
            "too_large", f"input is {len(fields['input'])} bytes; the limit is {settings.max_input_bytes}"
        )
    input_value: Any = None
    if "input" in fields:
        input_value = _json_field("input", fields["input"])
    delay_s: float | None = None
    if "delay" in fields:
        delay_s = _number("delay", fields["delay"])
    if "delay_ms" in fields:
        delay_s = _number("delay_ms", fields["delay_ms"]) / 1000
    run_at = fields.get("run_at")
    return build_spec(
        settings, keys, lookup,
        job=fields["job"],
        input=input_value,
        run_id=fields.get("id"),
        queue=fields.get("queue"),
        priority=_int("priority", fields["priority"]) if "priority" in fields else None,
        delay_s=delay_s,
        run_at=run_at,
        idempotency_key=fields.get("idempotency_key"),
        idempotency_ttl_s=(
            _number("idempotency_ttl", fields["idempotency_ttl"]) if "idempotency_ttl" in fields else None
        ),
        concurrency_key=fields.get("concurrency_key"),
        labels=_json_field("labels", fields["labels"]) if "labels" in fields else None,
        tags=_json_field("tags", fields["tags"]) if "tags" in fields else None,
        metadata=_json_field("metadata", fields["metadata"]) if "metadata" in fields else None,
        max_attempts=_int("max_attempts", fields["max_attempts"]) if "max_attempts" in fields else None,
        timeout_s=_number("timeout", fields["timeout"]) if "timeout" in fields else None,
        version=fields.get("version"),
        ttl_s=_number("ttl", fields["ttl"]) if "ttl" in fields else None,
        debounce=_stream_debounce(fields),
        source="stream",
        entry_id=entry_id,
        derived_id=entry_id,
        input_json=fields.get("input"),
    )


def _plain_stream_entry(
    entry_id: str, raw: Mapping[bytes, bytes] | Mapping[str, str], lookup: JobLookup, plain: PlainSpecs,
) -> RunSpec | None:
    """The spec of an entry of only ``job`` and ``input`` (bytes, as read from Redis); None = full path."""
    names: Any = raw.keys()
    if names != _PLAIN_WITH_INPUT and names != _PLAIN_JOB_ONLY:
        return None
    fields = cast(Mapping[bytes, bytes], raw)
    try:
        job = fields[b"job"].decode()
        input_json = fields[b"input"].decode() if b"input" in fields else "null"
    except UnicodeDecodeError:
        return None  # the full path names the field
    if len(input_json) > plain.settings.max_input_bytes:
        return None  # the full path rejects it (before parsing it)
    _json_field("input", input_json)
    return plain.spec(lookup, job, input_json, "stream", entry_id, entry_id)


_PLAIN_WITH_INPUT = frozenset({b"job", b"input"})
_PLAIN_JOB_ONLY = frozenset({b"job"})


def parse_stream_event(raw: Mapping[bytes, bytes], settings: Settings) -> tuple[str, str]:
    """Validate an event entry (fields ``event`` and optional ``data``); returns (key, data JSON)."""
    fields: dict[str, str] = {}
    for k, v in raw.items():
        try:
            fields[k.decode()] = v.decode()
        except UnicodeDecodeError:
            raise SubmissionError("bad_encoding", f"field {k!r} is not UTF-8") from None
    unknown = sorted(set(fields) - EVENT_FIELDS)
    if unknown:
        raise SubmissionError("unknown_field", f"unknown field(s) in an event entry: {', '.join(unknown)}")
    key = fields["event"]
    if not key or len(key) > MAX_KEY_LEN:
        raise SubmissionError("bad_event_key", f"event must be a non-empty string of at most {MAX_KEY_LEN} characters")
    data = fields.get("data", "null")
    if len(data) > settings.max_input_bytes:
        raise SubmissionError("too_large", f"event data is {len(data)} bytes; the limit is {settings.max_input_bytes}")
    _json_field("data", data)
    return key, data


def build_spec(
    settings: Settings,
    keys: Keys,
    lookup: JobLookup,
    *,
    job: str,
    input: Any = None,
    run_id: str | None = None,
    queue: str | None = None,
    priority: int | None = None,
    delay_s: float | None = None,
    run_at: str | int | float | datetime | None = None,
    idempotency_key: str | None = None,
    idempotency_ttl_s: float | None = None,
    concurrency_key: str | None = None,
    labels: Any = None,
    tags: Any = None,
    metadata: Any = None,
    max_attempts: int | None = None,
    timeout_s: float | None = None,
    version: str | None = None,
    ttl_s: float | None = None,
    debounce: Mapping[str, Any] | None = None,
    source: str = "client",
    entry_id: str = "",
    derived_id: str | None = None,
    input_json: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> RunSpec:
    """Validate trigger options against the job and route the run to a partition."""
    if not isinstance(job, str) or not NAME_RE.match(job):
        raise SubmissionError("bad_job", f"invalid job name {job!r}")
    options = lookup(job)
    if options is None:
        raise UnknownJob(job)
    if input_json is None:
        try:
            input_json = orjson.dumps(input).decode()
        except TypeError as exc:
            raise SubmissionError("bad_input", f"input is not JSON-serialisable: {exc}") from None
    if len(input_json) > settings.max_input_bytes:
        raise SubmissionError(
            "too_large", f"input is {len(input_json)} bytes; the limit is {settings.max_input_bytes}"
        )
    queue = options.queue if queue is None else queue
    if not isinstance(queue, str) or not NAME_RE.match(queue):
        raise SubmissionError("bad_queue", f"invalid queue name {queue!r}")
    priority = options.priority if priority is None else priority
    if not isinstance(priority, int) or isinstance(priority, bool) or not -1000 <= priority <= 1000:
        raise SubmissionError("bad_priority", "priority must be an integer within [-1000, 1000]")
    delay_ms = None
    if delay_s is not None:
        if not isinstance(delay_s, int | float) or not math.isfinite(delay_s) or delay_s < 0:
            raise SubmissionError("bad_delay", "delay must be a non-negative number of seconds")
        delay_ms = int(delay_s * 1000)
    run_at_ms = _run_at_ms(run_at) if run_at is not None else None
    ikey = _opt_str("idempotency_key", idempotency_key)
    ckey = _opt_str("concurrency_key", concurrency_key)
    ittl = settings.idempotency_ttl_s if idempotency_ttl_s is None else idempotency_ttl_s
    if not isinstance(ittl, int | float) or ittl <= 0:
        raise SubmissionError("bad_idempotency_ttl", "idempotency_ttl must be a positive number of seconds")
    labels_json = ""
    if labels is not None:
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise SubmissionError("bad_labels", "labels must be an object of string values")
        labels_json = orjson.dumps(labels).decode() if labels else ""
    tags_json = ""
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise SubmissionError("bad_tags", "tags must be an array of strings")
        if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG_LEN for t in tags):
            raise SubmissionError("bad_tags", f"at most {MAX_TAGS} tags of at most {MAX_TAG_LEN} characters")
        tags_json = orjson.dumps(tags).decode() if tags else ""
    metadata_json = ""
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise SubmissionError("bad_metadata", "metadata must be a JSON object")
        metadata_json = orjson.dumps(metadata).decode() if metadata else ""
    attempts = options.max_attempts or settings.default_max_attempts
    if max_attempts is not None:
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            raise SubmissionError("bad_max_attempts", "max_attempts must be an integer of at least 1")
        attempts = max_attempts
    timeout = options.timeout_s or settings.default_timeout_s
    if timeout_s is not None:
        if not isinstance(timeout_s, int | float) or not math.isfinite(timeout_s) or timeout_s <= 0:
            raise SubmissionError("bad_timeout", "timeout must be a positive number of seconds")
        timeout = timeout_s
    version = options.version if version is None else version
    if not isinstance(version, str) or len(version) > MAX_KEY_LEN:
        raise SubmissionError("bad_version", "version must be a short string")

    ttl = options.ttl_s if ttl_s is None else ttl_s
    if ttl is not None and (not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0):
        raise SubmissionError("bad_ttl", "ttl must be a positive number of seconds")
    dkey, dspec = _debounce(debounce)
    rate_key = _rate_key(options, ckey, labels, input)

    routing = _routing_key(job, options, ckey, ikey, rate_key, dkey)
    if run_id is not None:
        if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
            raise SubmissionError("bad_id", "id must be 1-128 characters of A-Z a-z 0-9 _ . : ~ -")
        if routing is not None and keys.partition_of_run(run_id) != keys.partition_for(routing):
            raise SubmissionError(
                "id_partition_mismatch",
                "with several partitions, a run with a concurrency limit or idempotency key "
                "must let Baton choose its id",
            )
        final_id = run_id
    else:
        final_id = routed_run_id(keys, routing, derived_id)
    extra_json = orjson.dumps(dict(extra)).decode() if extra else ""
    return RunSpec(
        id=final_id, job=job, queue=queue, input_json=input_json, priority=priority,
        delay_ms=delay_ms, run_at_ms=run_at_ms, labels_json=labels_json, tags_json=tags_json,
        metadata_json=metadata_json, concurrency_key=ckey, idempotency_key=ikey,
        idempotency_ttl_ms=int(ittl * 1000), max_attempts=attempts, timeout_ms=int(timeout * 1000),
        backoff_json=(options.backoff or DEFAULT_BACKOFF).encoded, version=version, source=source,
        entry_id=entry_id, extra_json=extra_json, ttl_ms=None if ttl is None else int(ttl * 1000),
        rate_key=rate_key, debounce_key=dkey, debounce_spec=dspec,
    )


def _routing_key(job: str, options: JobOptions, ckey: str, ikey: str, rate_key: str, dkey: str) -> str | None:
    # Exact limits need every run they count in one partition (one slot).
    if options.max_concurrency or options.rate_limit:
        return f"job:{job}"
    if ckey and options.max_concurrency_per_key:
        return f"key:{job}:{ckey}"
    if rate_key and options.rate_limit_per_key:
        return f"rate:{job}:{rate_key}"
    if dkey:
        return f"deb:{job}:{dkey}"
    if ikey:
        return f"idem:{job}:{ikey}"
    return None


def _rate_key(options: JobOptions, ckey: str, labels: Any, payload: Any) -> str:
    """The run's rate key, taken where the job says (only when it has a per-key rate limit)."""
    if not options.rate_limit_per_key:
        return ""
    source = options.rate_key
    if source == "concurrency_key":
        return ckey
    if source.startswith("label:"):
        value = (labels or {}).get(source[6:]) if isinstance(labels, dict) else None
    else:
        value = payload.get(source[6:]) if isinstance(payload, dict) else None
    return "" if value is None else str(value)[:MAX_KEY_LEN]


def _debounce(debounce: Mapping[str, Any] | None) -> tuple[str, str]:
    """Validate a debounce option: {key, window (s), mode leading|trailing, max_delay (s)}."""
    if not debounce:
        return "", ""
    key = _opt_str("debounce_key", debounce.get("key"))
    if not key:
        raise SubmissionError("bad_debounce", "debounce needs a key")
    mode = debounce.get("mode", "trailing")
    window = debounce.get("window")
    max_delay = debounce.get("max_delay") or 0
    if mode not in ("leading", "trailing"):
        raise SubmissionError("bad_debounce", "debounce mode must be leading or trailing")
    for name, value in (("window", window), ("max_delay", max_delay)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise SubmissionError("bad_debounce", f"debounce {name} must be a non-negative number of seconds")
    if not window:
        raise SubmissionError("bad_debounce", "debounce window must be positive")
    return key, f"{mode},{int(window * 1000)},{int(max_delay * 1000)}"


def _stream_debounce(fields: Mapping[str, str]) -> dict[str, Any] | None:
    if "debounce_key" not in fields:
        return None
    return {
        "key": fields["debounce_key"],
        "window": _number("debounce_window", fields.get("debounce_window", "0")),
        "mode": fields.get("debounce_mode", "trailing"),
        "max_delay": _number("debounce_max", fields.get("debounce_max", "0")),
    }


def _opt_str(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_KEY_LEN:
        raise SubmissionError(f"bad_{name}", f"{name} must be a string of at most {MAX_KEY_LEN} characters")
    return value


def _json_field(name: str, raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SubmissionError("bad_json", f"field {name!r} is not valid JSON: {exc}") from None


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SubmissionError(f"bad_{name}", f"field {name!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise SubmissionError(f"bad_{name}", f"field {name!r} must be finite")
    return value


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SubmissionError(f"bad_{name}", f"field {name!r} must be an integer, got {raw!r}") from None


def _run_at_ms(value: str | int | float | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise SubmissionError("bad_run_at", "run_at must carry a timezone")
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SubmissionError("bad_run_at", "run_at must be epoch milliseconds or ISO-8601") from None
        return _run_at_ms(parsed)
    raise SubmissionError("bad_run_at", "run_at must be epoch milliseconds or ISO-8601")
