"""A run's timeline: status changes derived from the record read the same as stored ones.

The scripts store a run's lease, attempt and terminal events only while it is watched
(run_watch, a live reader); runtime/timeline.py derives them from the record otherwise.
A reader must not be able to tell the two apart, nor see an event twice."""

from __future__ import annotations

from typing import Any

from runtime.jobs import Backoff, JobOptions
from runtime.timeline import DERIVED_SEQ, Dedup, derived_events, event_id_key, merge, read_timeline
from tests.lua.support import Lua


def _shape(events: list[dict[str, Any]]) -> list[tuple[str, Any, int]]:
    return [(e["type"], e["data"], e["ts"]) for e in events]


async def _run_through_two_attempts(lua: Lua, watch: bool) -> str:
    """A run that fails once (retried at once) and completes on its second lease."""
    lua.jobs["work"] = JobOptions(max_attempts=2, backoff=Backoff("fixed", initial_s=0.0, max_s=0.0, jitter=0.0))
    run_id = await lua.create_one()
    if watch:
        assert await lua.scripts.watch(run_id) == 1
    first = await lua.claim_one(run_id)
    assert await lua.finish(first, "failed", error_json='{"message":"boom"}') == "delayed"
    await lua.scripts.promote(lua.part, 10)
    second = await lua.claim_one(run_id)
    assert await lua.finish(second, "completed", output_json="1") == "completed"
    return run_id


async def test_an_unwatched_run_stores_no_status_events_and_reads_them_derived(lua: Lua) -> None:
    # Given a run that went through two attempts while nobody watched it
    run_id = await _run_through_two_attempts(lua, watch=False)
    # Then its stream holds no status or attempt events (nothing was written for them)
    assert await lua.redis.xlen(lua.part.events(run_id)) == 0
    # And its timeline reads them all from the record, in order, as the scripts would have stored them
    events = await read_timeline(lua.redis, lua.part, run_id)
    kinds = [(e["type"], e["data"].get("status"), e["data"].get("attempt", e["data"].get("number")))
             for e in events]
    assert kinds == [("status", "executing", 1), ("attempt", "failed", 1), ("status", "executing", 2),
                     ("attempt", "completed", 2), ("status", "completed", None)]
    assert events[1]["data"]["error"] == {"message": "boom"}
    assert all(event_id_key(e["id"])[1] >= DERIVED_SEQ for e in events)


async def test_a_watched_run_reads_the_same_timeline_each_event_once(lua: Lua) -> None:
    # Given the same history, once unwatched and once watched from its creation
    plain = await _run_through_two_attempts(lua, watch=False)
    watched = await _run_through_two_attempts(lua, watch=True)
    # Then the watched run stored its status events (a blocking reader wakes for them) ...
    assert await lua.redis.xlen(lua.part.events(watched)) == 5
    # ... and both read the same timeline (times aside), with no event twice
    a = await read_timeline(lua.redis, lua.part, plain)
    b = await read_timeline(lua.redis, lua.part, watched)
    assert [(e["type"], e["data"].get("status")) for e in a] == [(e["type"], e["data"].get("status")) for e in b]
    assert len(b) == 5
    # And paging one event at a time through the watched run, from every cursor, shows each once
    paged: list[dict[str, Any]] = []
    after = "-"
    while page := await read_timeline(lua.redis, lua.part, watched, after, count=1):
        paged += page
        after = page[-1]["id"]
    assert _shape(paged) == _shape(b)


def test_merge_pages_never_skip_or_repeat_an_event() -> None:
    # Given stored events (two in one ms) and derived ones between and after them
    stored = [{"id": "100-0", "type": "log", "data": {}, "ts": 100},
              {"id": "100-1", "type": "log", "data": {}, "ts": 100},
              {"id": "105-0", "type": "step", "data": {}, "ts": 105}]
    fields = {"status": "completed", "attempts": '[{"number":1,"status":"completed","started_at":99,'
              '"finished_at":110,"worker_id":"n","error":null}]', "finished_at": "110"}
    derived = derived_events(fields)
    everything = merge(stored, derived)
    assert [e["id"].split("-")[0] for e in everything] == ["99", "100", "100", "105", "110", "110"]
    # When read in pages of two, each page given the stored events from its cursor's millisecond on
    seen: list[str] = []
    after = "-"
    while True:
        floor = event_id_key(after)[0] if after != "-" else -1
        page_stored = [e for e in stored if event_id_key(e["id"])[0] >= floor][:2 + 64]
        page = merge(page_stored, derived, after, count=2, more=False)
        if not page:
            break
        seen += [e["id"] for e in page]
        after = page[-1]["id"]
    # Then every event came exactly once, in order
    assert seen == [e["id"] for e in everything]


def test_dedup_sends_a_derived_event_or_its_stored_copy_once_but_keeps_equal_stored_events() -> None:
    sent = Dedup()
    derived = {"id": f"50-{DERIVED_SEQ + 2}", "type": "status", "data": {"status": "completed"}, "ts": 50}
    copy = {"id": "50-3", "type": "status", "data": {"status": "completed"}, "ts": 50}
    assert sent.first_time(derived) and not sent.first_time(copy) and not sent.first_time(derived)
    # two stored checkpoints in one millisecond are two events
    one = {"id": "60-0", "type": "checkpoint", "data": {"sequence": 1}, "ts": 60}
    two = {"id": "60-1", "type": "checkpoint", "data": {"sequence": 1}, "ts": 60}
    assert sent.first_time(one) and sent.first_time(two)
