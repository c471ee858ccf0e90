"""Server-sent events: a run's timeline and its streamed chunks, live.

Both streams read Redis streams with blocking XREAD (one connection per open
stream while it blocks, at most ``BLOCK_MS`` at a time), send every entry as
an SSE event whose ``id`` is the Redis entry id, and end with an ``end`` event
once the run has finished. A client that reconnects with ``Last-Event-ID``
(or ``?last_event_id=``) continues after that entry. A comment line keeps idle
connections open through proxies.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from ..connection import LONGEST_BLOCK_MS
from ..errors import RedisUnavailable
from ..keys import Partition
from ..records import TERMINAL_STATUSES, iso, stored_int, stored_json, text, timeline_entry
from ..timeline import Dedup, event_id_key, read_timeline
from .errors import ApiError, redis_transient
from .routing import DEADLINE, STREAM, Req
from .views import event_view

__all__ = ["stream_chunks", "stream_events"]

#: How long one read of a stream blocks (the longest any blocking command of Baton's may)
BLOCK_MS = LONGEST_BLOCK_MS
KEEPALIVE_S = 15.0
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ENTRY_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
#: each part of a Redis stream id is an unsigned 64-bit integer
_ID_PART_MAX = 2**64 - 1
log = logging.getLogger("baton.api")


_s = text


def last_event_id(req: Req) -> str:
    """Where to resume: the Last-Event-ID header or ?last_event_id=, else the beginning. Checked whole
    here, before any header is sent: an id Redis would refuse later could only break the stream."""
    value = req.request.headers.get("Last-Event-ID") or req.params.get("last_event_id") or "0-0"
    match = _ENTRY_ID.match(value)
    ms, seq = (int(match[1]), int(match[2])) if match else (-1, -1)
    # the streams resume *after* the id ("(id"): the very last id has nothing after it that Redis can name
    if not (0 <= ms <= _ID_PART_MAX and 0 <= seq <= _ID_PART_MAX) or (ms, seq) == (_ID_PART_MAX, _ID_PART_MAX):
        raise ApiError(400, "invalid_parameter", "Last-Event-ID must be an event id this stream sent (ms-seq, "
                       f"each part at most {_ID_PART_MAX})")
    return f"{ms}-{seq}"


async def _open(req: Req) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
        "X-Request-Id": req.request_id,
    })
    req.request[STREAM] = resp  # from here on an error ends this response; it never starts a second one
    deadline = req.request.get(DEADLINE)
    if deadline is not None:  # a stream lasts as long as its client stays
        deadline.reschedule(None)
    await resp.prepare(req.request)
    await resp.write(b"retry: 2000\n\n")
    return resp


def _frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    # the event name comes from a stored field: one that could break the framing is sent as "message"
    name = event if _EVENT_NAME.match(event) else "message"
    return f"{head}event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def _failed(req: Req, resp: web.StreamResponse, exc: Exception) -> web.StreamResponse:
    """End a started stream after an error with an ``error`` event (the status line is long gone);
    the client reconnects with Last-Event-ID as after any drop."""
    if isinstance(exc, RedisError | RedisUnavailable) and redis_transient(exc):
        log.warning("request %s: Redis failed during an event stream: %s", req.request_id, type(exc).__name__)
        code, message = "unavailable", "Redis is unavailable; reconnect with Last-Event-ID"
    else:
        log.exception("request %s: event stream failed", req.request_id)
        code, message = "internal_error", "internal error (see the server log for this request id)"
    try:
        await resp.write(_frame("error", {"error": message, "code": code, "request_id": req.request_id}))
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away as well
    return resp


def _fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


async def _status(redis: Any, p: Partition, run_id: str) -> str | None:
    status = await redis.hget(p.run(run_id), "status")
    return _s(status) if status is not None else None


async def stream_events(req: Req, p: Partition, run_id: str) -> web.StreamResponse:
    """The run's timeline (status, attempts, logs, progress, steps ...) until it finishes.

    The run is first marked watched (run_watch), so its status changes are written to the stream
    from then on and the blocking read wakes for them; what happened before is read merged with
    what its record implies (runtime/timeline.py). Each event is sent once, however it is found."""
    after = last_event_id(req)
    redis, key = req.baton.redis, p.events(run_id)
    resp = await _open(req)
    keepalive = time.monotonic() + KEEPALIVE_S
    sent = Dedup()

    async def send(events: list[dict[str, Any]]) -> str | None:
        """Send the events not sent yet; the terminal status when one was among them."""
        nonlocal after
        for event in events:
            after = event["id"] if event_id_key(event["id"]) > event_id_key(after) else after
            if not sent.first_time(event):
                continue
            await resp.write(_frame(event["type"], event_view(run_id, event), event["id"]))
            data = event["data"]
            if event["type"] == "status" and isinstance(data, dict) and data.get("status") in TERMINAL_STATUSES:
                return str(data["status"])
        return None

    try:
        await req.baton.scripts.watch(run_id)
        stream_at = after  # the stream is read on from here (derived ids are valid stream ids too)
        while True:
            events = await read_timeline(redis, p, run_id, after, count=500)
            if (status := await send(events)) is not None:
                await resp.write(_frame("end", {"run_id": run_id, "status": status}))
                return resp
            if len(events) < 500:
                break
        stream_at = max(stream_at, after, key=event_id_key)
        while not req.state.stopping.is_set():
            rows = await redis.xread({key: stream_at}, count=500, block=BLOCK_MS)
            if rows:
                stream_at = _s(rows[0][1][-1][0])
                if (status := await send([timeline_entry(eid, raw) for eid, raw in rows[0][1]])) is not None:
                    await resp.write(_frame("end", {"run_id": run_id, "status": status}))
                    return resp
                continue
            status = await _status(redis, p, run_id)
            if status is None or status in TERMINAL_STATUSES:
                # finished (its status event may have been trimmed from the capped timeline) or expired
                await send(await read_timeline(redis, p, run_id, after, count=10_000))
                await resp.write(_frame("end", {"run_id": run_id, "status": status or "expired"}))
                return resp
            if time.monotonic() >= keepalive:
                await resp.write(b": keepalive\n\n")
                keepalive = time.monotonic() + KEEPALIVE_S
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    except Exception as exc:  # noqa: BLE001 - any failure after the headers ends the stream, see _failed
        return await _failed(req, resp, exc)
    return resp


async def stream_chunks(req: Req, p: Partition, run_id: str) -> web.StreamResponse:
    """What the handler streams with ``ctx.stream(chunk)``, as produced, until the run finishes."""
    after = last_event_id(req)
    redis, ckey, ekey = req.baton.redis, p.chunks(run_id), p.events(run_id)
    # watched, its terminal status is written to its timeline, which the read below also blocks on
    await req.baton.scripts.watch(run_id)
    last = await redis.xrevrange(ekey, count=1)
    ev_after = _s(last[0][0]) if last else "0-0"
    resp = await _open(req)
    keepalive = time.monotonic() + KEEPALIVE_S

    async def send(rows: list[Any]) -> str:
        nonlocal after
        for eid_raw, raw in rows:
            f = _fields(raw)
            eid = _s(eid_raw)
            chunk = stored_json(f.get("data"))
            await resp.write(_frame("chunk", {"id": eid, "run_id": run_id, "chunk": chunk,
                                              "created_at": iso(stored_int(f.get("ts")) or 0)}, eid))
            after = eid
        return after

    async def finish(status: str) -> web.StreamResponse:
        await send(await redis.xrange(ckey, f"({after}" if after != "0-0" else "-", "+"))
        await resp.write(_frame("end", {"run_id": run_id, "status": status}))
        return resp

    try:
        status = await _status(redis, p, run_id)
        if status is None or status in TERMINAL_STATUSES:
            return await finish(status or "expired")
        while not req.state.stopping.is_set():
            rows = await redis.xread({ckey: after, ekey: ev_after}, count=500, block=BLOCK_MS)
            ended: str | None = None
            for stream_key, entries in rows or []:
                if _s(stream_key) == ckey:
                    await send(entries)
                    continue
                for eid_raw, raw in entries:
                    ev_after = _s(eid_raw)
                    f = _fields(raw)
                    if f.get("type") == "status":
                        data = stored_json(f.get("data"))
                        if isinstance(data, dict) and data.get("status") in TERMINAL_STATUSES:
                            ended = str(data["status"])
            if ended is not None:
                return await finish(ended)
            if not rows:
                status = await _status(redis, p, run_id)
                if status is None or status in TERMINAL_STATUSES:
                    return await finish(status or "expired")
                if time.monotonic() >= keepalive:
                    await resp.write(b": keepalive\n\n")
                    keepalive = time.monotonic() + KEEPALIVE_S
    except (ConnectionResetError, ConnectionError):
        pass
    except Exception as exc:  # noqa: BLE001 - any failure after the headers ends the stream, see _failed
        return await _failed(req, resp, exc)
    return resp
