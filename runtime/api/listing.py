"""Run listings: cursor pages over per-partition run indices, filtered in Python.

Runs are listed newest first, in the stable order (index score, id) descending;
the score is the creation time (ms) for a project's index and the time entered
for the dead-letter index. A project's index is a stream per partition,
``{p}:created:<project>``, whose entry ids begin with the creation ms (see
``Partition.project_index``), plus the sorted set of runs created before it was
one, ``{p}:runs:<project>``; a status index is a sorted set. All of them are
merged. A page examines at most ``api_scan_limit`` index entries: when a
selective filter hits that cap, the page comes back short with ``has_more`` and
a cursor that continues after the last entry examined. Index entries of runs
whose record has expired are skipped and removed (ZREM, XDEL).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ..app import Baton
from ..keys import Partition
from ..partition_outages import PartialRead
from ..records import Run, read_runs, text, triggered_by
from .errors import ApiError
from .views import status_words, statuses_for, triggers_for

__all__ = ["FIELDS", "Page", "RunFilter", "RunIndex", "decode_cursor", "encode_cursor", "filter_from", "list_runs",
           "parse_ms", "project_cursor", "scoped_key"]

#: Record fields a filter reads (one HMGET per candidate)
FIELDS = ("status", "job", "queue", "tags", "labels", "metadata", "batch_id", "triggered_by", "source", "project",
          "idempotency_key")


def encode_cursor(score: float, run_id: str) -> str:
    """An opaque cursor: the last (score, id) a page covered. A score that is not a whole number of
    milliseconds in int64 (an index entry written by other code) is carried as its exact text."""
    exact: int | str = int(score) if math.isfinite(score) and score == int(score) and abs(score) < 2**63 \
        else repr(score)
    return base64.urlsafe_b64encode(orjson.dumps([exact, run_id])).decode().rstrip("=")


def project_cursor(run: Run) -> str:
    """The cursor of a project listing (RunIndex.of_project) that continues right after ``run``: its entry
    in the project index is at the millisecond of ``pi`` when the record has one, else of its creation
    (includes/common.lua, project_listed)."""
    entry = run.raw.get("pi")
    return encode_cursor(int(entry.split("-", 1)[0]) if entry else run.created_at_ms, run.id)


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (score, id) of a cursor; ApiError 400 when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score, run_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(score, str):
            score = float(score)  # ValueError when it is not a number
            if score != score:
                raise ValueError(cursor)  # NaN orders nothing
        if not isinstance(score, int | float) or isinstance(score, bool) or not isinstance(run_id, str):
            raise ValueError(cursor)
        return score, run_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(400, "bad_cursor", "cursor is not one this API returned") from None


def _contains(haystack: Any, needle: Any) -> bool:
    """JSON containment, as PostgreSQL's jsonb @>: objects by subset, arrays by elements."""
    if isinstance(needle, dict):
        return isinstance(haystack, dict) and all(k in haystack and _contains(haystack[k], v)
                                                  for k, v in needle.items())
    if isinstance(needle, list):
        return isinstance(haystack, list) and all(any(_contains(h, n) for h in haystack) for n in needle)
    if isinstance(needle, bool) or isinstance(haystack, bool):
        return type(needle) is type(haystack) and needle == haystack
    return bool(haystack == needle)


@dataclass
class RunFilter:
    """What a listing keeps. Every field is optional; all given ones must match."""

    project: str
    statuses: frozenset[str] | None = None
    job: str | None = None
    queue: str | None = None
    tag: str | None = None
    label: tuple[str, str] | None = None
    metadata_key: str | None = None
    metadata_value: str | None = None
    batch_id: str | None = None
    triggered_by: frozenset[str] | None = None  #: native triggered_by values (any of them)
    created_after_ms: int | None = None
    created_before_ms: int | None = None
    payload_contains: dict[str, Any] | None = None
    #: the idempotency key as stored (scoped to the project, see run_helpers.scoped_key)
    idempotency_key: str | None = None
    #: any of these jobs, queues, tags (filters that take a list, as Trigger.dev's do)
    jobs: frozenset[str] | None = None
    queues: frozenset[str] | None = None
    any_tag: frozenset[str] | None = None

    def matches(self, f: dict[str, str | None]) -> bool:
        """Whether a run (its FIELDS) passes."""
        if (f.get("project") or "default") != self.project:
            return False
        if self.statuses is not None and f.get("status") not in self.statuses:
            return False
        if self.job is not None and f.get("job") != self.job:
            return False
        if self.queue is not None and f.get("queue") != self.queue:
            return False
        if self.batch_id is not None and f.get("batch_id") != self.batch_id:
            return False
        if self.idempotency_key is not None and f.get("idempotency_key") != self.idempotency_key:
            return False
        if self.triggered_by is not None:
            if triggered_by(f) not in self.triggered_by:
                return False
        if self.tag is not None and self.tag not in _loads(f.get("tags"), []):
            return False
        if self.jobs is not None and f.get("job") not in self.jobs:
            return False
        if self.queues is not None and f.get("queue") not in self.queues:
            return False
        if self.any_tag is not None:
            tags = _loads(f.get("tags"), [])
            if not isinstance(tags, list) or self.any_tag.isdisjoint(t for t in tags if isinstance(t, str)):
                return False
        if self.label is not None:
            labels = _loads(f.get("labels"), {})
            if not isinstance(labels, dict) or labels.get(self.label[0]) != self.label[1]:
                return False
        if self.metadata_key is not None:
            metadata = _loads(f.get("metadata"), {})
            if not isinstance(metadata, dict) or self.metadata_key not in metadata:
                return False
            if self.metadata_value is not None:
                value = metadata[self.metadata_key]
                text = value if isinstance(value, str) else orjson.dumps(value).decode()
                if text != self.metadata_value:
                    return False
        if self.payload_contains is not None and not _contains(_loads(f.get("input"), None),
                                                               self.payload_contains):
            return False
        return True


def _loads(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return default


_s = text


def _covered(after: tuple[float, str] | None, score: float, run_id: str) -> bool:
    """True when a page ending at the cursor ``after`` (its last (score, id)) already covered the entry."""
    return after is not None and score == after[0] and run_id >= after[1]


#: an index entry read: (score, run id, what removes it: the member of a sorted set, the id of a stream entry)
_Entry = tuple[float, str, str]

#: the largest millisecond part of a stream entry id (unsigned 64 bits)
_MAX_MS = 2**64 - 1


@dataclass
class _Source:
    """One partition's sorted-set index, read newest first in chunks."""

    key: str
    partition: int
    max_score: float | str
    min_score: float | str
    after: tuple[float, str] | None
    offset: int = 0
    done: bool = False
    buf: list[_Entry] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return self.offset > 0

    async def fill(self, redis: Any, n: int) -> None:
        while not self.buf and not self.done:
            rows = await redis.zrevrangebyscore(self.key, self.max_score, self.min_score, start=self.offset, num=n,
                                                withscores=True)
            self.offset += len(rows)
            if len(rows) < n:
                self.done = True
            for member, score in rows:
                run_id = _s(member)
                if _covered(self.after, score, run_id):
                    continue
                self.buf.append((score, run_id, run_id))
            self.buf.reverse()  # pop() from the end = newest first

    def drop(self, pipe: Any, entry: _Entry) -> None:
        """Remove an entry of a run that no longer exists."""
        pipe.zrem(self.key, entry[2])


@dataclass
class _StreamSource:
    """One partition's stream index (entry ids ``<ms>-<seq>``, field ``r`` the run id), read newest
    first. The entries of one millisecond are in the stream's order, not by run id, so every fill
    reads whole milliseconds and sorts them: the next fill continues below the last one read."""

    key: str
    partition: int
    after: tuple[float, str] | None
    end: str = "+"  #: the next read's newest id (inclusive)
    start: str = "-"  #: the oldest id any read takes
    done: bool = False
    reads: int = 0
    buf: list[_Entry] = field(default_factory=list)

    @classmethod
    def bounded(cls, key: str, partition: int, max_score: float | str, min_score: float | str,
                after: tuple[float, str] | None) -> _StreamSource:
        """A source of the entries whose millisecond is within [min_score, max_score]."""
        source = cls(key, partition, after)
        newest, oldest = float(max_score), float(min_score)
        if newest < 0 or oldest > _MAX_MS or newest < oldest:
            source.done = True
        if newest < _MAX_MS:
            source.end = str(math.floor(newest))
        if oldest > 0:
            source.start = str(math.ceil(oldest))
        return source

    @property
    def started(self) -> bool:
        return self.reads > 0

    async def fill(self, redis: Any, n: int) -> None:
        while not self.buf and not self.done:
            rows = await redis.xrevrange(self.key, self.end, self.start, count=n)
            self.reads += 1
            if len(rows) < n:
                self.done = True
            elif rows:
                # the rest of the last millisecond read, then below it next time
                last = _s(rows[-1][0])
                ms = int(last.split("-", 1)[0])
                rows += await redis.xrevrange(self.key, "(" + last, str(ms), count=None)
                if ms == 0 or (self.start != "-" and ms - 1 < int(self.start)):
                    self.done = True
                self.end = str(ms - 1)
            for entry_id, fields in rows:
                eid = _s(entry_id)
                score = float(int(eid.split("-", 1)[0]))
                # (an entry without a run id, which no Baton code writes, names no run: a listing drops it)
                run_id = _s(fields.get(b"r", fields.get("r", b"")))
                if _covered(self.after, score, run_id):
                    continue
                self.buf.append((score, run_id, eid))
            self.buf.sort(key=lambda e: (e[0], e[1]))  # pop() from the end = newest first

    def drop(self, pipe: Any, entry: _Entry) -> None:
        """Remove an entry of a run that no longer exists."""
        pipe.xdel(self.key, entry[2])


@dataclass
class Page:
    """One page of a listing."""

    runs: list[Run]
    next_cursor: str | None
    has_more: bool
    scanned: int
    #: for each run of ``runs``, the cursor that continues right after it (a long job resumes mid-page)
    positions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunIndex:
    """A per-partition index of runs that listings page through, newest first."""

    key: Callable[[Partition], str]  #: the index's sorted set in one partition (runtime/keys.py)
    by_creation: bool  #: scored by creation time, so created_before/after bound the scan
    #: the index's stream in one partition, read besides the sorted set (a project's index)
    stream: Callable[[Partition], str] | None = None

    @staticmethod
    def of_project(project: str) -> RunIndex:
        """Every run of a project, by creation time: the stream, and the sorted set of runs created
        before the index was a stream."""
        return RunIndex(lambda p: p.project_runs(project), True, lambda p: p.project_index(project))

    @staticmethod
    def of_status(status: str) -> RunIndex:
        """Runs in one terminal status, by the time they entered it."""
        return RunIndex(lambda p: p.status(status), False)


async def list_runs(
    baton: Baton, index: RunIndex, fltr: RunFilter, limit: int, cursor: str | None, scan_limit: int,
    partial: PartialRead | None = None,
) -> Page:
    """A page of runs from a per-partition run index. With ``partial``, a partition whose master does
    not answer is left out of the page (and noted there) instead of failing it: a listing on Redis
    Cluster goes on while one master is down (its runs are missing from the page meanwhile)."""
    redis = baton.redis
    after = decode_cursor(cursor) if cursor else None
    max_score: float | str = "+inf"
    min_score: float | str = "-inf"
    if after is not None:
        max_score = after[0]
    if fltr.created_before_ms is not None and index.by_creation:
        max_score = min(fltr.created_before_ms, max_score) if after is not None else fltr.created_before_ms
    if fltr.created_after_ms is not None and index.by_creation:
        min_score = fltr.created_after_ms
    sources: list[_Source | _StreamSource] = [_Source(index.key(p), p.index, max_score, min_score, after)
                                              for p in baton.keys.partitions]
    if index.stream is not None:
        sources += [_StreamSource.bounded(index.stream(p), p.index, max_score, min_score, after)
                    for p in baton.keys.partitions]
    if partial is not None:
        sources = [s for s in sources if not partial.skips(baton.keys.partitions[s.partition])]

    async def fill(size: Callable[[_Source | _StreamSource], int]) -> None:
        """Refill every empty source; with ``partial``, a partition that fails is left out."""
        nonlocal sources
        for s in list(sources):
            if s.buf or s not in sources:
                continue
            try:
                await s.fill(redis, size(s))
            except Exception as exc:
                if partial is None:
                    raise
                partial.failed(baton.keys.partitions[s.partition], exc)
                sources = [other for other in sources if other.partition not in partial.unanswered]
    chunk = min(max(limit * 2, 50), 500)
    matched: list[tuple[float, str]] = []
    scanned = 0
    last: tuple[float, str] | None = None
    leftover = False  # candidates taken from the index but not examined (the page filled up first)
    while len(matched) < limit and scanned < scan_limit:
        batch: list[tuple[_Entry, _Source | _StreamSource]] = []
        while len(batch) < chunk and scanned + len(batch) < scan_limit:
            await fill(lambda s: chunk)
            live = [s for s in sources if s.buf]
            if not live:
                break
            best = max(live, key=lambda s: (s.buf[-1][0], s.buf[-1][1]))
            batch.append((best.buf.pop(), best))
        if not batch:
            break
        pipe = redis.pipeline(transaction=False)
        with_input = fltr.payload_contains is not None
        for (_score, run_id, _ref), source in batch:
            pipe.hmget(baton.keys.partitions[source.partition].run(run_id), *FIELDS)
            if with_input:  # the input is in its own key; read it only to filter on it
                pipe.get(baton.keys.partitions[source.partition].input(run_id))
        raw = await pipe.execute()
        rows = [[*raw[2 * i], raw[2 * i + 1]] for i in range(len(batch))] if with_input else raw
        gone = []
        for i, ((entry, source), values) in enumerate(zip(batch, rows, strict=True)):
            scanned += 1
            score, run_id, _ref = entry
            last = (score, run_id)
            names = (*FIELDS, "input") if with_input else FIELDS
            f = {name: (_s(v) if v is not None else None) for name, v in zip(names, values, strict=True)}
            if f["status"] is None and f["job"] is None:
                gone.append((entry, source))
            elif fltr.matches(f):
                matched.append((score, run_id))
                if len(matched) == limit:
                    leftover = i < len(batch) - 1
                    break
        if gone:
            pipe = redis.pipeline(transaction=False)
            for entry, source in gone:
                source.drop(pipe, entry)
            await pipe.execute()
    found = await read_runs(redis, baton.keys, [run_id for _score, run_id in matched])
    runs = [r for r in found if r]
    positions = [encode_cursor(score, run_id) for (score, run_id), r in zip(matched, found, strict=True) if r]
    await fill(lambda s: 1 if s.started else chunk)
    more_left = leftover or any(s.buf for s in sources)
    next_cursor = encode_cursor(last[0], last[1]) if more_left and last is not None else None
    return Page(runs, next_cursor, next_cursor is not None, scanned, positions)


def parse_ms(value: str, name: str, code: str = "invalid_parameter", expected: str = "an ISO-8601 date-time") -> int:
    """An ISO-8601 time with a zone as epoch ms; ApiError 400 ``code`` naming ``name`` otherwise (a value
    of a JSON body: ``invalid_body``); ``expected`` says what the value may be."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, code, f"{name} must be {expected}") from None
    if parsed.tzinfo is None:
        raise ApiError(400, code, f"{name} must carry a time zone (e.g. Z)")
    return int(parsed.timestamp() * 1000)


def scoped_key(project: str, key: str) -> str:
    """Idempotency and event keys of a project other than "default" are stored scoped to it."""
    return key if project == "default" else f"{project}/{key}"


def filter_from(project: str, values: dict[str, Any], view: str = "native",
                code: str = "invalid_parameter") -> RunFilter:
    """The listing filter of ``project`` from query parameters or a JSON body, whose status and
    triggered_by words are ``view``'s vocabulary; ApiError 400 ``code`` when invalid (a body's:
    ``invalid_body``)."""
    label = None
    if values.get("label"):
        name, _, value = str(values["label"]).partition("=")
        label = (name, value)
    payload = values.get("payload_contains")
    if isinstance(payload, str):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise ApiError(400, code, "payload_contains must be a JSON object") from None
    if payload is not None and not isinstance(payload, dict):
        raise ApiError(400, code, "payload_contains must be a JSON object")
    if values.get("metadata_value") is not None and not values.get("metadata_key"):
        raise ApiError(400, code, "metadata_value needs metadata_key")
    after, before = (None if values.get(name) is None else parse_ms(values[name], name, code)
                     for name in ("created_after", "created_before"))
    statuses = None
    if values.get("status"):
        taken = status_words(view)
        if unknown := [s for s in values["status"] if s not in taken]:
            raise ApiError(400, code, f"status {unknown[0]!r} is not a status of the {view} view (it takes "
                                      f"{', '.join(taken)})")
        statuses = statuses_for(view, list(values["status"]))
    triggered = triggers_for(view, values["triggered_by"]) if values.get("triggered_by") else None
    return RunFilter(
        project=project, statuses=statuses, job=values.get("job"), queue=values.get("queue"),
        tag=values.get("tag"), label=label, metadata_key=values.get("metadata_key"),
        metadata_value=values.get("metadata_value"), batch_id=values.get("batch_id"),
        triggered_by=triggered, created_after_ms=after, created_before_ms=before,
        payload_contains=payload,
        idempotency_key=scoped_key(project, values["idempotency_key"]) if values.get("idempotency_key") else None,
    )
