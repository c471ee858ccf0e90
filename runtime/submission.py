"""Validation of submissions: one path for stream entries, the Python client and the API.

A submission becomes a :class:`RunSpec`, the exact argument block of the
``runs_create`` Lua script. Anything invalid raises :class:`SubmissionError`
with a short reason code and a message for people.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Set
from datetime import datetime
from typing import Any, NamedTuple

from .affinity import affinity_extra
from .codec import digits
from .dependencies import depends_spec, parents_routing
from .errors import SubmissionError, UnknownJob
from .ids import NAME_RE, RUN_ID_RE, routed_run_id
from .jobs import Backoff, JobOptions
from .json_values import MAX_JSON_DEPTH, decode, encode, refusal
from .keys import Keys
from .ranges import check, parse, shown, to_ms
from .settings import Settings
from .tracing import check_traceparent

__all__ = [
    "DEFAULT_SOURCE", "MAX_JSON_DEPTH", "MAX_KEY_LEN", "RECORD_DEFAULTS", "JobLookup", "PlainSpecs", "QueueCheck",
    "RecordDefaults", "RunSpec",
    "build_spec", "json_field", "json_text", "limit_override_refusal", "source_field",
]

MAX_TAGS = 10
#: The backoff of jobs that set none (one instance, so its encoding is computed once).
DEFAULT_BACKOFF = Backoff()
#: The source of a run submitted through the client API (app.trigger), the most common one: a
#: record stores no source for it (source_field), and readers take this.
DEFAULT_SOURCE = "client"


class RecordDefaults(NamedTuple):
    """What a run record means by a field it does not hold. runs_create leaves out a value equal to
    its default (a listpack field costs every queued run 15-20 bytes of Redis memory), and every
    reader takes these: Python through this, Lua through includes/record_defaults.lua, generated
    from it. A storage format: a value changed here would change what stored records mean. (The
    queue is always stored: the scripts of earlier versions fail on a record without one, and a
    node of one may still run during a rolling upgrade.)"""

    max_attempts: int = 3
    timeout_ms: int = 300_000


#: The one instance readers and runs_create use.
RECORD_DEFAULTS = RecordDefaults()


def backoff_field(backoff: Backoff | None) -> str:
    """What a run record stores as its backoff: '' (nothing) for the default, which readers
    (Run.from_hash, settle.lua through the generated include backoff.lua) take for a missing one."""
    encoded = (backoff or DEFAULT_BACKOFF).encoded
    return "" if encoded == DEFAULT_BACKOFF.encoded else encoded


def source_field(source: str) -> str:
    """What a run record stores as its source: '' (nothing) for DEFAULT_SOURCE, which readers
    (Run.from_hash, listings) take for a missing one; no Lua reads it."""
    return "" if source == DEFAULT_SOURCE else source


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
    #: the producer's W3C traceparent ("" = none): the node's spans of the run join its trace
    trace_context: str = ""
    #: parents and their policies (runtime/dependencies.py), "" = none
    depends_json: str = ""

    def script_args(self) -> list[str | int]:
        """The run's fields for runs_create, in field order (absent times as ""); runs_create reads
        them by the positions runtime/lua/includes/run_spec.lua gives, generated from this class."""
        return ["" if v is None else v for v in self]


JobLookup = Callable[[str], JobOptions | None]
#: Whether a queue name is one runs may be submitted to (see build_spec).
QueueCheck = Callable[[str], bool]


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
        derived_id: str | None = None, avoid: Set[int] = frozenset(),
    ) -> RunSpec | None:
        """The spec of one run, or None when this job needs the full path (``avoid``: build_spec's)."""
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
            id=routed_run_id(self.keys, routing, derived_id, avoid), input_json=input_json, source=source_field(source),
            entry_id=entry_id,
        )


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
    source: str = DEFAULT_SOURCE,
    entry_id: str = "",
    derived_id: str | None = None,
    input_json: str | None = None,
    extra: Mapping[str, Any] | None = None,
    queue_known: QueueCheck | None = None,
    trace_context: str | None = None,
    node_labels: Any = None,
    prefer_labels: Any = None,
    prefer_wait_s: Any = None,
    fairness_weight: int | None = None,
    depends_on: Any = None,
    avoid: Set[int] = frozenset(),
) -> RunSpec:
    """Validate trigger options against the job and route the run to a partition.

    Every numeric option, given or taken from the job's options and the
    settings, is checked against :data:`runtime.ranges.RANGES`. A ``queue``
    other than the job's own must satisfy ``queue_known`` (when given): queue
    names end up in metric labels and stored sets, so producers cannot invent them.
    A run whose id Baton draws and nothing pins to a partition (no limit, key or parent
    routes it) lands in none of the partitions in ``avoid`` (those known to be out).
    """
    if not isinstance(job, str) or not NAME_RE.match(job):
        raise SubmissionError("bad_job", f"invalid job name {shown(job)}")
    options = lookup(job)
    if options is None:
        raise UnknownJob(job)
    if input_json is None:
        input_json = json_text("input", input)
    if len(input_json) > settings.max_input_bytes:
        raise SubmissionError(
            "too_large", f"input is {len(input_json)} bytes; the limit is {settings.max_input_bytes}"
        )
    queue = _queue(options, queue, queue_known)
    prio = check("priority", options.priority if priority is None else priority)
    delay_ms = None if delay_s is None else to_ms(check("delay", delay_s))
    run_at_ms = _run_at_ms(run_at) if run_at is not None else None
    ikey = _opt_str("idempotency_key", idempotency_key)
    ckey = _opt_str("concurrency_key", concurrency_key)
    ittl = check("idempotency_ttl", settings.idempotency_ttl_s if idempotency_ttl_s is None else idempotency_ttl_s)
    labels_json = ""
    if labels is not None:
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise SubmissionError("bad_labels", "labels must be an object of string values")
        labels_json = _sized(settings, "labels", json_text("labels", labels)) if labels else ""
    tags_json = ""
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise SubmissionError("bad_tags", "tags must be an array of strings")
        if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG_LEN for t in tags):
            raise SubmissionError("bad_tags", f"at most {MAX_TAGS} tags of at most {MAX_TAG_LEN} characters")
        tags_json = json_text("tags", tags) if tags else ""
    metadata_json = ""
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise SubmissionError("bad_metadata", "metadata must be a JSON object")
        metadata_json = _sized(settings, "metadata", json_text("metadata", metadata)) if metadata else ""
    attempts = check("max_attempts", max_attempts if max_attempts is not None else (
        options.max_attempts or settings.default_max_attempts))
    timeout = check("timeout", timeout_s if timeout_s is not None else (
        options.timeout_s or settings.default_timeout_s))
    version = options.version if version is None else version
    if not isinstance(version, str) or len(version) > MAX_KEY_LEN:
        raise SubmissionError("bad_version", "version must be a short string")
    _encodable("version", version)
    ttl = options.ttl_s if ttl_s is None else ttl_s
    if ttl is not None:
        ttl = check("ttl", ttl)
    dkey, dspec = _debounce(debounce)
    rate_key = _rate_key(options, ckey, labels, input)

    routing = _routing_key(job, options, ckey, ikey, rate_key, dkey)
    depends_json, parents = depends_spec(settings, keys, depends_on)
    if parents is not None:
        routing = parents_routing(keys, routing, parents)
    for given in (run_id, derived_id):
        if given is not None and (not isinstance(given, str) or not RUN_ID_RE.match(given)):
            raise SubmissionError("bad_id", "id must be 1-128 characters of A-Z a-z 0-9 _ . : ~ -")
    if run_id is not None:
        if routing is not None and keys.partition_of_run(run_id) != keys.partition_for(routing):
            raise SubmissionError(
                "id_partition_mismatch",
                "with several partitions, a run with a concurrency limit or idempotency key "
                "must let Baton choose its id",
            )
        final_id = run_id
    else:
        final_id = routed_run_id(keys, routing, derived_id, avoid)
    weight = check("fairness_weight", options.fairness_weight if fairness_weight is None else fairness_weight)
    if weight > 1:  # stored on the record (the claim reads it with the run's other fields)
        extra = {**(extra or {}), "fairness_weight": int(weight)}
    # which options this trigger set itself rather than taking the job's (Strait's *_override fields)
    overridden = [name for name, value in (("max_attempts", max_attempts), ("timeout", timeout_s))
                  if value is not None]
    if overridden:
        extra = {**(extra or {}), "overrides": ",".join(overridden)}
    affinity = affinity_extra(options, node_labels, prefer_labels, prefer_wait_s)
    if affinity:  # which nodes may lease the run (runtime/affinity.py)
        extra = {**(extra or {}), **affinity}
    extra_json = json_text("extra", dict(extra)) if extra else ""
    return RunSpec(
        id=final_id, job=job, queue=queue, input_json=input_json, priority=int(prio),
        delay_ms=delay_ms, run_at_ms=run_at_ms, labels_json=labels_json, tags_json=tags_json,
        metadata_json=metadata_json, concurrency_key=ckey, idempotency_key=ikey,
        idempotency_ttl_ms=to_ms(ittl), max_attempts=int(attempts), timeout_ms=to_ms(timeout),
        backoff_json=backoff_field(options.backoff), version=version, source=source_field(source),
        entry_id=entry_id, extra_json=extra_json, ttl_ms=None if ttl is None else to_ms(ttl),
        rate_key=rate_key, debounce_key=dkey, debounce_spec=dspec, trace_context=check_traceparent(trace_context),
        depends_json=depends_json,
    )


def _queue(options: JobOptions, queue: Any, queue_known: QueueCheck | None) -> str:
    """The run's queue: the job's own, or another one Baton knows."""
    if queue is None or queue == options.queue:
        return options.queue
    if not isinstance(queue, str) or not NAME_RE.match(queue):
        raise SubmissionError("bad_queue", f"invalid queue name {shown(queue)}")
    if queue_known is not None and not queue_known(queue):
        raise SubmissionError(
            "unknown_queue",
            f"queue {queue!r} is neither the queue of a registered job nor listed in BATON_QUEUES",
        )
    return queue


def json_text(name: str, value: Any, reason: str = "") -> str:
    """JSON text of an option (runtime/json_values.py encode); SubmissionError (``reason``, else
    bad_input or bad_<name>) names it when it cannot be stored."""
    try:
        return encode(value)
    except TypeError as exc:  # orjson's: unsupported type, integer over 64 bits, bad str; or too deep
        raise SubmissionError(reason or ("bad_input" if name == "input" else f"bad_{name}"),
                              refusal(name, exc)) from None


def _sized(settings: Settings, name: str, text: str) -> str:
    if len(text) > settings.max_input_bytes:
        raise SubmissionError(f"bad_{name}", f"{name} is {len(text)} bytes; the limit is {settings.max_input_bytes}")
    return text


def _routing_key(job: str, options: JobOptions, ckey: str, ikey: str, rate_key: str, dkey: str) -> str | None:
    # Exact limits need every run they count in one partition (one slot): the
    # runs of every job sharing a named limit go where the limit's name routes
    if options.pool or options.shared_rate:
        return shared_limit_routing(options.pool or options.shared_rate)
    if options.max_concurrency or options.rate_limit or options.max_queued:
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


def limit_override_refusal(job: str, options: JobOptions, partitions: int, limits: tuple[int, int, bool, bool]
                           ) -> str | None:
    """Why a runtime override of ``job``'s limits (max_concurrency, max_concurrency_per_key, a rate limit
    given, a per-key rate limit given) could not hold exactly, given where its runs live; None when it can.

    A limit is counted in one partition: it is exact only when every run it counts is routed there, and
    the routing is fixed when a run is created, by the limits the job's code declares (_routing_key)."""
    concurrency, per_key, rate, key_rate = limits
    if key_rate and not options.rate_limit_per_key:
        return f"job {job!r} declares no rate_limit_per_key, so its runs carry no rate key: declare one in @app.job"
    if partitions == 1:
        return None
    route = _routing_key(job, options, "k", "", "r", "") or ""  # (placeholder keys: which kind of routing)
    if route.startswith(("job:", "limit:")):
        return None  # all its runs in one partition
    declare = f"with {partitions} partitions, job {job!r} needs its runs routed for this limit when they are created"
    then = "in @app.job (the override then changes it)"
    if concurrency or rate:
        return f"{declare}: declare max_concurrency, rate_limit or max_queued {then}"
    if per_key and not route.startswith("key:"):
        return f"{declare}: declare max_concurrency_per_key {then}"
    if key_rate and not (route.startswith("rate:") or options.rate_key == "concurrency_key"):
        return f"{declare}: its runs are routed by concurrency key, not by rate key {options.rate_key!r}"
    return None


def shared_limit_routing(name: str) -> str:
    """The routing key of every run of a job that shares the named limit ``name``."""
    return f"limit:{name}"


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
    if not isinstance(debounce, Mapping):
        raise SubmissionError("bad_debounce", "debounce must be an object of key, window, mode and max_delay")
    key = _opt_str("debounce_key", debounce.get("key"))
    if not key:
        raise SubmissionError("bad_debounce", "debounce needs a key")
    mode = debounce.get("mode", "trailing")
    if mode not in ("leading", "trailing"):
        raise SubmissionError("bad_debounce", "debounce mode must be leading or trailing")
    window = check("debounce_window", debounce.get("window"))
    max_delay = check("debounce_max", debounce.get("max_delay") or 0)
    return key, f"{mode},{to_ms(window)},{to_ms(max_delay)}"


def json_field(name: str, raw: str) -> Any:
    """A field's JSON text, read (runtime/json_values.py decode); SubmissionError (bad_json) names the field."""
    try:
        return decode(raw)
    except ValueError as exc:
        raise SubmissionError("bad_json", f"field {name!r} {exc}") from None


def _opt_str(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_KEY_LEN:
        raise SubmissionError(f"bad_{name}", f"{name} must be a string of at most {MAX_KEY_LEN} characters")
    _encodable(name, value)
    return value


def _encodable(name: str, value: str) -> None:
    """Reject text that cannot travel as UTF-8 (lone surrogates from Python callers)."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise SubmissionError(f"bad_{name}", f"{name} is not valid Unicode text") from None


_ISO_MAX_LEN = 64


def _run_at_ms(value: Any) -> int:
    """``run_at`` as epoch ms, range-checked: a datetime with a zone, epoch ms, or ISO-8601 text."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise SubmissionError("bad_run_at", "run_at must carry a timezone")
        return int(check("run_at", int(value.timestamp() * 1000)))
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(check("run_at", value))
    if isinstance(value, str):
        text = value.strip()
        if digits(text):
            return int(parse("run_at", text))
        parsed = None
        if len(text) <= _ISO_MAX_LEN:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                pass
        if parsed is not None:
            return _run_at_ms(parsed)
    raise SubmissionError(
        "bad_run_at", f"run_at must be epoch milliseconds or ISO-8601 with a zone, got {shown(value)}"
    )
