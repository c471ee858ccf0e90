"""Trigger.dev's queue calls (queues.list, retrieve, pause, resume of @trigger.dev/sdk 4.x) on Baton's queues,
as the SDK sends them: the paths, the ``type`` that says how the path names the queue, the bodies and the
QueueItem it parses."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import ApiNode
from tests.nodes import eventually

OPERATOR = "default"  # api_operator_projects defaults to "default"
QUEUE_ITEM = {"id", "name", "type", "running", "queued", "paused", "concurrencyLimit", "version"}


async def _queue(api: ApiNode, path: str, **params: Any) -> dict[str, Any]:
    status, body = await api.call("GET", f"/api/v1/queues/{path}", OPERATOR, params=params or None)
    assert status == 200, body
    assert set(body) == QUEUE_ITEM and body["version"] == "V2" and body["concurrencyLimit"] is None, body
    return dict(body)


async def test_queues_pause_and_resume_hold_and_release_its_runs(api: ApiNode) -> None:
    # Given the mail queue, paused as queues.pause sends it (by id)
    status, body = await api.call("POST", "/api/v1/queues/queue_mail/pause", OPERATOR,
                                  json={"type": "id", "action": "pause"})
    assert status == 200 and body["paused"] is True and body["id"] == "queue_mail", body
    # When two runs of its job are triggered
    ids = [await api.trigger("mail", {"n": i}) for i in range(2)]
    # Then the queue shows them queued, none running, found by id, by its name, and by its job's name
    held = await eventually(lambda: _queued(api, 2), 10)
    assert held == {"id": "queue_mail", "name": "mail", "type": "custom", "running": 0, "queued": 2,
                    "paused": True, "concurrencyLimit": None, "version": "V2"}
    assert await _queue(api, "mail", type="custom") == held
    assert await _queue(api, "mail", type="task") == held  # (the job mail runs in the queue mail)
    assert [(await api.run(i))["status"] for i in ids] == ["queued", "queued"]
    # And queues.list has it, by name, with the page the SDK reads
    status, page = await api.call("GET", "/api/v1/queues", OPERATOR, params={"page": 1, "perPage": 100})
    assert status == 200, page
    names = [q["name"] for q in page["data"]]
    assert "mail" in names and names == sorted(names) and page["pagination"]["currentPage"] == 1
    assert page["pagination"]["count"] == len(names) and page["pagination"]["totalPages"] == 1
    status, first = await api.call("GET", "/api/v1/queues", OPERATOR, params={"perPage": 1})
    assert status == 200 and len(first["data"]) == 1 and first["pagination"]["totalPages"] == len(names), first
    # When queues.resume is sent by type and name
    status, body = await api.call("POST", "/api/v1/queues/mail/pause", OPERATOR,
                                  json={"type": "custom", "action": "resume"})
    assert status == 200 and body["paused"] is False, body
    # Then its runs complete
    for run_id in ids:
        assert (await api.wait_status(run_id))["status"] == "completed"


async def _queued(api: ApiNode, n: int) -> dict[str, Any] | None:
    found = await _queue(api, "queue_mail")
    return found if found["queued"] == n else None


async def test_queue_calls_refuse_what_baton_cannot_do(api: ApiNode) -> None:
    # Given a key of a project that is not an operator's: the deployment's queues are not its to see
    for method, path, body in (("GET", "/api/v1/queues", None), ("GET", "/api/v1/queues/queue_mail", None),
                               ("POST", "/api/v1/queues/queue_mail/pause", {"type": "id", "action": "pause"})):
        status, err = await api.call(method, path, "alpha", json=body)
        assert (status, err["code"]) == (403, "forbidden"), (path, err)
    # A queue, or a task, nothing names is not found (a typo must not pause a queue nobody serves)
    for path, params in (("queue_mial", None), ("mial", {"type": "custom"}), ("nosuchjob", {"type": "task"})):
        status, err = await api.call("GET", f"/api/v1/queues/{path}", OPERATOR, params=params)
        assert (status, err["code"]) == (404, "not_found"), (path, err)
    # A pause without its action, or with another, is a 400
    for body in ({"type": "id"}, {"type": "id", "action": "stop"}):
        status, err = await api.call("POST", "/api/v1/queues/queue_mail/pause", OPERATOR, json=body)
        assert (status, err["code"]) == (400, "invalid_body"), (body, err)
    # And a queue's own concurrency limit, which Baton queues do not have, is refused with where limits are
    for verb, body in (("override", {"type": "id", "concurrencyLimit": 3}), ("reset", {"type": "id"})):
        status, err = await api.call("POST", f"/api/v1/queues/queue_mail/concurrency/{verb}", OPERATOR, json=body)
        assert (status, err["code"]) == (400, "unsupported_operation"), (verb, err)
        assert "PUT /v1/jobs/{job}/limits" in err["error"], err
    assert (await _queue(api, "queue_mail"))["paused"] is False
