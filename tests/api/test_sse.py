"""Server-sent event streams: a run's timeline live until it ends, resumable; chunks as produced."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from runtime.context import RunContext
from tests.api.conftest import ApiNode
from tests.nodes import eventually


async def read_events(api: ApiNode, path: str, project: str = "alpha", last_event_id: str | None = None,
                      stop_after: int | None = None, on_event: Any = None) -> list[tuple[str | None, str, Any]]:
    """(id, event, data) of every SSE event until the stream ends (or stop_after events)."""
    headers = {**api.auth(project), **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    out: list[tuple[str | None, str, Any]] = []
    async with api.http.get(api.url + path, headers=headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        eid, event, data = None, "message", []
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if data:
                    item = (eid, event, orjson.loads("\n".join(data)))
                    out.append(item)
                    if on_event is not None:
                        await on_event(item)
                    if stop_after is not None and len(out) >= stop_after:
                        return out
                eid, event, data = None, "message", []
            elif line.startswith("id: "):
                eid = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
    return out


async def test_stream_follows_a_run_live_and_ends_when_it_ends(api: ApiNode) -> None:
    # Given a run that will report progress over three gated steps
    run_id = await api.trigger("steps", {"n": 3, "gate": "sse"})
    opened: list[int] = []

    async def open_next(item: tuple[str | None, str, Any]) -> None:
        # each step's gate opens only once the previous step's progress arrived on the stream: live delivery
        _eid, event, data = item
        if event == "status" and data["data"].get("status") == "executing":
            api.gates.open("sse-0")
            opened.append(0)
        if event == "progress":
            current = int(data["data"]["current"])
            if current < 3:
                api.gates.open(f"sse-{current}")
                opened.append(current)

    # When its event stream is read
    events = await asyncio.wait_for(read_events(api, f"/v1/runs/{run_id}/stream", on_event=open_next), 20)
    kinds = [e[1] for e in events]
    # Then it saw status, steps and progress as they happened, and ended with the run
    assert opened == [0, 1, 2]
    assert kinds.count("progress") == 3 and kinds.count("step") == 3
    assert kinds[-2:] == ["status", "end"] and events[-1][2] == {"run_id": run_id, "status": "completed"}
    assert all(e[0] for e in events[:-1]) and events[-1][0] is None
    # And every event carries Strait's event shape
    assert set(events[0][2]) == {"id", "run_id", "type", "level", "message", "data", "created_at"}


async def test_stream_resumes_after_last_event_id(api: ApiNode) -> None:
    # Given a finished run and the first two events of its stream
    run_id = await api.trigger("checkpointer", None)
    await api.wait_status(run_id)
    everything = await read_events(api, f"/v1/runs/{run_id}/stream")
    first_two = await read_events(api, f"/v1/runs/{run_id}/stream", stop_after=2)
    # When the stream is opened again with Last-Event-ID of the second
    rest = await read_events(api, f"/v1/runs/{run_id}/stream", last_event_id=first_two[1][0])
    # Then it continues right after it, to the end
    assert first_two + rest == everything and len(rest) >= 2
    # And a malformed Last-Event-ID is a 400
    status, err = await api.call("GET", f"/v1/runs/{run_id}/stream", headers={"Last-Event-ID": "nope"})
    assert status == 400 and err["code"] == "invalid_parameter"


async def test_stream_of_a_canceled_waiting_run_ends(api: ApiNode) -> None:
    # Given a run waiting for an event, and a reader of its stream
    run_id = await api.trigger("waiter", {"key": "never-sent"})
    await api.wait_status(run_id, "waiting")
    reader = asyncio.create_task(read_events(api, f"/v1/runs/{run_id}/stream"))
    await asyncio.sleep(0.2)
    assert not reader.done()
    # When the run is canceled
    await api.call("DELETE", f"/v1/runs/{run_id}")
    events = await asyncio.wait_for(reader, 10)
    # Then the stream ends with the canceled status
    assert events[-1][1:] == ("end", {"run_id": run_id, "status": "canceled"})


async def test_chunks_are_delivered_as_they_are_produced(api: ApiNode) -> None:
    # Given a run that streams three chunks, each once the test opens its gate
    words = ["alpha", "beta", "gamma"]
    run_id = await api.trigger("ai", {"words": words, "gate": "chunk"})
    await api.wait_status(run_id, "executing")
    opened_at: dict[str, float] = {}
    latencies: list[float] = []

    def produce(word: str) -> None:
        opened_at[word] = time.monotonic()
        api.gates.open(f"chunk-{word}")

    async def on_event(item: tuple[str | None, str, Any]) -> None:
        # the next chunk is produced only after the previous one arrived: nothing can be batched
        _eid, event, data = item
        if event == "chunk":
            latencies.append(time.monotonic() - opened_at[data["chunk"]])
            index = words.index(data["chunk"])
            if index + 1 < len(words):
                produce(words[index + 1])

    reader = asyncio.create_task(read_events(api, f"/v1/runs/{run_id}/stream/chunks", on_event=on_event))
    await asyncio.sleep(0.1)
    produce("alpha")
    # When the chunk stream is read
    events = await asyncio.wait_for(reader, 20)
    # Then each chunk arrived, in order, while the run was still producing (each next chunk was produced
    # only after the reader had the previous one), then end
    assert [e[2]["chunk"] for e in events if e[1] == "chunk"] == words
    assert events[-1][1:] == ("end", {"run_id": run_id, "status": "completed"})
    assert len(latencies) == 3 and max(latencies) < 2.0, latencies
    # And the stream resumes after a given chunk
    rest = await read_events(api, f"/v1/runs/{run_id}/stream/chunks", last_event_id=events[0][0])
    assert [e[2]["chunk"] for e in rest if e[1] == "chunk"] == ["beta", "gamma"]


async def test_stream_of_another_projects_run_is_not_found(api: ApiNode) -> None:
    # Given a run of project alpha
    run_id = await api.trigger("echo", 1)
    await api.wait_status(run_id)
    # When beta opens its streams
    for path in (f"/v1/runs/{run_id}/stream", f"/v1/runs/{run_id}/stream/chunks"):
        status, body = await api.call("GET", path, project="beta")
        # Then it is a 404, as for a run that does not exist
        assert status == 404 and body["code"] == "not_found"


async def test_stream_writes_at_once_without_a_flush(make_app: Any) -> None:
    # Given a leased run and its context, with no flush loop running (as between two flushes)
    app = make_app()

    @app.job()
    async def talker(ctx: RunContext, payload: Any) -> None:
        return None

    run_id = await app.trigger("talker")
    p = app.keys.partition_of_run(run_id)
    [claimed], _ = await app.scripts.claim(p, "node-x", 1, ["default"], ["talker"], 0)
    ctx = await RunContext.for_claim(app, claimed)
    # When the handler streams two chunks and logs a line
    ctx.stream({"token": "hel"})
    ctx.stream({"token": "lo"})
    ctx.log.info("not flushed yet")

    async def written() -> Any:
        rows = await app.redis.xrange(p.chunks(run_id))
        return rows if len(rows) == 2 else None

    # Then the chunks are in Redis, in order, by themselves, while the log line still waits for a flush
    rows = await eventually(written, 5)
    assert [orjson.loads(f[b"data"]) for _, f in rows] == [{"token": "hel"}, {"token": "lo"}]
    assert [e["type"] for e in await app.get_events(run_id)] == ["status"]


async def _raw_get(api: ApiNode, path: str, headers: dict[str, str]) -> bytes:
    """The bytes of a whole HTTP/1.1 exchange, read from a plain socket until the server closes it."""
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close",
             *(f"{k}: {v}" for k, v in {**api.auth(), **headers}.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return data


def _dechunk(body: bytes) -> bytes:
    """A chunked body decoded; fails unless it is well formed and terminated by the zero-length chunk."""
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert body == b"\r\n", body[:200]
            return out
        out, body = out + body[:size], body[size:]
        assert body.startswith(b"\r\n")
        body = body[2:]


async def test_event_ids_beyond_redis_range_are_400_before_the_stream(api: ApiNode) -> None:
    # Given a finished run
    run_id = await api.trigger("echo", {"x": 1})
    await api.wait_status(run_id)
    too_big = str(2**64)  # 20 digits: matches the id pattern but is past Redis's 64-bit parts
    for given in (f"{too_big}-0", f"0-{too_big}", "99999999999999999999-99999999999999999999",
                  f"{2**64 - 1}-{2**64 - 1}"):
        for path in (f"/v1/runs/{run_id}/stream", f"/v1/runs/{run_id}/stream/chunks"):
            # When the stream is asked to resume after it, by header and by query parameter
            for raw in (await _raw_get(api, path, {"Last-Event-ID": given}),
                        await _raw_get(api, f"{path}?last_event_id={given}", {})):
                # Then the answer is one 400 with the JSON error, and no event stream was started
                head, _, body = raw.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 400 "), raw[:300]
                assert raw.count(b"HTTP/1.1 ") == 1 and b"text/event-stream" not in head
                assert b"Last-Event-ID" in body and b'"code":"invalid_parameter"' in body, body
    # And the largest id Redis can resume after is still accepted
    raw = await _raw_get(api, f"/v1/runs/{run_id}/stream", {"Last-Event-ID": f"{2**64 - 1}-{2**64 - 2}"})
    assert raw.startswith(b"HTTP/1.1 200 ") and b"event: end" in _dechunk(raw.partition(b"\r\n\r\n")[2])


async def test_an_error_after_the_headers_ends_the_stream_without_a_second_status(api: ApiNode, redis: Any) -> None:
    # Given a finished run whose timeline key holds a value of the wrong type (Redis answers XREAD/XRANGE
    # with an error only once the stream has started)
    run_id = await api.trigger("echo", {"x": 1})
    await api.wait_status(run_id)
    p = api.app.keys.partition_of_run(run_id)
    for path, key in ((f"/v1/runs/{run_id}/stream", p.events(run_id)),
                      (f"/v1/runs/{run_id}/stream/chunks", p.chunks(run_id))):
        saved = await redis.dump(key)
        await redis.delete(key)
        await redis.set(key, "not a stream")
        # When the stream is read with a plain HTTP client
        raw = await _raw_get(api, path, {})
        await redis.delete(key)
        if saved is not None:
            await redis.restore(key, 0, saved)
        head, _, body = raw.partition(b"\r\n\r\n")
        # Then there is exactly one status line (the 200 of the stream), and the chunked body is well formed,
        # ending with an error event instead of a second response written into the stream
        assert head.startswith(b"HTTP/1.1 200 ") and raw.count(b"HTTP/1.1 ") == 1, raw[:500]
        events = _dechunk(body)
        assert b"event: error" in events, events
