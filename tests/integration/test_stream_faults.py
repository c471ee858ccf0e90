"""Bad stream entries under a running node: each one is rejected alone, the rest flows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

import actors.intake as intake_actor
from runtime import Baton, RunContext
from tests.nodes import eventually, running_node


def echo_app(make_app: Any, **overrides: Any) -> Baton:
    """An app with one job, ``echo``, that returns its input."""
    app: Baton = make_app(**overrides)

    @app.job()
    async def echo(ctx: RunContext, payload: Any) -> Any:
        return payload

    return app


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


#: Entries that once crashed the intake (issue 12, D1), with the field each rejection must name.
POISON: list[tuple[dict[Any, Any], str]] = [
    ({b"\xff\xfe": b"x", b"job": b"echo", b"input": b"{}"}, "bad_encoding"),
    ({"job": "echo", "delay": "1e308"}, "bad_delay"),
    ({"job": "echo", "max_attempts": "1" * 23}, "bad_max_attempts"),
    ({"job": "echo", "idempotency_key": "k", "idempotency_ttl": "0.0001"}, "bad_idempotency_ttl"),
    ({"job": "echo", "delay_ms": "nan"}, "bad_delay_ms"),
    ({"job": "echo", "timeout": "inf"}, "bad_timeout"),
    ({"job": "echo", "timeout": "1e17"}, "bad_timeout"),
    ({"job": "echo", "ttl": "-1"}, "bad_ttl"),
    ({"job": "echo", "priority": "9" * 30}, "bad_priority"),
    ({"job": "echo", "run_at": "99999999999999999"}, "bad_run_at"),
    ({"job": "echo", "run_at": "²"}, "bad_run_at"),
    ({"job": "echo", "run_at": "tomorrow"}, "bad_run_at"),
    ({"job": "echo", "delay": "1e15"}, "bad_delay"),
    ({"job": "echo", "metadata": "[1]"}, "bad_metadata"),
    ({"job": "echo", "debounce_key": "d", "debounce_window": "1e300"}, "bad_debounce_window"),
    ({"job": "echo", "id": "abc\n"}, "bad_id"),
    # stored, but never rendered again: orjson encodes at most 255 levels
    ({"job": "echo", "input": "[" * 300 + "]" * 300}, "bad_json"),
]


async def test_poison_entries_are_rejected_one_by_one_and_the_batch_flows(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app)

    keys = app.keys
    # Given one batch where every poison entry sits between two valid ones
    good: list[str] = []
    bad: dict[str, str] = {}
    for i, (fields, reason) in enumerate(POISON):
        good.append((await redis.xadd(keys.submit_stream, {"job": "echo", "input": str(i)})).decode())
        bad[(await redis.xadd(keys.submit_stream, fields)).decode()] = reason
    good.append((await redis.xadd(keys.submit_stream, {"job": "echo", "input": "99"})).decode())
    # When a node reads them
    async with running_node(app) as node:
        runs = [await app.wait_for(rid, 15) for rid in good]

        async def all_rejected() -> Any:
            entries = await redis.xrange(keys.rejected_stream)
            return entries if len(entries) >= len(bad) else None

        rejected = await eventually(all_rejected, 15)
        pending = await redis.xpending(keys.submit_stream, keys.intake_group)
        restarts = node.metrics.actor_restarts.labels(actor="intake")._value.get()
    # Then every valid entry became a completed run
    assert [r.output for r in runs] == [*range(len(POISON)), 99]
    # And every poison entry was rejected with a reason naming its field, and acknowledged
    assert {f[b"entry_id"].decode(): f[b"reason"].decode() for _, f in rejected} == bad
    assert pending["pending"] == 0
    # And the intake never crashed
    assert restarts == 0
    for rid in bad:
        assert await app.get_run(rid) is None


async def test_an_unexpected_error_rejects_its_entry_only(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app)

    keys = app.keys
    # Given a corrupt job-registry record: reading the registry raises (not a SubmissionError)
    await redis.hset(keys.registry, "broken", b"{not json")
    async with running_node(app) as node:
        # When an entry that makes the intake read the registry sits between valid ones
        before = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": "1"})).decode()
        poison = (await redis.xadd(keys.submit_stream, {"job": "broken", "input": "{}"})).decode()
        after = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": "2"})).decode()
        runs = [await app.wait_for(rid, 15) for rid in (before, after)]
        rejected = await eventually(lambda: redis.xrange(keys.rejected_stream), 15)
        restarts = node.metrics.actor_restarts.labels(actor="intake")._value.get()
    # Then the entries around it became runs and it alone was rejected as internal
    assert [r.output for r in runs] == [1, 2]
    assert [(f[b"entry_id"].decode(), f[b"reason"]) for _, f in rejected] == [(poison, b"internal")]
    # And the intake never crashed
    assert restarts == 0


async def test_the_rejected_stream_keeps_a_bounded_prefix_and_the_size(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app, max_input_bytes=1000)

    keys = app.keys
    # Given an entry of 2 MB of input and a 100 KB unknown field
    big = '"' + "x" * 2_000_000 + '"'
    entry = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": big, "z" * 100: "y" * 100_000})).decode()
    # When the intake rejects it
    async with running_node(app):
        [(_, fields)] = await eventually(lambda: redis.xrange(keys.rejected_stream), 15)
    # Then the rejected record is a few KiB: prefixes of the fields, the original size and a mark
    assert fields[b"entry_id"].decode() == entry
    assert sum(len(k) + len(v) for k, v in fields.items()) < 16 * 1024
    assert int(fields[b"size"]) == len("job") + len("echo") + len("input") + len(big) + 100 + 100_000
    assert fields[b"truncated"] == b"1"
    kept = orjson.loads(fields[b"fields"])
    assert kept["job"] == "echo" and kept["input"] == big[:1024]


async def test_a_duplicate_entry_is_counted_logged_and_its_id_finds_the_run(
    make_app: Any, redis: Any, caplog: Any,
) -> None:
    app = echo_app(make_app)

    keys = app.keys
    # Given two entries with one idempotency key and two with one explicit id, in one batch
    first = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": "1", "idempotency_key": "k"})).decode()
    second = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": "2", "idempotency_key": "k"})).decode()
    await redis.xadd(keys.submit_stream, {"job": "echo", "input": "3", "id": "mine"})
    fourth = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": "4", "id": "mine"})).decode()
    # When a node reads them
    caplog.set_level(logging.INFO, logger="baton.intake")
    async with running_node(app) as node:
        kept = await app.wait_for(first, 15)
        mine = await app.wait_for("mine", 15)
        dedup = node.metrics.intake_deduplicated

        def counted() -> tuple[float, float] | None:
            # the runs may finish before the intake has noted the batch's duplicates (it starts
            # the runs leased to its node first): wait for the note, the aliases come with it
            got = (dedup.labels(reason="idempotency_key")._value.get(), dedup.labels(reason="id")._value.get())
            return got if got == (1, 1) else None
        counts = await eventually(counted, 10)
    # Then the earlier entry of each pair won
    assert kept.output == 1 and mine.output == 3
    # And each later entry's own id resolves to the run it was deduplicated to
    via_second = await app.get_run(second)
    via_fourth = await app.get_run(fourth)
    assert via_second is not None and via_second.id == first
    assert via_fourth is not None and via_fourth.id == "mine"
    # And both were counted and logged with the run that holds them
    assert counts == (1, 1)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "baton.intake")
    assert f"stream entry {second} created nothing: run {first}" in logged
    assert f"stream entry {fourth} created nothing: run mine" in logged
    # And the alias lasts as long as the idempotency window
    alias = keys.partition_of_run(second).alias(second)
    assert 0 < await redis.pttl(alias) <= app.settings.idempotency_ttl_s * 1000


async def test_a_draining_node_finishes_the_entries_it_read(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app)

    keys = app.keys
    async with running_node(app) as node:
        # Given entries this node's consumer has read but not yet handled (as a drain finds a batch)
        # (added and read in one transaction, so the node's own blocked read cannot take them first)
        pipe = redis.pipeline(transaction=True)
        for i in range(5):
            pipe.xadd(keys.submit_stream, {"job": "echo", "input": str(i)})
        pipe.xreadgroup(keys.intake_group, node.settings.node_id, {keys.submit_stream: ">"}, count=5)
        *added, got = await pipe.execute()
        ids = [e.decode() for e in added]
        assert [e[0].decode() for e in got[0][1]] == ids
        # When the node drains (on leaving the block)
    # Then it created their runs before it stopped, and left nothing pending
    for rid in ids:
        assert await app.get_run(rid) is not None
    assert (await redis.xpending(keys.submit_stream, keys.intake_group))["pending"] == 0


async def test_a_queue_no_job_or_setting_names_is_rejected(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app, queues="default,extra")

    keys = app.keys
    # Given entries for a queue listed in the settings and for an invented one
    listed = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": "1", "queue": "extra"})).decode()
    invented = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": "2", "queue": "made-up-7"})).decode()
    async with running_node(app):
        run = await app.wait_for(listed, 15)
        rejected = await eventually(lambda: redis.xrange(keys.rejected_stream), 15)
    # Then the listed queue is used and the invented one is rejected with a reason that says why
    assert run.queue == "extra" and run.status == "completed"
    [(_, fields)] = rejected
    assert (fields[b"entry_id"].decode(), fields[b"reason"]) == (invented, b"unknown_queue")
    assert b"made-up-7" in fields[b"error"]
    # And the queue never entered the stored queue set
    members = await redis.smembers(keys.partitions[0].queues)
    assert b"made-up-7" not in members


async def test_client_triggers_out_of_range_raise_naming_the_field_and_store_nothing(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app)

    cases: list[tuple[dict[str, Any], str]] = [
        ({"delay": 1e300}, "bad_delay"), ({"ttl": 1e300}, "bad_ttl"), ({"timeout": 1e17}, "bad_timeout"),
        ({"idempotency_key": "k", "idempotency_ttl": 1e300}, "bad_idempotency_ttl"),
        ({"idempotency_key": "k", "idempotency_ttl": 0.0001}, "bad_idempotency_ttl"),
        ({"delay": 1e15}, "bad_delay"), ({"run_at": 10**17}, "bad_run_at"),
        ({"max_attempts": 10**23}, "bad_max_attempts"), ({"metadata": {"n": 10**30}}, "bad_metadata"),
        ({"priority": 10**30}, "bad_priority"), ({"queue": "made-up"}, "unknown_queue"),
        ({"metadata": {"a": nested(250)}}, "bad_metadata"),
    ]
    # Given out-of-range options, when each is triggered, then a SubmissionError names the field
    for options, reason in cases:
        try:
            await app.trigger("echo", 1, **options)
        except Exception as exc:  # noqa: BLE001 - the type is what is checked
            assert type(exc).__name__ == "SubmissionError" and exc.reason == reason, (options, repr(exc))  # type: ignore[attr-defined]
        else:
            raise AssertionError(f"{options} was accepted")
    # And nothing was stored
    assert await redis.xlen(app.keys.partitions[0].project_index()) == 0


async def test_a_starting_intake_handles_all_it_read_before_not_just_one_batch(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app, intake_batch=2, intake_claim_idle_ms=120_000)
    keys = app.keys
    # Given more entries than one batch, read by this node's consumer in an earlier life
    await redis.xgroup_create(keys.submit_stream, keys.intake_group, id="0", mkstream=True)
    ids = [(await redis.xadd(keys.submit_stream, {"job": "echo", "input": str(i)})).decode() for i in range(5)]
    await redis.xreadgroup(keys.intake_group, app.settings.node_id, {keys.submit_stream: ">"}, count=5)
    # When the node starts again, then every one of them becomes a run (not only the first batch)
    async with running_node(app):
        runs = [await app.wait_for(rid, 10) for rid in ids]
    assert [r.output for r in runs] == [0, 1, 2, 3, 4]


async def test_entries_of_a_consumer_that_stopped_reading_move_though_its_heartbeat_beats(
    make_app: Any, redis: Any, monkeypatch: Any,
) -> None:
    # (a short silence limit for the test; by default a consumer is gone after 10 s without a read)
    monkeypatch.setattr(intake_actor, "SILENT_CONSUMER_MS", 1500)
    app = echo_app(make_app, intake_claim_idle_ms=120_000)
    keys = app.keys
    beating = True

    async def beat() -> None:  # a node that keeps its heartbeat while its intake reads nothing
        n = 0
        while beating:
            n += 1
            await redis.hset(keys.node("ghost"), "heartbeat_at", n)
            await asyncio.sleep(0.05)

    heart = asyncio.create_task(beat())
    try:
        async with running_node(app):
            # Given entries read by that node's consumer, which then never reads again
            pipe = redis.pipeline(transaction=True)
            for i in range(3):
                pipe.xadd(keys.submit_stream, {"job": "echo", "input": str(i)})
            pipe.xreadgroup(keys.intake_group, "ghost", {keys.submit_stream: ">"}, count=3)
            *added, _ = await pipe.execute()
            # When it has been silent past the limit, then this node creates their runs (not after 120 s)
            runs = [await app.wait_for(e.decode(), 15) for e in added]
    finally:
        beating = False
        await heart
    assert [r.output for r in runs] == [0, 1, 2]


async def test_an_entry_whose_run_is_named_otherwise_finds_it_from_the_moment_it_exists(
    make_app: Any, redis: Any,
) -> None:
    # Given entries whose runs are not named after them, among 4 partitions: one with its own id,
    # dependents of a finished run (routed to its partition, <entry>~k, unless already there), and
    # dependents of a run that does not exist (refused)
    app = echo_app(make_app, partitions=4)
    keys = app.keys
    seen: list[tuple[str, bytes | None]] = []
    create_leasing = app.create_leasing

    async def checked(specs: Any, *args: Any, **kwargs: Any) -> Any:
        # what get_run(entry) finds at the moment the runs are created
        for spec in specs:
            entry = spec.entry_id
            seen.append((entry, await redis.get(keys.partition_of_run(entry).alias(entry))))
        return await create_leasing(specs, *args, **kwargs)

    app.create_leasing = checked  # type: ignore[method-assign]
    async with running_node(app):
        parent = await app.trigger("echo", 0)
        assert (await app.wait_for(parent, 15)).status == "completed"
        own = (await redis.xadd(keys.submit_stream, {"job": "echo", "input": "1", "id": "named-run"})).decode()
        children = [(await redis.xadd(keys.submit_stream, {"job": "echo", "input": "2",
                                                           "depends_on": orjson.dumps([parent]).decode()})).decode()
                    for _ in range(8)]
        orphans = [(await redis.xadd(keys.submit_stream, {"job": "echo", "input": "3",
                                                          "depends_on": '["no-such-run"]'})).decode()
                   for _ in range(8)]
        assert (await app.wait_for("named-run", 15)).output == 1

        async def all_refused() -> bool:
            return int(await redis.xlen(keys.rejected_stream)) == 8

        await eventually(all_refused, 15)
        aliased = dict(seen)
        # Then the alias of each renamed entry was there before its run was created
        assert aliased[own] == b"named-run"
        routed = [entry for entry in children if aliased[entry] is not None]
        assert routed and all(aliased[e] == f"{e}~".encode() + aliased[e][len(e) + 1:] for e in routed), seen
        for entry in routed:
            run = await eventually(lambda e=entry: app.get_run(e), 15)
            assert run.id == aliased[entry].decode()
        # And the refused entries have no alias left behind
        assert [await redis.exists(keys.partition_of_run(e).alias(e)) for e in orphans] == [0] * 8
