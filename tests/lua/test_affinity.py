"""Worker labels in the claim script: required labels are exact, preferred ones wait their time out,
sticky runs name a node, and a labelled run is handed only to a waiting node that may take it."""

from __future__ import annotations

from runtime.scripts import Scripts
from tests.lua.support import Lua
from tests.lua.test_handoff import REGISTER_MS, pushed, register


def node_scripts(lua: Lua, labels: str) -> Scripts:
    """The scripts as a node offering ``labels`` calls them."""
    return Scripts(lua.redis, lua.keys, lua.settings.with_changes(labels=labels))


async def claim_as(lua: Lua, node: str, labels: str = "", want: int = 10) -> tuple[list[str], int]:
    claimed, retry_in = await node_scripts(lua, labels).claim(lua.part, node, want, ["default"], ["work"], 0)
    return [c.run_id for c in claimed], retry_in


async def test_a_run_requiring_labels_is_leased_only_by_a_node_offering_all_of_them(lua: Lua) -> None:
    # Given a run requiring gpu=a100 and region=eu, ahead of a run without labels
    gpu = await lua.create_one(node_labels={"gpu": "a100", "region": "eu"})
    plain = await lua.create_one()
    # When a node without labels and one with only gpu=a100 claim, the labelled run is skipped
    assert await claim_as(lua, "cpu") == ([plain], -1)
    assert await claim_as(lua, "half", "gpu=a100") == ([], -1)
    assert (await lua.run(gpu))["status"] == "queued"
    # Then a node offering both (and more) leases it
    assert (await claim_as(lua, "full", "region=eu,gpu=a100,ram=1t"))[0] == [gpu]


async def test_a_preferred_run_waits_for_its_nodes_then_any_node_takes_it(lua: Lua) -> None:
    # Given a run preferring region=eu for 300 ms
    run_id = await lua.create_one(prefer_labels={"region": "eu"}, prefer_wait_s=0.3)
    # When another node claims at once, it skips the run and is told when the preference ends
    ids, retry_in = await claim_as(lua, "us", "region=us")
    assert ids == [] and 0 < retry_in <= 300
    # Then after the wait any node takes it
    ready_at = await lua.ready_since(run_id)
    await lua.next_ms(ready_at + 300)
    assert (await claim_as(lua, "us", "region=us"))[0] == [run_id]


async def test_a_preferred_node_takes_the_run_at_once(lua: Lua) -> None:
    run_id = await lua.create_one(prefer_labels={"region": "eu"}, prefer_wait_s=60)
    assert (await claim_as(lua, "eu", "region=eu"))[0] == [run_id]


async def test_a_run_sticky_to_a_node_is_leased_by_that_node_only(lua: Lua) -> None:
    # Given a run requiring node n1 (what sticky=True asks for) with a short TTL
    run_id = await lua.create_one(node_labels={"baton.node": "n1"}, ttl_s=0.2)
    # When another node claims, the run stays queued
    assert (await claim_as(lua, "n2"))[0] == []
    # Then it ends expired once its TTL passes with its node gone
    created = int((await lua.run(run_id))["created_at"])
    await lua.next_ms(created + 200)
    assert (await claim_as(lua, "n2"))[0] == []
    assert (await lua.run(run_id))["status"] == "expired"
    # while a run sticky to a live node is leased by it
    other = await lua.create_one(node_labels={"baton.node": "n1"})
    assert (await claim_as(lua, "n1"))[0] == [other]


async def test_a_labelled_run_is_handed_only_to_a_waiting_node_that_offers_its_labels(lua: Lua) -> None:
    # Given two waiting nodes, one offering gpu=a100
    for node, labels in (("cpu", ""), ("gpu", "gpu=a100")):
        claimed, _ = await node_scripts(lua, labels).claim(lua.part, node, 5, ["default"], ["work"], 0,
                                                          register_ms=REGISTER_MS)
        assert claimed == []
    # When runs requiring gpu=a100 are created
    ids = [await lua.create_one(node_labels={"gpu": "a100"}) for _ in range(3)]
    # Then they were leased to the gpu node (never to the other), or wait queued for it
    handed = await pushed(lua, "gpu")
    assert await pushed(lua, "cpu") == []
    assert handed and {c.run_id for c in handed} <= set(ids)
    records = [await lua.run(i) for i in ids]
    assert all(r["status"] == "queued" or r.get("lease_node") == "gpu" for r in records)
    # and the node without labels, claiming again, finds none it may take
    assert await register(lua, "cpu") == []
