"""runs_create on its own: queued vs delayed, idempotency, optional fields, wake-up."""

from __future__ import annotations

import orjson

from runtime.api.views import VIEWS, render
from runtime.ranges import RANGES
from runtime.records import Run, iso, read_runs
from tests.lua.support import Listener, Lua, priority_of

OPTIONAL_FIELDS = ("labels", "tags", "metadata", "concurrency_key", "idempotency_key", "version", "entry_id")


async def test_due_run_is_queued_in_its_ready_set(lua: Lua) -> None:
    # Given a spec without delay
    spec = lua.spec(input={"n": 1}, priority=5, max_attempts=4, timeout_s=12)
    # When it is created
    [(run_id, code)] = await lua.create(spec)
    # Then the record is queued with its core fields
    assert (run_id, code) == (spec.id, 1)
    run = await lua.run(run_id)
    assert "id" not in run and run["job"] == "work" and run["queue"] == "default"  # the key names the run
    assert orjson.loads(run["input"]) == {"n": 1}
    assert run["status"] == "queued"
    assert run["priority"] == "5"
    # counters and updated_at are written when they first change (readers default them)
    assert "attempt" not in run and "charged" not in run and "updated_at" not in run
    assert (run["max_attempts"], run["timeout_ms"]) == ("4", "12000")
    assert "backoff" not in run  # the default: stored as nothing (includes/backoff.lua)
    assert "source" not in run  # the default, client: stored as nothing (runtime/submission.py source_field)
    # ready since its creation, due at once: neither is stored (both read as created_at)
    assert "ready_at" not in run and "scheduled_at" not in run
    # And it sits in its queue's ready set, scored by priority then ready time
    assert priority_of(await lua.zscore(lua.part.ready("default"), run_id)) == 5
    assert await lua.members(lua.part.queues) == {"default"}
    assert await lua.zscore(lua.part.delayed, run_id) is None


async def test_priority_zero_and_the_client_source_are_stored_as_nothing_and_read_back(lua: Lua) -> None:
    # Given a run of priority 0 from the client API and one of priority 0 from the HTTP API
    plain, api = lua.spec(), lua.spec(source="api")
    await lua.create(plain, api)
    # Then neither stores its priority, only the second its source
    stored = [await lua.run(s.id) for s in (plain, api)]
    assert ["priority" in r for r in stored] == [False, False]
    assert [r.get("source") for r in stored] == [None, "api"]
    # And both read as priority 0, from their sources
    runs = [Run.from_hash(r, run_id=s.id) for r, s in zip(stored, (plain, api), strict=True)]
    assert [(r.priority, r.source, r.triggered_by) for r in runs] == [(0, "client", "client"), (0, "api", "api")]
    # And a run without a stored priority, given back by its node, is queued again as priority 0,
    # behind a run of priority 1 and ahead of one of priority -1
    ahead, behind = lua.spec(priority=1), lua.spec(priority=-1)
    claimed = await lua.claim_one(plain.id)
    await lua.create(ahead, behind)
    assert await lua.finish(claimed, "released") == "queued"
    order = [c.run_id for c in await lua.claim(10)]
    assert order.index(ahead.id) < order.index(plain.id) < order.index(behind.id)


async def test_delayed_run_goes_to_the_delayed_set(lua: Lua) -> None:
    # Given a spec with a 60 s delay on its own queue
    spec = lua.spec(queue="later", delay_s=60)
    # When it is created
    [(run_id, code)] = await lua.create(spec)
    # Then it is delayed, due 60 s after creation, and not runnable
    assert code == 1
    run = await lua.run(run_id)
    assert run["status"] == "delayed"
    assert int(run["scheduled_at"]) - int(run["created_at"]) == 60_000
    assert "ready_at" not in run
    assert await lua.zscore(lua.part.delayed, run_id) == int(run["scheduled_at"])
    assert await lua.redis.exists(lua.part.ready("later")) == 0
    assert await lua.members(lua.part.queues) == set()


async def test_run_at_future_is_delayed_and_past_is_queued(lua: Lua) -> None:
    # Given one run_at an hour ahead and one an hour ago, by the server clock
    now = await lua.now_ms()
    future, past = lua.spec(run_at=now + 3_600_000), lua.spec(run_at=now - 3_600_000)
    # When both are created in one call
    result = await lua.create(future, past)
    # Then the future one is delayed until exactly run_at and the past one is queued now
    assert [code for _, code in result] == [1, 1]
    f, p = await lua.run(future.id), await lua.run(past.id)
    assert f["status"] == "delayed" and int(f["scheduled_at"]) == now + 3_600_000
    assert await lua.zscore(lua.part.delayed, future.id) == now + 3_600_000
    assert p["status"] == "queued" and "scheduled_at" not in p  # due at creation: read as created_at
    assert await lua.zscore(lua.part.ready("default"), past.id) is not None


async def test_zero_delay_is_queued(lua: Lua) -> None:
    # Given a spec with delay 0
    spec = lua.spec(delay_s=0)
    # When it is created
    await lua.create(spec)
    # Then it is runnable at once
    assert (await lua.run(spec.id))["status"] == "queued"
    assert await lua.zmembers(lua.part.ready("default")) == [spec.id]


async def test_existing_id_returns_code_0_and_is_not_touched(lua: Lua) -> None:
    # Given a run created with an explicit id
    [(_, first)] = await lua.create(lua.spec(run_id="fixed-1", input=1, priority=1))
    before = await lua.run("fixed-1")
    # When the same id is created again with other values
    [(run_id, code)] = await lua.create(lua.spec(run_id="fixed-1", input=2, priority=9, delay_s=30))
    # Then code 0 is returned and nothing changed
    assert first == 1 and (run_id, code) == ("fixed-1", 0)
    assert await lua.run("fixed-1") == before
    assert await lua.zmembers(lua.part.ready("default")) == ["fixed-1"]
    assert await lua.redis.exists(lua.part.delayed) == 0


async def test_a_leftover_input_key_without_a_record_does_not_block_creation(lua: Lua) -> None:
    # Given an input key whose record is gone (the two expire together, but not
    # in the same instant) -- the create script uses SET NX on it as its existence check
    await lua.redis.set(lua.part.input("fixed-2"), b'"stale"')
    # When a run with that id is created
    [(run_id, code)] = await lua.create(lua.spec(run_id="fixed-2", input={"fresh": True}))
    # Then it is created, with its own input
    assert (run_id, code) == ("fixed-2", 1)
    run = await lua.run("fixed-2")
    assert run["status"] == "queued" and orjson.loads(run["input"]) == {"fresh": True}


async def test_idempotency_key_returns_the_first_run(lua: Lua) -> None:
    # Given a run created with an idempotency key
    first = lua.spec(input="a", idempotency_key="order-7", idempotency_ttl_s=50)
    [(first_id, code1)] = await lua.create(first)
    idem_key = lua.part.idempotency("work", "order-7")
    # When a second run with another id but the same job and key is created
    second = lua.spec(input="b", idempotency_key="order-7")
    [(second_id, code2)] = await lua.create(second)
    # Then the first run's id comes back with code 2 and no second record exists
    assert (code1, code2) == (1, 2)
    assert second_id == first_id != second.id
    assert await lua.redis.exists(lua.part.run(second.id)) == 0
    assert orjson.loads((await lua.run(first_id))["input"]) == "a"
    assert await lua.zmembers(lua.part.ready("default")) == [first_id]
    # And the key maps to the first run with the requested TTL
    assert await lua.redis.get(idem_key) == first_id.encode()
    assert 0 < await lua.redis.pttl(idem_key) <= 50_000
    assert (await lua.run(first_id))["idempotency_key"] == "order-7"


async def test_idempotency_key_is_scoped_per_job_and_ignores_missing_runs(lua: Lua) -> None:
    # Given a key used by job "work"
    [(work_id, _)] = await lua.create(lua.spec(idempotency_key="k"))
    # When another job uses the same key
    [(other_id, other_code)] = await lua.create(lua.spec("other", idempotency_key="k"))
    # Then it gets its own run
    assert other_code == 1 and other_id != work_id
    # When the first run's record is gone and the key is used again
    await lua.redis.delete(lua.part.run(work_id))
    again = lua.spec(idempotency_key="k")
    [(again_id, again_code)] = await lua.create(again)
    # Then a new run is created and the key now points to it
    assert (again_id, again_code) == (again.id, 1)
    assert await lua.redis.get(lua.part.idempotency("work", "k")) == again.id.encode()


async def test_batch_returns_one_code_per_run_in_order(lua: Lua) -> None:
    # Given an existing run and an idempotency key in use
    [(old_id, _)] = await lua.create(lua.spec(run_id="old"))
    [(keyed_id, _)] = await lua.create(lua.spec(idempotency_key="once"))
    # When one call creates a new run, repeats the old id and repeats the key
    fresh = lua.spec()
    result = await lua.create(fresh, lua.spec(run_id="old"), lua.spec(idempotency_key="once"))
    # Then each run gets its own code, in input order
    assert result == [(fresh.id, 1), (old_id, 0), (keyed_id, 2)]


async def test_optional_fields_are_written_only_when_present(lua: Lua) -> None:
    # Given a bare spec and one with every optional field
    bare = lua.spec()
    full = lua.spec(
        labels={"team": "a"}, tags=["x", "y"], metadata={"m": 1}, concurrency_key="ck",
        idempotency_key="ik", version="v2", entry_id="1-0", extra={"trace": "t1", "weight": 3},
    )
    # When both are created
    await lua.create(bare, full)
    # Then the bare record has none of the optional fields
    plain = await lua.run(bare.id)
    assert not set(OPTIONAL_FIELDS) & set(plain), plain
    assert "trace" not in plain
    # And the full one has each of them with its value, extra fields as strings
    rich = await lua.run(full.id)
    assert orjson.loads(rich["labels"]) == {"team": "a"}
    assert orjson.loads(rich["tags"]) == ["x", "y"]
    assert orjson.loads(rich["metadata"]) == {"m": 1}
    assert (rich["concurrency_key"], rich["idempotency_key"], rich["version"], rich["entry_id"]) == (
        "ck", "ik", "v2", "1-0")
    assert (rich["trace"], rich["weight"]) == ("t1", "3")


async def test_wake_channel_is_published_only_when_a_run_became_ready(lua: Lua) -> None:
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        # Given a subscriber on the wake channel
        # When only delayed runs are created
        await lua.create(lua.spec(delay_s=60), lua.spec(delay_s=120))
        # Then no wake-up is published, only when the first of them is due (the nodes' leasers
        # promote it then: runtime/messages.py, wake_notice)
        assert await wake.messages() == [f"due 60000 {lua.part.prefix}"]
        # When a due run is created with another delayed one in the same call (due after the first one:
        # one due at the very same time, as 60 s is when both calls fall in one millisecond, ties the
        # set's head, which announce_work announces again, harmlessly)
        await lua.create(lua.spec(delay_s=90), lua.spec())
        # Then exactly one wake-up carrying the partition prefix is published
        assert await wake.messages() == [lua.part.prefix]
        # When only existing ids are created again
        await lua.create(lua.spec(run_id="dup"))
        await wake.messages()
        await lua.create(lua.spec(run_id="dup"))
        # Then nothing is published
        assert await wake.messages() == []


async def test_a_call_announces_the_earliest_run_it_adds_only_when_it_comes_first(lua: Lua) -> None:
    def due(ms: int) -> str:
        return f"due {ms} {lua.part.prefix}"

    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        # Given a run due in 100 s, announced
        await lua.create(lua.spec(delay_s=100))
        assert await wake.messages() == [due(100_000)]
        # When one call adds runs due in 120, 60 and 90 s
        await lua.create(lua.spec(delay_s=120), lua.spec(delay_s=60), lua.spec(delay_s=90))
        # Then the one that now comes first is announced, once
        assert await wake.messages() == [due(60_000)]
        # When one call adds only runs due after the first
        await lua.create(lua.spec(delay_s=150), lua.spec(delay_s=200))
        # Then nothing is announced (the nodes know of an earlier one)
        assert await wake.messages() == []
        # When queued runs with a TTL are added (the TTL set is a due set of its own)
        await lua.create(lua.spec(ttl_s=30), lua.spec(ttl_s=10))
        # Then the earliest expiry is announced
        assert await wake.messages() == [lua.part.prefix, due(10_000)]


async def test_idempotency_keys_of_different_jobs_never_collide(lua: Lua) -> None:
    # Given job "a:b" with idempotency key "c"
    [(first_id, _)] = await lua.create(lua.spec("a:b", idempotency_key="c"))
    # When job "a" uses idempotency key "b:c"
    spec = lua.spec("a", idempotency_key="b:c")
    [(run_id, code)] = await lua.create(spec)
    # Then it gets its own run, not the run of another job
    assert (run_id, code) == (spec.id, 1) != (first_id, 2)


async def test_a_typical_record_stays_listpack_encoded(lua: Lua) -> None:
    # Given a run with a 100-byte input, labels and a concurrency key (what most runs look like)
    run_id = await lua.create_one(input={"pad": "x" * 90}, labels={"team": "growth"}, concurrency_key="c-42")
    # Then every record value is short enough for Redis's compact encoding (the input is kept apart)
    encoding = await lua.redis.object("encoding", lua.part.run(run_id))
    assert encoding in (b"listpack", b"ziplist"), encoding
    assert await lua.redis.get(lua.part.input(run_id)) == b'{"pad":"' + b"x" * 90 + b'"}'


async def test_scripts_are_loaded_again_after_a_flush(lua: Lua) -> None:
    # Given a server that lost its script cache (as after a failover to a fresh replica)
    await lua.create_one()
    await lua.redis.script_flush()
    # When a script is called again, then it is loaded and runs
    run_id = await lua.create_one(input={"again": True})
    assert (await lua.run(run_id))["status"] == "queued"


async def test_every_range_bound_is_stored_and_renders(lua: Lua) -> None:
    # Given runs at the far end of every numeric range
    far = RANGES
    specs = [
        lua.spec(priority=int(far["priority"].high), max_attempts=int(far["max_attempts"].high),
                 timeout_s=far["timeout"].high, ttl_s=far["ttl"].high, delay_s=far["delay"].high,
                 idempotency_key="edge", idempotency_ttl_s=far["idempotency_ttl"].high),
        lua.spec(priority=int(far["priority"].low), run_at=int(far["run_at"].high), ttl_s=far["ttl"].low,
                 idempotency_key="edge-low", idempotency_ttl_s=far["idempotency_ttl"].low,
                 timeout_s=far["timeout"].low),
        lua.spec(debounce={"key": "d", "window": far["debounce_window"].high, "max_delay": far["debounce_max"].high}),
        lua.spec(debounce={"key": "e", "window": far["debounce_window"].low, "mode": "leading"}),
    ]
    # When they are created
    created = await lua.create(*specs)
    # Then each is new, its keys carry a valid expiry, and each record reads back and renders in every view
    assert [code for _, code in created] == [1, 1, 1, 1]
    assert 0 < await lua.redis.pttl(lua.part.idempotency("work", "edge")) <= far["idempotency_ttl"].high * 1000
    for run_id, _ in created:
        [run] = await read_runs(lua.redis, lua.keys, [run_id])
        assert run is not None
        for view in VIEWS:
            orjson.dumps(render(run, view))
    [late] = await read_runs(lua.redis, lua.keys, [created[1][0]])
    assert late is not None and iso(late.scheduled_at_ms) == "9999-12-31T23:59:59.000Z"
