"""Worker labels over HTTP: a trigger asks for labels, the run says why it waits, nodes show theirs."""

from __future__ import annotations

from tests.api.conftest import ApiNode


async def test_a_run_requiring_labels_no_node_offers_waits_and_says_why(api: ApiNode) -> None:
    # Given a run triggered over HTTP that requires gpu=h100 (the serving node offers no labels)
    run_id = await api.trigger("echo", 1, node_labels={"gpu": "h100"}, prefer_labels={"zone": "b"}, prefer_wait=2)
    done = await api.trigger("echo", 2)
    await api.wait_status(done)
    # Then it stays queued, with its labels and the reason in the native view
    run = await api.run(run_id)
    assert (run["status"], run["queued_reason"]) == ("queued", "waiting_for_labels")
    assert (run["node_labels"], run["prefer_labels"]) == ({"gpu": "h100"}, {"zone": "b"})
    # And the node listing shows each node's labels
    status, body = await api.call("GET", "/v1/nodes", project="default")
    assert status == 200 and body["data"] and all(node["labels"] == {} for node in body["data"])
    # And bad labels get a 400 that names them, creating nothing
    status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={"node_labels": {"gpu": "a 100"}})
    assert status == 400 and "node_labels" in body["error"]
