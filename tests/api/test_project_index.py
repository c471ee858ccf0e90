"""A project's run index is a stream per partition (runtime/keys.py project_index): listings keep
their order and cursor contract across milliseconds that hold many runs, and a run leaves the
stream when it is deleted, including one created while the stream's last id was ahead of the clock
and one listed in the sorted set that held the index before."""

from __future__ import annotations

from collections import Counter
from typing import Any

from runtime.records import iso
from tests.api.conftest import ApiNode, serving


async def _page_all(api: ApiNode, limit: int, **params: Any) -> list[str]:
    """Every run id of a listing, read ``limit`` at a time through its cursors."""
    seen: list[str] = []
    cursor = None
    while True:
        status, page = await api.call("GET", "/v1/runs", params={"limit": limit, **params,
                                                                 **({"cursor": cursor} if cursor else {})})
        assert status == 200, page
        seen.extend(r["id"] for r in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            assert page["has_more"] is False
            return seen


async def _indexed(api: ApiNode, project: str = "alpha") -> list[str]:
    """The run ids in the project's stream index, every partition."""
    return [f[b"r"].decode() for p in api.app.keys.partitions
            for _, f in await api.app.redis.xrange(p.project_index(project))]


async def test_pages_through_milliseconds_of_many_runs_keep_the_order_across_partitions(
        make_app: Any, api_keys: dict[str, str]) -> None:
    async with serving(make_app, api_keys, partitions=2) as api:
        # Given runs triggered one by one, a batch of 300 (created a partition at a time, each call
        # in one millisecond), and more runs one by one, in project alpha of a 2-partition node
        ids = [await api.trigger("echo", i, delay=60) for i in range(3)]
        status, body = await api.call("POST", "/v1/runs/batch",
                                      json={"runs": [{"job": "echo", "input": i, "delay": 60} for i in range(300)]})
        assert status == 201, body
        ids += [r["id"] for r in body["runs"]]
        ids += [await api.trigger("echo", i, delay=60) for i in range(3)]
        created = {run_id: (await api.app.get_run(run_id)).created_at_ms for run_id in ids}  # type: ignore[union-attr]
        busiest, most = Counter(created.values()).most_common(1)[0]
        assert most >= 100, "the batch should fill a millisecond"
        # (they are in the stream index of their partition, not in the sorted set that held it before)
        assert sorted(await _indexed(api)) == sorted(ids)
        assert [await api.app.redis.zcard(p.project_runs("alpha")) for p in api.app.keys.partitions] == [0, 0]
        newest_first = sorted(ids, key=lambda run_id: (created[run_id], run_id), reverse=True)
        # When the project's runs are listed 7 at a time (pages end inside the busy milliseconds)
        # Then every run is listed once, by (creation ms, id) descending
        assert await _page_all(api, 7) == newest_first
        # And creation-time bounds take exactly the runs of their milliseconds, in the same order
        at = iso(busiest)
        assert await _page_all(api, 7, created_after=at, created_before=at) == [
            r for r in newest_first if created[r] == busiest]
        assert await _page_all(api, 7, created_before=at) == [r for r in newest_first if created[r] <= busiest]
        assert await _page_all(api, 7, created_after=iso(busiest + 1)) == [
            r for r in newest_first if created[r] > busiest]
        # And a filter that skips most runs pages through them just as well
        assert await _page_all(api, 7, metadata_key="none") == []


async def test_a_deleted_run_leaves_the_stream(api: ApiNode) -> None:
    # Given three finished runs of project alpha, created at once (one millisecond, so two of them
    # are located in the stream by their record's seq field)
    status, body = await api.call("POST", "/v1/runs/batch", json={"runs": [{"job": "echo", "input": i}
                                                                           for i in range(3)]})
    assert status == 201, body
    ids = [r["id"] for r in body["runs"]]
    for run_id in ids:
        await api.wait_status(run_id)
    assert sorted(await _indexed(api)) == sorted(ids)
    # When two are deleted
    status, body = await api.call("POST", "/v1/runs/bulk-delete", json={"run_ids": ids[1:]})
    assert status == 200 and body["deleted"] == 2, body
    # Then only the third is left in the stream and in the listing
    assert await _indexed(api) == ids[:1]
    assert await _page_all(api, 10) == ids[:1]


async def test_a_run_created_behind_the_streams_last_id_is_listed_and_deletable(api: ApiNode) -> None:
    # Given a stream index whose last entry is far in the future (the clock of the server that wrote it
    # was ahead, e.g. before a failover), naming no run
    p = api.app.keys.partitions[0]
    await api.app.redis.xadd(p.project_index("alpha"), {"r": "from-the-future"}, id="99999999999999-0")
    # When a run is created and finishes
    run_id = await api.trigger("echo", 1)
    await api.wait_status(run_id)
    # Then it is in the stream after that entry, its record says where (pi), and it is listed
    record = await api.app.redis.hgetall(p.run(run_id))
    assert record[b"pi"] == b"99999999999999-1" and b"ps" not in record
    assert await _indexed(api) == ["from-the-future", run_id]
    assert await _page_all(api, 10) == [run_id]
    # (the listing dropped the entry that names no run)
    assert await _indexed(api) == [run_id]
    # When it is deleted
    status, body = await api.call("POST", "/v1/runs/bulk-delete", json={"run_ids": [run_id]})
    assert status == 200 and body["deleted"] == 1, body
    # Then its entry is gone
    assert await api.app.redis.xlen(p.project_index("alpha")) == 0


async def test_a_run_in_the_former_sorted_set_index_stays_listed_and_leaves_it_when_deleted(api: ApiNode) -> None:
    # Given a run created before the index was a stream: in the sorted set, not in the stream
    old = await api.trigger("echo", 1)
    await api.wait_status(old)
    p = api.app.keys.partition_of_run(old)
    await api.app.redis.delete(p.project_index("alpha"))
    await api.app.redis.hdel(p.run(old), "ps", "pi")
    created = int((await api.app.redis.hget(p.run(old), "created_at")).decode())
    await api.app.redis.zadd(p.project_runs("alpha"), {old: created})
    # And a run created since, in the stream
    new = await api.trigger("echo", 2)
    await api.wait_status(new)
    assert await _indexed(api) == [new]
    # When the project's runs are listed, one a page
    # Then both are, newest first
    assert await _page_all(api, 1) == [new, old]
    # When the old one is deleted
    status, body = await api.call("POST", "/v1/runs/bulk-delete", json={"run_ids": [old]})
    assert status == 200 and body["deleted"] == 1, body
    # Then it left the sorted set, and only the new one is listed
    assert await api.app.redis.zcard(p.project_runs("alpha")) == 0
    assert await _page_all(api, 1) == [new]
