"""runs_finish on its own: fencing, terminal states, retry backoff, dead letter, release."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from runtime.jobs import Backoff, JobOptions
from runtime.records import Run, record_attempts
from runtime.scripts import Claimed, Outcome, Scripts
from runtime.statuses import RETENTION_MARGIN_MS
from runtime.submission import DEFAULT_BACKOFF
from tests.lua.support import Listener, Lua, priority_of

ERROR = orjson.dumps({"message": "boom", "type": "ValueError", "stack": "..."}).decode()


async def leased(lua: Lua, node: str = "node-a", charged_before: int = 0, job: str = "work", **options: Any) -> Claimed:
    """A new run of ``job``, claimed by ``node`` as if ``charged_before`` attempts were already charged."""
    run_id = await lua.create_one(job, **options)
    if charged_before:
        await lua.redis.hset(lua.part.run(run_id), "charged", charged_before)
    return await lua.claim_one(run_id, node=node, job=job, queue=options.get("queue", "default"))


def attempts(run: dict[str, str]) -> list[dict[str, Any]]:
    """The ended attempts of a run record (the completing one derived, as every reader does)."""
    return record_attempts(run)


async def test_wrong_token_is_fenced_off_and_nothing_is_written(lua: Lua) -> None:
    # Given a run leased by node-a
    c = await leased(lua)
    record = await lua.run(c.run_id)
    score = await lua.zscore(lua.part.leased, c.run_id)
    stale = c._replace(token="node-b/1")
    # When another token reports it completed
    status = await lua.finish(stale, "completed", output_json='"x"')
    # Then -1 is returned and nothing was written anywhere
    assert status == -1
    assert await lua.run(c.run_id) == record
    assert await lua.zscore(lua.part.leased, c.run_id) == score
    assert await lua.redis.exists(lua.part.status("completed")) == 0


async def test_second_outcome_for_the_same_attempt_is_fenced_off(lua: Lua) -> None:
    # Given an attempt already reported completed
    c = await leased(lua)
    assert await lua.finish(c, "completed", output_json="1") == "completed"
    record = await lua.run(c.run_id)
    # When the same token reports a failure afterwards
    again = await lua.finish(c, "failed", error_json=ERROR)
    # Then it is rejected and the record is unchanged
    assert again == -1
    assert await lua.run(c.run_id) == record


async def test_a_null_output_is_not_written_and_reads_as_null(lua: Lua) -> None:
    # Given two leased runs
    none, some = await leased(lua), await leased(lua)
    # When one completes with a null output and the other with a value, in one call
    done = await lua.scripts.finish(lua.part, [Outcome(none.run_id, none.token, "completed"),
                                               Outcome(some.run_id, some.token, "completed", output_json="[1]")])
    assert [status for _, status in done] == ["completed", "completed"]
    # Then the null one's record has no output field, and both read as their outputs
    first, second = await lua.run(none.run_id), await lua.run(some.run_id)
    assert "output" not in first and second["output"] == "[1]"
    assert Run.from_hash(first, run_id=none.run_id).output is None
    assert Run.from_hash(second, run_id=some.run_id).output == [1]


async def test_completed_is_terminal_with_output_ttl_and_index(lua: Lua) -> None:
    # Given a leased run
    c = await leased(lua, node="node-9")
    # When it completes with an output
    status = await lua.finish(c, "completed", output_json='{"sum": 5}')
    # Then it is completed with its output and an expiry of the finished TTL; the last lease's
    # fields stay in the record but readers see no lease, and the completion as its last update
    assert status == "completed"
    run = await lua.run(c.run_id)
    assert run["status"] == "completed"
    assert orjson.loads(run["output"]) == {"sum": 5}
    assert "error" not in run and "next_retry_at" not in run
    view = Run.from_hash(run, run_id=c.run_id)
    assert (view.lease_node, view.lease_expires_at_ms) == (None, None)
    finished = int(run["finished_at"])
    assert view.updated_at_ms == view.heartbeat_at_ms == view.finished_at_ms == finished
    assert view.started_at_ms == c.claimed_at_ms
    ttl_ms = lua.settings.finished_ttl_s * 1000 + RETENTION_MARGIN_MS  # (the keys outlive the retention)
    assert ttl_ms - 5000 < await lua.redis.pttl(lua.part.run(c.run_id)) <= ttl_ms
    # And it is indexed by finish time, out of the leased and concurrency sets
    assert await lua.zscore(lua.part.status("completed"), c.run_id) == int(run["finished_at"])
    assert await lua.zscore(lua.part.leased, c.run_id) is None
    assert await lua.redis.exists(lua.part.job_leases("work")) == 0
    # And one attempt is recorded
    [a] = attempts(run)
    assert a == {"number": 1, "status": "completed", "started_at": c.claimed_at_ms,
                 "finished_at": int(run["finished_at"]), "worker_id": "node-9", "error": None}
    # And the record keeps Redis's compact encoding while it is kept: nothing past the listpack
    # value limit was written (one attempt's JSON would have made it a hashtable, 4x larger)
    assert await lua.redis.object("encoding", lua.part.run(c.run_id)) in (b"listpack", b"ziplist")


async def test_a_run_completed_on_a_later_attempt_lists_every_attempt_once(lua: Lua) -> None:
    # Given a run whose first attempt failed and whose second one completes
    first = await leased(lua, node="node-1")
    assert await lua.finish(first, "failed", error_json=ERROR) == "delayed"
    await lua.redis.zadd(lua.part.delayed, {first.run_id: 0})
    await lua.scripts.promote(lua.part)
    await lua.next_ms(first.claimed_at_ms)
    second = await lua.claim_one(first.run_id, node="node-2")
    assert await lua.finish(second, "completed", output_json="1") == "completed"
    # Then both attempts read back in order, the completing one derived from the record
    run = await lua.run(first.run_id)
    assert [(a["number"], a["status"], a["worker_id"]) for a in attempts(run)] == [
        (1, "failed", "node-1"), (2, "completed", "node-2")]
    # And the run started with its first attempt; the first attempt's error and retry time went
    assert "error" not in run and "next_retry_at" not in run
    view = Run.from_hash(run, run_id=first.run_id)
    assert view.started_at_ms == first.claimed_at_ms < second.claimed_at_ms
    assert view.error is None and view.next_retry_at_ms is None


@pytest.mark.parametrize(
    ("kind", "expected_ms"),
    [("fixed", [1000, 1000, 1000, 1000]), ("linear", [1000, 2000, 3000, 3500]),
     ("exponential", [1000, 2000, 3500, 3500])],
)
async def test_failure_with_attempts_left_is_delayed_by_backoff(lua: Lua, kind: str, expected_ms: list[int]) -> None:
    # Given a job with a backoff of 1 s initial, capped at 3.5 s, without jitter, and 10 attempts
    policy = Backoff(kind=kind, initial_s=1, max_s=3.5, jitter=0)  # type: ignore[arg-type]
    lua.jobs["bk"] = JobOptions(backoff=policy, max_attempts=10)
    for charged, expected in enumerate(expected_ms, start=1):
        # When the attempt charged as number `charged` fails
        c = await leased(lua, job="bk", charged_before=charged - 1)
        status = await lua.finish(c, "failed", error_json=ERROR)
        # Then the run is delayed until now + the backoff for that attempt
        assert status == "delayed"
        run = await lua.run(c.run_id)
        due = int(run["next_retry_at"])
        assert due - int(run["updated_at"]) == expected == policy.delay_s(charged) * 1000, (kind, charged)
        assert run["status"] == "delayed"
        assert await lua.zscore(lua.part.delayed, c.run_id) == due
        assert orjson.loads(run["error"])["message"] == "boom"
        assert not {"lease_token", "lease_node", "lease_expires_at"} & set(run)
        assert await lua.zscore(lua.part.leased, c.run_id) is None
        assert c.run_id not in await lua.members(lua.part.job_leases("bk"))


async def test_jitter_shortens_the_delay_by_the_random_fraction(lua: Lua, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given exponential backoff of 2 s with jitter 0.5 and a fixed random value of 0.5
    policy = Backoff(kind="exponential", initial_s=2, max_s=60, jitter=0.5)
    lua.jobs["jit"] = JobOptions(backoff=policy, max_attempts=5)
    monkeypatch.setattr(random, "random", lambda: 0.5)
    # When the second charged attempt fails
    c = await leased(lua, job="jit", charged_before=1)
    assert await lua.finish(c, "timed_out") == "delayed"
    # Then the delay is 4 s spread down by 4 * 0.5 * 0.5 = 1 s
    run = await lua.run(c.run_id)
    assert int(run["next_retry_at"]) - int(run["updated_at"]) == 3000 == policy.delay_s(2, 0.5) * 1000
    assert attempts(run)[0]["status"] == "timed_out"


async def test_a_run_with_the_default_backoff_stores_none_and_retries_by_it(
        lua: Lua, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a job without a backoff of its own: its runs store none (the default is the generated
    # include backoff.lua, from DEFAULT_BACKOFF), and a fixed random value
    lua.jobs["plain"] = JobOptions(max_attempts=5)
    monkeypatch.setattr(random, "random", lambda: 0.5)
    c = await leased(lua, job="plain", charged_before=2)
    assert "backoff" not in await lua.run(c.run_id)
    # When its third charged attempt fails, then it waits what DEFAULT_BACKOFF says
    assert await lua.finish(c, "failed", error_json=ERROR) == "delayed"
    run = await lua.run(c.run_id)
    assert int(run["next_retry_at"]) - int(run["updated_at"]) == DEFAULT_BACKOFF.delay_s(3, 0.5) * 1000 == 3600
    assert Run.from_hash(run, run_id=c.run_id).backoff == Run.from_hash(
        {**run, "backoff": DEFAULT_BACKOFF.encoded}, run_id=c.run_id).backoff


async def test_real_jitter_stays_within_its_range(lua: Lua) -> None:
    # Given fixed backoff of 10 s with full jitter
    lua.jobs["jit"] = JobOptions(backoff=Backoff(kind="fixed", initial_s=10, max_s=60, jitter=1), max_attempts=5)
    delays = []
    for _ in range(5):
        # When attempts fail with the wrapper's own random values
        c = await leased(lua, job="jit")
        assert await lua.finish(c, "failed", error_json=ERROR) == "delayed"
        run = await lua.run(c.run_id)
        delays.append(int(run["next_retry_at"]) - int(run["updated_at"]))
    # Then every delay is within [0, 10 s]
    assert all(0 <= d <= 10_000 for d in delays), delays


async def test_exhausted_attempts_go_to_dead_letter(lua: Lua) -> None:
    # Given a run with 2 attempts whose second (last) attempt is executing
    c = await leased(lua, charged_before=1, max_attempts=2)
    # When it fails
    status = await lua.finish(c, "failed", error_json=ERROR)
    # Then it is dead-lettered, indexed and kept for the dead-letter TTL
    assert status == "dead_letter"
    run = await lua.run(c.run_id)
    assert run["status"] == "dead_letter" and "next_retry_at" not in run
    assert orjson.loads(run["error"])["type"] == "ValueError"
    assert await lua.zscore(lua.part.status("dead_letter"), c.run_id) == int(run["finished_at"])
    dlq_ms = lua.settings.dead_letter_ttl_s * 1000 + RETENTION_MARGIN_MS
    assert dlq_ms - 5000 < await lua.redis.pttl(lua.part.run(c.run_id)) <= dlq_ms
    assert await lua.zscore(lua.part.delayed, c.run_id) is None


async def test_permanent_failure_fails_at_once(lua: Lua) -> None:
    # Given a run with attempts left
    c = await leased(lua, max_attempts=5)
    # When it fails permanently
    status = await lua.finish(c, "failed", error_json=ERROR, permanent=True)
    # Then it is failed, not retried
    assert status == "failed"
    run = await lua.run(c.run_id)
    assert run["status"] == "failed" and "next_retry_at" not in run
    assert await lua.zscore(lua.part.status("failed"), c.run_id) is not None
    assert await lua.zscore(lua.part.delayed, c.run_id) is None
    assert await lua.redis.pttl(lua.part.run(c.run_id)) > 0


async def test_released_goes_back_to_ready_uncharged(lua: Lua) -> None:
    # Given a leased run of priority 3
    c = await leased(lua, priority=3)
    assert (await lua.run(c.run_id))["charged"] == "1"
    # When the node releases it (graceful shutdown)
    status = await lua.finish(c, "released")
    # Then it is queued again, the attempt uncharged, ready at release time
    assert status == "queued"
    run = await lua.run(c.run_id)
    assert (run["status"], run["charged"], run["attempt"]) == ("queued", "0", "1")
    assert not {"lease_token", "lease_node", "lease_expires_at"} & set(run)
    assert run["ready_at"] == run["updated_at"]
    assert priority_of(await lua.zscore(lua.part.ready("default"), c.run_id)) == 3
    assert await lua.zscore(lua.part.leased, c.run_id) is None
    assert [a["status"] for a in attempts(run)] == ["released"]
    assert await lua.redis.pttl(lua.part.run(c.run_id)) == -1


async def test_cancel_requested_turns_a_failure_into_canceled(lua: Lua) -> None:
    # Given a leased run with cancellation requested
    c = await leased(lua, max_attempts=5)
    assert await lua.scripts.cancel(c.run_id) == 2
    # When its handler reports a failure
    status = await lua.finish(c, "failed", error_json=ERROR)
    # Then it ends canceled, and the attempt says so
    assert status == "canceled"
    run = await lua.run(c.run_id)
    assert run["status"] == "canceled"
    assert await lua.zscore(lua.part.status("canceled"), c.run_id) is not None
    assert attempts(run)[0]["status"] == "canceled"


async def test_release_after_cancel_requested_ends_canceled(lua: Lua) -> None:
    # Given a leased run with cancellation requested
    c = await leased(lua, max_attempts=5)
    assert await lua.scripts.cancel(c.run_id) == 2
    # When its node shuts down and releases it instead of reporting the cancellation
    status = await lua.finish(c, "released")
    # Then the run ends canceled instead of going back to the queue to run again
    assert status == "canceled"
    run = await lua.run(c.run_id)
    assert run["status"] == "canceled"
    assert await lua.redis.exists(lua.part.ready("default")) == 0
    assert await lua.zscore(lua.part.status("canceled"), c.run_id) is not None


async def test_attempts_list_has_one_record_per_attempt(lua: Lua) -> None:
    # Given a run with 3 attempts and no backoff delay
    lua.jobs["work"] = JobOptions(backoff=Backoff(kind="fixed", initial_s=0, max_s=0, jitter=0), max_attempts=3)
    run_id = await lua.create_one()
    # When node-a releases it, node-b fails it, and node-c completes it
    a = await lua.claim_one(run_id, node="node-a")
    assert await lua.finish(a, "released") == "queued"
    b = await lua.claim_one(run_id, node="node-b")
    assert await lua.finish(b, "failed", error_json=ERROR) == "delayed"
    assert (await lua.scripts.promote(lua.part))[0] == 1
    c = await lua.claim_one(run_id, node="node-c")
    assert await lua.finish(c, "completed", output_json="42") == "completed"
    # Then the attempts list has one record per lease, in order, with status, worker and error
    run = await lua.run(run_id)
    records = attempts(run)
    assert [(r["number"], r["status"], r["worker_id"]) for r in records] == [
        (1, "released", "node-a"), (2, "failed", "node-b"), (3, "completed", "node-c")]
    assert [r["error"] for r in records] == [None, orjson.loads(ERROR), None]
    assert [r["started_at"] for r in records] == [a.claimed_at_ms, b.claimed_at_ms, c.claimed_at_ms]
    assert all(r["finished_at"] >= r["started_at"] for r in records)
    assert run["charged"] == "2" and "error" not in run


async def test_batch_settles_each_outcome_independently(lua: Lua) -> None:
    # Given three leased runs
    ok, bad, stale = await leased(lua), await leased(lua), await leased(lua)
    # When one call reports them, one with a wrong token
    result = await lua.scripts.finish(lua.part, [
        Outcome(ok.run_id, ok.token, "completed", output_json="1"),
        Outcome(stale.run_id, "node-z/1", "completed"),
        Outcome(bad.run_id, bad.token, "failed", error_json=ERROR),
    ])
    # Then each gets its own status, in order
    assert result == [(ok.run_id, "completed"), (stale.run_id, -1), (bad.run_id, "delayed")]
    assert (await lua.run(stale.run_id))["status"] == "executing"


async def wake_ups(lua: Lua, *finishes: tuple[Claimed, str, str]) -> list[list[str]]:
    """The wake-ups each finish (run, outcome, the status it must set) publishes, in turn."""
    out: list[list[str]] = []
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        for c, outcome, status in finishes:
            assert await lua.finish(c, outcome) == status
            out.append(await wake.messages())
    return out


async def test_wake_is_published_when_a_limit_slot_frees_or_a_run_is_requeued(lua: Lua) -> None:
    # Given a limited job "lim" and an unlimited job "work", both leased
    await lua.redis.hset(lua.part.jobs, "lim", "5,")
    free = await leased(lua)
    limited = await leased(lua, job="lim")
    requeue = await leased(lua)
    # When the unlimited run completes, then the limited one, then a run is released
    woken = await wake_ups(lua, (free, "completed", "completed"), (limited, "completed", "completed"),
                           (requeue, "released", "queued"))
    # Then nobody is woken by the first; each of the others publishes the partition prefix once
    assert woken == [[], [lua.part.prefix], [lua.part.prefix]]


async def test_wake_follows_the_slot_a_run_held_not_the_limits_its_job_has(lua: Lua) -> None:
    # Given a job limited by rate only, and a job whose concurrency limit came at runtime, after its
    # run was leased (limits_apply puts the executing run into the job's lease set), and a run whose
    # record predates the lease-set mark (cc) altogether
    await lua.redis.hset(lua.part.jobs, "rated", "0,0,10,1000,0,0")
    rated = await leased(lua, job="rated")
    later = await leased(lua, job="late")
    assert await lua.scripts.limits_apply(lua.part, "late", "override", "1,0,0,0,0,0") == 1
    old = await leased(lua)
    await lua.redis.hdel(lua.part.run(old.run_id), "cc")
    # When each completes
    woken = await wake_ups(lua, (rated, "completed", "completed"), (later, "completed", "completed"),
                           (old, "completed", "completed"))
    # Then the rate-limited run wakes nobody (a finish frees no rate: claims skipped for it come back
    # on their own); the run holding a slot of the runtime limit and the unmarked one (for all we
    # know, it holds one) wake the nodes: a queued run may fit the slot
    assert woken == [[], [lua.part.prefix], [lua.part.prefix]]


async def test_status_index_is_trimmed_by_age_and_cap(lua: Lua) -> None:
    # Given a completed index holding an entry older than the finished TTL, and a cap of 2
    scripts = Scripts(lua.redis, lua.keys, lua.settings.with_changes(finished_cap=2))
    index = lua.part.status("completed")
    await lua.redis.zadd(index, {"ancient": 1})
    # When three runs complete
    ids = []
    for _ in range(3):
        c = await leased(lua)
        [(_, status)] = await scripts.finish(lua.part, [Outcome(c.run_id, c.token, "completed")])
        assert status == "completed"
        ids.append(c.run_id)
    # Then the old entry is gone and only 2 runs stay indexed; the dropped run's record is deleted with it
    kept = set(await lua.zmembers(index))
    assert len(kept) == 2 and kept < set(ids)
    [dropped] = set(ids) - kept
    assert await lua.redis.exists(lua.part.run(dropped)) == 0
    assert all([await lua.redis.exists(lua.part.run(k)) for k in kept])


async def test_runs_past_their_retention_leave_their_projects_index(lua: Lua) -> None:
    # Given two completed runs, of the default project and of project "p2", whose retention
    # ended (their index entries are older than the finished-run TTL), and a run still queued
    old = [await leased(lua), await leased(lua, extra={"project": "p2"})]
    for c in old:
        assert await lua.finish(c, "completed") == "completed"
    index = lua.part.status("completed")
    await lua.redis.zadd(index, {c.run_id: 1 for c in old})
    live = await lua.create_one()
    assert [c.run_id in await lua.listed(project) for project, c in zip(("default", "p2"), old, strict=True)] \
        == [True, True]
    # When a node's periodic trim runs (no run finished since)
    assert await lua.scripts.trim_indices(lua.part) == 2
    # Then both left the status index and their project's index; the queued run stays listed,
    # and the records are still there (they expire RETENTION_MARGIN_MS after their retention)
    assert await lua.zmembers(index) == []
    assert await lua.listed("default") == [live] and await lua.listed("p2") == []
    assert [await lua.redis.exists(lua.part.run(c.run_id)) for c in old] == [1, 1]
    # And a trim with nothing due changes nothing
    assert await lua.scripts.trim_indices(lua.part) == 0


async def test_wake_is_published_for_a_job_limited_only_at_runtime(lua: Lua) -> None:
    # Given a job whose limit exists only as a runtime override (app.set_limits)
    await lua.redis.hset(lua.part.jobs_override, "lim", "1,0,0,0,0,0")
    limited = await leased(lua, job="lim")
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        # When its run completes
        assert await lua.finish(limited, "completed") == "completed"
        # Then other nodes are woken: a queued run of the job may fit the freed slot
        assert await wake.messages() == [lua.part.prefix]
