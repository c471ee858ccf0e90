"""Every API request answers within api_request_timeout_s, event streams excepted.

Before, on a Redis that takes connections and never answers (a dropped route), a request waited out the
client's own timeouts, 10 s a read and 7 tries: GET /v1/runs answered 503 after 71.6 s, longer than most
gateways and clients wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.chaos.proxy import FaultProxy
from tests.api.conftest import serving
from tests.api.test_sse import read_events

DEADLINE_S = 1.0


async def test_a_request_on_a_black_holed_redis_answers_503_by_its_deadline(
        make_app: Any, api_keys: dict[str, str], proxy: FaultProxy) -> None:
    # Given a node whose API reaches Redis through a proxy, and a run it created
    async with serving(make_app, api_keys, redis_url=proxy.url, api_request_timeout_s=DEADLINE_S) as api:
        run_id = await api.trigger("echo", {"x": 1})
        # When the route to Redis goes dead (nothing closed, no answer)
        proxy.blackhole()
        try:
            loop = asyncio.get_running_loop()
            for path in (f"/v1/runs/{run_id}", "/v1/runs"):
                began = loop.time()
                status, body = await api.call("GET", path)
                took = loop.time() - began
                # Then each request answers 503 unavailable (retry later) by its deadline
                assert (status, body["code"]) == (503, "unavailable"), body
                assert DEADLINE_S <= took < DEADLINE_S + 2, took
        finally:
            proxy.heal()
        # And once Redis answers again, so does the API
        assert (await api.run(run_id))["id"] == run_id


async def test_an_event_stream_outlives_the_request_deadline(make_app: Any, api_keys: dict[str, str]) -> None:
    # Given a node whose requests must answer within 0.5 s, and a run whose steps wait for the test
    async with serving(make_app, api_keys, api_request_timeout_s=0.5) as api:
        run_id = await api.trigger("steps", {"n": 3, "gate": "slow"})

        async def open_slowly(item: tuple[str | None, str, Any]) -> None:
            _eid, event, data = item
            if event == "status" and data["data"].get("status") == "executing":
                await asyncio.sleep(1.0)  # the stream is idle past the deadline
                api.gates.open("slow-0")
            if event == "progress" and int(data["data"]["current"]) < 3:
                api.gates.open(f"slow-{data['data']['current']}")

        # When its event stream is read, for longer than the deadline
        events = await asyncio.wait_for(read_events(api, f"/v1/runs/{run_id}/stream", on_event=open_slowly), 20)
    # Then the stream followed the run to its end
    assert [e[1] for e in events][-2:] == ["status", "end"], events
    assert events[-1][2] == {"run_id": run_id, "status": "completed"}


async def test_a_body_that_does_not_arrive_answers_408_and_blames_no_one_else(
        make_app: Any, api_keys: dict[str, str]) -> None:
    # Given a node whose requests must answer within 1 s
    async with serving(make_app, api_keys, api_request_timeout_s=DEADLINE_S) as api:
        host, port = api.url.removeprefix("http://").split(":")
        # When a client sends a trigger's headers and the first byte of its 100-byte body, then stalls
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /v1/jobs/echo/trigger HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                     f"{api_keys['alpha']}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
                     .encode())
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S + 5)
            body = await asyncio.wait_for(reader.read(4096), 5)
        finally:
            writer.close()
        # Then it answers 408 request_timeout by its deadline, saying the body did not arrive: not a
        # 503 that sends the client to retry a Redis that is fine
        assert head.startswith(b"HTTP/1.1 408 "), head
        assert b'"code":"request_timeout"' in body and b"body did not arrive" in body, body
        # And the API goes on answering
        assert (await api.call("GET", "/v1/runs"))[0] == 200
