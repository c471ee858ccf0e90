"""signal_send, state_set, token_create and token_settle on their own, and settle's delivery when a
signal or token wait begins: raw keys, status codes, fencing."""

from __future__ import annotations

import orjson

from runtime.errors import StatusCode
from runtime.statuses import RETENTION_MARGIN_MS
from tests.lua.support import Lua, text


def _wait(kind: str, key: str, index: int = 0) -> str:
    return orjson.dumps({"kind": kind, "key": key, "deadline": None, "step": f"__wait_{kind}#{index}",
                         "index": index}).decode()


async def test_a_signal_is_buffered_then_taken_by_the_wait_that_begins(lua: Lua) -> None:
    # Given an executing run and two signals "go" and one "other" sent meanwhile
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    p = lua.part
    assert [await lua.scripts.send_signal(run_id, n, d, 3) for n, d in (("go", "1"), ("other", "2"), ("go", "3"))] \
        == [0, 0, 0]
    assert [text(e) for e in await lua.redis.lrange(p.signals(run_id), 0, -1)] == ["go\n1", "other\n2", "go\n3"]
    # and a fourth over the cap of three is refused
    assert await lua.scripts.send_signal(run_id, "go", "4", 3) == StatusCode.SIGNAL_BUFFER_FULL
    # When its attempt ends in a wait for "go"
    assert await lua.finish(claimed, "waiting", output_json=_wait("signal", "go")) == "queued"
    # Then the oldest "go" was taken into the wait step, and the run is queued again without a wait
    step = orjson.loads(await lua.redis.hget(p.steps(run_id), "__wait_signal#0"))
    assert (step["status"], step["output"]) == ("completed", 1)
    assert [text(e) for e in await lua.redis.lrange(p.signals(run_id), 0, -1)] == ["other\n2", "go\n3"]
    run = await lua.run(run_id)
    assert run["status"] == "queued" and "wait_kind" not in run and run["charged"] == "0"


async def test_a_signal_to_a_waiting_run_completes_its_wait_and_a_finished_run_refuses(lua: Lua) -> None:
    # Given a run waiting for "go" (nothing buffered)
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    assert await lua.finish(claimed, "waiting", output_json=_wait("signal", "go")) == "waiting"
    # When a signal of another name comes, it is kept; then "go" is delivered into the wait
    assert await lua.scripts.send_signal(run_id, "other", '"x"', 10) == 0
    assert (await lua.run(run_id))["status"] == "waiting"
    assert await lua.scripts.send_signal(run_id, "go", '{"big":12345678901234567890}', 10) == 1
    # Then the step holds the data as sent (never decoded: big numbers stay exact), and the run is queued
    raw = text(await lua.redis.hget(lua.part.steps(run_id), "__wait_signal#0"))
    assert '"output":{"big":12345678901234567890}' in raw
    assert (await lua.run(run_id))["status"] == "queued"
    assert await lua.zscore(lua.part.waiting, run_id) is None
    # And once it finished, signals are refused; unknown runs are not found
    again = await lua.claim_one(run_id)
    assert await lua.finish(again, "completed") == "completed"
    assert await lua.scripts.send_signal(run_id, "go", "1", 10) == StatusCode.ALREADY_FINISHED
    assert await lua.scripts.send_signal("no-such-run", "go", "1", 10) == StatusCode.NOT_FOUND
    # and the buffer expires with the run
    kept_ms = lua.settings.finished_ttl_s * 1000 + RETENTION_MARGIN_MS
    assert 0 < await lua.redis.pttl(lua.part.signals(run_id)) <= kept_ms


async def test_a_beginning_wait_takes_what_arrived_in_the_running_attempt(lua: Lua) -> None:
    # Given an executing run with a buffered signal and a completed token
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    p = lua.part
    assert await lua.scripts.send_signal(run_id, "go", '"s"', 10) == 0
    assert await lua.scripts.create_token(run_id, claimed.token, "wpt_t", 60_000, "[]", 120_000)
    assert await lua.scripts.settle_token("wpt_t", "completed", '"t"', "api") == (0, run_id)
    take = lua.scripts.take_message
    # Then a stale lease takes nothing, and a wait for what has not arrived finds nothing
    assert await take(run_id, "stale", "signal", "go", "__wait_signal#0", 0) == -1
    assert await take(run_id, claimed.token, "signal", "other", "__wait_signal#0", 0) == 0
    # When the lease holder's waits begin, each takes its message, recorded as its step; the run executes on
    assert await take(run_id, claimed.token, "signal", "go", "__wait_signal#0", 0) == ("completed", '"s"', False)
    assert await take(run_id, claimed.token, "token", "wpt_t", "__wait_token#1", 1) == ("completed", '"t"', False)
    assert await lua.redis.llen(p.signals(run_id)) == 0
    steps = {text(k): orjson.loads(v) for k, v in (await lua.redis.hgetall(p.steps(run_id))).items()}
    assert {k: (s["status"], s["output"]) for k, s in steps.items()} == {
        "__wait_signal#0": ("completed", "s"), "__wait_token#1": ("completed", "t")}
    run = await lua.run(run_id)
    assert run["status"] == "executing" and run["current_step_index"] == "1"
    # and with a pause requested, the taking says so (the handler parks the run at this step boundary)
    assert await lua.scripts.pause(run_id) == 2
    assert await lua.scripts.send_signal(run_id, "go", "2", 10) == 0
    assert await take(run_id, claimed.token, "signal", "go", "__wait_signal#2", 2) == ("completed", "2", True)


async def test_state_and_tokens_are_fenced_and_a_token_is_created_once(lua: Lua) -> None:
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    p = lua.part
    # a stale token writes nothing
    assert await lua.scripts.set_state(run_id, "stale", "1") == -1
    assert await lua.scripts.create_token(run_id, "stale", "wpt_a", 1000, "[]", 5000) is None
    assert not await lua.redis.exists(p.query_state(run_id), p.token("wpt_a"))
    # the lease holder's do
    assert await lua.scripts.set_state(run_id, claimed.token, '{"n":1}') > 0
    assert orjson.loads(await lua.redis.get(p.query_state(run_id)))["state"] == {"n": 1}
    first = await lua.scripts.create_token(run_id, claimed.token, "wpt_a", 60_000, '["t"]', 120_000)
    assert first is not None and first[1] - first[0] == 60_000
    # creating it again (a replay) answers the token as it is
    assert await lua.scripts.create_token(run_id, claimed.token, "wpt_a", 1000, "[]", 120_000) == first
    token = {text(k): text(v) for k, v in (await lua.redis.hgetall(p.token("wpt_a"))).items()}
    assert (token["run_id"], token["status"], token["tags"], token["project"]) == (run_id, "waiting", '["t"]',
                                                                                    "default")
    assert 60_000 < await lua.redis.pttl(p.token("wpt_a")) <= 60_000 + lua.settings.finished_ttl_s * 1000
    assert await lua.zscore(p.tokens, "wpt_a") == first[0]


async def test_a_token_settles_once_and_reaches_its_wait_before_or_after_it_begins(lua: Lua) -> None:
    p = lua.part
    early, late = await lua.create_one(), await lua.create_one()
    c_early, c_late = await lua.claim_one(early), await lua.claim_one(late)
    assert await lua.scripts.create_token(early, c_early.token, "wpt_e", 60_000, "[]", 120_000)
    assert await lua.scripts.create_token(late, c_late.token, "wpt_l", 60_000, "[]", 120_000)
    # Given one token completed before its run waits: stored; a second settlement is refused
    assert await lua.scripts.settle_token("wpt_e", "completed", '"yes"', "api") == (0, early)
    assert await lua.scripts.settle_token("wpt_e", "completed", '"no"', "api") == StatusCode.EXISTS
    assert await lua.scripts.settle_token("wpt_e", "expired", "null", "api") == StatusCode.EXISTS
    # When its run's attempt ends in the wait, the data is delivered at once
    assert await lua.finish(c_early, "waiting", output_json=_wait("token", "wpt_e")) == "queued"
    step = orjson.loads(await lua.redis.hget(p.steps(early), "__wait_token#0"))
    assert (step["status"], step["output"]) == ("completed", "yes")
    # Given the other run already waiting: expiring its token times its wait out, and the run resumes
    assert await lua.finish(c_late, "waiting", output_json=_wait("token", "wpt_l")) == "waiting"
    assert await lua.scripts.settle_token("wpt_l", "expired", "null", "api") == (1, late)
    step = orjson.loads(await lua.redis.hget(p.steps(late), "__wait_token#0"))
    assert step["status"] == "timed_out" and (await lua.run(late))["status"] == "queued"
    assert await lua.scripts.settle_token("wpt_l", "completed", "1", "callback") == StatusCode.WRONG_STATUS
    assert await lua.scripts.settle_token("wpt_none", "completed", "1", "api") == StatusCode.NOT_FOUND


async def test_a_take_sent_twice_answers_what_the_first_recorded(lua: Lua) -> None:
    # Given a wait that took a buffered signal whose data holds the record's own field names
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    data = '{"a":12345678901234567,"error":null,"started_at":1,"x":",\\"output\\":"}'
    assert await lua.scripts.send_signal(run_id, "go", data, 10) == 0
    take = lua.scripts.take_message
    first = await take(run_id, claimed.token, "signal", "go", "__wait_signal#0", 0)
    assert first == ("completed", data, False)
    # When the same take arrives again (its reply lost, the call tried again)
    again = await take(run_id, claimed.token, "signal", "go", "__wait_signal#0", 0)
    # Then it answers the same, byte for byte, and nothing was taken or recorded twice
    assert again == first
    assert await lua.redis.llen(lua.part.signals(run_id)) == 0
    events = await lua.redis.xrange(lua.part.events(run_id))
    assert sum(1 for _, f in events if f.get(b"type") == b"step") == 1


async def test_a_wait_completed_in_lua_keeps_its_position(lua: Lua) -> None:
    # Given a run waiting for "go", whose waiting step the handler's side wrote with its position (a branch's)
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    p = lua.part
    waiting = {"name": "__wait_signal#b1", "index": 3, "status": "waiting", "output": {"key": "go", "deadline": None},
               "error": None, "started_at": 1, "completed_at": None, "at": ["fan#1", 0]}
    await lua.redis.hset(p.steps(run_id), "__wait_signal#b1", orjson.dumps(waiting))
    spec = orjson.dumps({"kind": "signal", "key": "go", "deadline": None, "step": "__wait_signal#b1", "index": 3})
    assert await lua.finish(claimed, "waiting", output_json=spec.decode()) == "waiting"
    # When the signal completes the wait
    assert await lua.scripts.send_signal(run_id, "go", '"data"', 10) == 1
    # Then the completed record still says where the step stands
    done = orjson.loads(await lua.redis.hget(p.steps(run_id), "__wait_signal#b1"))
    assert (done["status"], done["output"], done["at"]) == ("completed", "data", ["fan#1", 0])
    # And a wait taken at once (message_take) records the position it is given
    again = await lua.claim_one(run_id)
    assert await lua.scripts.send_signal(run_id, "go", '"more"', 10) == 0
    taken = await lua.scripts.take_message(run_id, again.token, "signal", "go", "__wait_signal#4", 4, '[4]')
    assert taken == ("completed", '"more"', False)
    assert orjson.loads(await lua.redis.hget(p.steps(run_id), "__wait_signal#4"))["at"] == [4]
