"""The intake reads its stream on a held connection (raw replies); when that connection is lost, the
call is made again through the client, which parses the reply its own way. Both shapes must read the
same: a Redis that stalled past the socket timeout once crashed the intake on the second
("unhashable type: 'slice'"), spending its restart budget."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.direct_calls import DirectCalls
from runtime.stream_entries import stream_entries


@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_raw_and_a_client_parsed_read_give_the_same_entries(make_app: Any, protocol: int) -> None:
    # Given a stream with entries, one of them trimmed after it was read once (nil fields)
    app = make_app(redis_url=f"{make_app().settings.redis_url}?protocol={protocol}")
    stream, group = f"{app.settings.prefix}:shapes:{protocol}", "g"
    await app.redis.xgroup_create(stream, group, id="0", mkstream=True)
    ids = [await app.redis.xadd(stream, {"job": "hello", "input": f'{{"n": {i}}}'}) for i in range(3)]
    command = ("XREADGROUP", "GROUP", group, "c", "COUNT", 10, "STREAMS", stream)
    await app.redis.execute_command(*command, ">")  # (all pending for c now)
    await app.redis.xdel(stream, ids[1])
    # When the pending entries are read raw (a held connection) and through the client (its retry)
    direct = DirectCalls(app.redis)
    raw = await direct.execute(*command, "0")
    await direct.release()
    parsed = await app.redis.execute_command(*command, "0")
    # Then both read the same entries, fields as a dict of bytes, the trimmed one empty
    expected = [(ids[0].decode(), {b"job": b"hello", b"input": b'{"n": 0}'}), (ids[1].decode(), {}),
                (ids[2].decode(), {b"job": b"hello", b"input": b'{"n": 2}'})]
    assert direct.raw and stream_entries(raw) == expected
    assert stream_entries(parsed) == expected
    # And once nothing is pending, both read nothing
    await app.redis.xack(stream, group, *ids)
    direct = DirectCalls(app.redis)
    assert stream_entries(await direct.execute(*command, "0")) == []
    await direct.release()
    assert stream_entries(await app.redis.execute_command(*command, "0")) == []
