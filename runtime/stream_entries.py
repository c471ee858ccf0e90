"""Stream entries: every field decoded, parsed and range-checked inside the code that rejects it.

A submission-stream entry is a flat map of byte strings. Each field is decoded
as UTF-8 and each number parsed by :func:`runtime.ranges.parse`, all under
SubmissionError, before :func:`runtime.submission.build_spec` validates the
rest: no value of an entry reaches a conversion that could raise anything else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

import orjson

from .codec import text
from .errors import SubmissionError
from .keys import Keys
from .ranges import parse, shown
from .settings import Settings
from .submission import MAX_KEY_LEN, JobLookup, PlainSpecs, QueueCheck, RunSpec, build_spec, json_field

__all__ = ["EVENT_FIELDS", "STREAM_FIELDS", "Entry", "parse_stream_entry", "parse_stream_event", "rejected_record",
           "stream_entries"]

#: Fields a stream entry may carry; every other field is rejected as a typo.
STREAM_FIELDS = frozenset(
    {
        "job", "input", "id", "queue", "priority", "delay", "delay_ms", "run_at",
        "idempotency_key", "idempotency_ttl", "concurrency_key", "labels", "tags",
        "metadata", "max_attempts", "timeout", "version", "ttl", "debounce_key", "debounce_window",
        "debounce_mode", "debounce_max", "traceparent", "node_labels", "prefer_labels", "prefer_wait",
        "fairness_weight", "depends_on",
    }
)

#: Fields of a stream entry that sends an event (for wait_for_event) instead of a run.
EVENT_FIELDS = frozenset({"event", "data"})

def parse_stream_entry(
    entry_id: str, raw: Mapping[bytes, bytes] | Mapping[str, str], settings: Settings, keys: Keys,
    lookup: JobLookup, plain: PlainSpecs | None = None, queue_known: QueueCheck | None = None,
) -> RunSpec:
    """Validate one submission-stream entry; the run id defaults to the entry id.

    With ``plain``, an entry of only ``job`` and ``input`` takes the short path
    (same checks, done once per job). ``queue_known`` as in :func:`build_spec`.
    """
    _refuse_repeated(raw)
    if plain is not None and len(raw) <= 2:
        spec = _plain_stream_entry(entry_id, raw, lookup, plain)
        if spec is not None:
            return spec
    fields = _decoded(raw)
    unknown = sorted(set(fields) - STREAM_FIELDS)
    if unknown:
        raise SubmissionError("unknown_field", f"unknown field(s): {shown(', '.join(unknown), 200)}")
    if "job" not in fields:
        raise SubmissionError("missing_field", "field 'job' is required")
    if len(fields.get("input", "")) > settings.max_input_bytes:
        raise SubmissionError(
            "too_large", f"input is {len(fields['input'])} bytes; the limit is {settings.max_input_bytes}"
        )
    input_value: Any = None
    if "input" in fields:
        input_value = json_field("input", fields["input"])
    delay_s: float | None = None
    if "delay" in fields and "delay_ms" in fields:
        raise SubmissionError("bad_delay", "give delay or delay_ms, not both")
    if "delay" in fields:
        delay_s = parse("delay", fields["delay"])
    if "delay_ms" in fields:
        delay_s = parse("delay_ms", fields["delay_ms"]) / 1000

    def number(name: str) -> Any:
        return parse(name, fields[name]) if name in fields else None

    return build_spec(
        settings, keys, lookup,
        job=fields["job"],
        input=input_value,
        run_id=fields.get("id"),
        queue=fields.get("queue"),
        priority=number("priority"),
        fairness_weight=number("fairness_weight"),
        delay_s=delay_s,
        run_at=fields.get("run_at"),
        idempotency_key=fields.get("idempotency_key"),
        idempotency_ttl_s=number("idempotency_ttl"),
        concurrency_key=fields.get("concurrency_key"),
        labels=json_field("labels", fields["labels"]) if "labels" in fields else None,
        tags=json_field("tags", fields["tags"]) if "tags" in fields else None,
        metadata=json_field("metadata", fields["metadata"]) if "metadata" in fields else None,
        max_attempts=number("max_attempts"),
        timeout_s=number("timeout"),
        version=fields.get("version"),
        ttl_s=number("ttl"),
        debounce=_stream_debounce(fields),
        source="stream",
        entry_id=entry_id,
        derived_id=entry_id,
        input_json=fields.get("input"),
        queue_known=queue_known,
        trace_context=fields.get("traceparent"),
        **_affinity_fields(fields),
        depends_on=json_field("depends_on", fields["depends_on"]) if "depends_on" in fields else None,
    )


def _affinity_fields(fields: Mapping[str, str]) -> dict[str, Any]:
    """node_labels, prefer_labels (JSON objects) and prefer_wait (seconds) as build_spec takes them."""
    found = {option: json_field(name, fields[name]) for name, option in
             (("node_labels", "node_labels"), ("prefer_labels", "prefer_labels")) if name in fields}
    if "prefer_wait" in fields:
        found["prefer_wait_s"] = parse("prefer_wait", fields["prefer_wait"])
    return found


def _decoded(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> dict[str, str]:
    """Every field name and value as text; SubmissionError names the first that is not UTF-8."""
    fields: dict[str, str] = {}
    items: Any = raw.items()
    for k, v in items:
        try:
            key = k.decode() if isinstance(k, bytes) else k
        except UnicodeDecodeError:
            raise SubmissionError("bad_encoding", f"a field name is not UTF-8: {shown(k)}") from None
        try:
            fields[key] = v.decode() if isinstance(v, bytes) else v
        except UnicodeDecodeError:
            raise SubmissionError("bad_encoding", f"field {shown(key)} is not UTF-8") from None
    return fields


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
    json_field("input", input_json)
    return plain.spec(lookup, job, input_json, "stream", entry_id, entry_id)


_PLAIN_WITH_INPUT = frozenset({b"job", b"input"})
_PLAIN_JOB_ONLY = frozenset({b"job"})


def parse_stream_event(raw: Mapping[bytes, bytes], settings: Settings) -> tuple[str, str]:
    """Validate an event entry (fields ``event`` and optional ``data``); returns (key, data JSON)."""
    _refuse_repeated(raw)
    fields = _decoded(raw)
    unknown = sorted(set(fields) - EVENT_FIELDS)
    if unknown:
        raise SubmissionError(
            "unknown_field", f"unknown field(s) in an event entry: {shown(', '.join(unknown), 200)}"
        )
    key = fields["event"]
    if not key or len(key) > MAX_KEY_LEN:
        raise SubmissionError("bad_event_key", f"event must be a non-empty string of at most {MAX_KEY_LEN} characters")
    data = fields.get("data", "null")
    if len(data) > settings.max_input_bytes:
        raise SubmissionError("too_large", f"event data is {len(data)} bytes; the limit is {settings.max_input_bytes}")
    json_field("data", data)
    return key, data


def _stream_debounce(fields: Mapping[str, str]) -> dict[str, Any] | None:
    if "debounce_key" not in fields:
        given = sorted(_DEBOUNCE_OPTIONS & set(fields))
        if given:  # (a debounce meant, its key forgotten: not a run created at once)
            raise SubmissionError("bad_debounce", f"{', '.join(given)} without debounce_key")
        return None
    return {
        "key": fields["debounce_key"],
        "window": parse("debounce_window", fields.get("debounce_window", "0")),
        "mode": fields.get("debounce_mode", "trailing"),
        "max_delay": parse("debounce_max", fields.get("debounce_max", "0")),
    }




#: The debounce fields that mean nothing without ``debounce_key``.
_DEBOUNCE_OPTIONS = frozenset({"debounce_window", "debounce_mode", "debounce_max"})

#: Bytes of each field value a rejected entry keeps (names keep REJECTED_NAME_BYTES).
REJECTED_FIELD_BYTES = 1024
REJECTED_NAME_BYTES = 128
#: Bytes of the original fields a rejected entry keeps in all (fields past it are left out).
REJECTED_ENTRY_BYTES = 8192
#: Characters of the error message a rejected entry keeps.
REJECTED_ERROR_CHARS = 1024


def rejected_record(entry_id: str, fields: Mapping[Any, Any], error: SubmissionError) -> dict[str, str]:
    """What the rejected stream keeps of a bad entry: bounded prefixes of its fields plus its size.

    Each value keeps its first REJECTED_FIELD_BYTES bytes (each name its first
    REJECTED_NAME_BYTES) and the entry at most REJECTED_ENTRY_BYTES in all, so one
    huge entry costs the rejected stream a few KiB; ``size`` is the original
    entry's bytes and ``truncated`` says whether anything was cut.
    """
    kept: dict[str, str] = {}
    budget = REJECTED_ENTRY_BYTES - 2  # (the JSON object's braces)
    size = 0
    truncated = False
    for k, v in fields.items():
        name, value = _raw(k), _raw(v)
        size += len(name) + len(value)
        short_name = name[:REJECTED_NAME_BYTES].decode(errors="replace")
        short_value = value[:REJECTED_FIELD_BYTES].decode(errors="replace")
        # what the pair adds to the JSON kept: quoted and escaped, a colon and a comma
        cost = len(orjson.dumps(short_name)) + len(orjson.dumps(short_value)) + 2
        if cost > budget:
            truncated = True
            continue
        budget -= cost
        truncated = truncated or len(name) > REJECTED_NAME_BYTES or len(value) > REJECTED_FIELD_BYTES
        kept[short_name] = short_value
    message = str(error)
    return {
        "entry_id": entry_id, "reason": error.reason, "error": message[:REJECTED_ERROR_CHARS],
        "fields": orjson.dumps(kept).decode(), "size": str(size), "truncated": "1" if truncated else "0",
    }


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode(errors="replace")


#: one entry of a stream as read: its id and its fields
Entry = tuple[str, dict[bytes, bytes]]


def stream_entries(reply: Any) -> list[Entry]:
    """The entries of an XREADGROUP reply, in either shape it comes in: raw from a held connection
    ({stream: [[id, [field, value, ...]], ...]} in RESP3, a list of [stream, entries] pairs in RESP2),
    or parsed by the client (fields as a dict; in RESP3 one list deeper), which is what a held
    connection's call returns when it was retried through the client after its connection was lost.
    Nil when the block timed out; an entry trimmed meanwhile has nil fields."""
    streams = reply.values() if isinstance(reply, dict) else [pair[1] for pair in reply or []]
    entries: list[Entry] = []
    for items in streams:
        if items and (not items[0] or isinstance(items[0][0], tuple | list)):
            items = items[0]  # (the client's RESP3 parse nests the entries one list deeper)
        for entry_id, fields in items:
            if not fields:
                entries.append((text(entry_id), {}))
            elif isinstance(fields, dict):
                entries.append((text(entry_id), fields))
            else:
                named = dict(zip(fields[::2], fields[1::2], strict=True))
                entries.append((text(entry_id), named if 2 * len(named) == len(fields)
                                else RepeatedFields(named, fields[::2])))
    return entries


class RepeatedFields(dict[bytes, bytes]):
    """The fields of an entry that names one field more than once (XADD takes that): the dict keeps
    the last value of each, so which one was meant is unknown, and the entry is rejected whole."""

    def __init__(self, fields: dict[bytes, bytes], names: list[bytes]) -> None:
        super().__init__(fields)
        #: the names given more than once
        self.repeated = sorted(name for name, times in Counter(names).items() if times > 1)


def _refuse_repeated(raw: Mapping[Any, Any]) -> None:
    """SubmissionError (repeated_field) for an entry that names a field more than once."""
    if isinstance(raw, RepeatedFields):
        names = ", ".join(name.decode(errors="replace") for name in raw.repeated)
        raise SubmissionError("repeated_field", f"field(s) given more than once: {shown(names, 200)}")
