"""API requests leave no reference cycles behind (see tests/integration/test_cyclic_garbage.py)."""

from __future__ import annotations

import gc

import pytest

from tests.api.conftest import ApiNode
from tests.garbage import ours


async def _requests(api: ApiNode, i: int) -> None:
    """The common requests: a trigger, reads, a listing, a wait, and the errors a client meets."""
    run_id = await api.trigger("echo", {"i": i})
    await api.wait_status(run_id, "completed")
    for method, path, body, expected in (
        ("GET", f"/v1/runs/{run_id}", None, 200),
        ("GET", "/v1/runs?limit=5", None, 200),
        ("GET", "/v1/runs/no-such-run", None, 404),
        ("POST", "/v1/jobs/echo/trigger", {"input": 1, "options": {"delay": "soon"}}, 400),
        ("POST", "/v1/jobs/no-such-job/trigger", {"input": 1}, 404),
    ):
        status, _ = await api.call(method, path, json=body)
        assert status == expected, (method, path, status)


@pytest.mark.usefixtures("cyclic_garbage")
async def test_requests_leave_no_cycles_for_the_collector(api: ApiNode) -> None:
    await _requests(api, 0)  # the first requests warm caches that live as long as the process
    gc.collect()
    gc.garbage.clear()
    for i in range(10):
        await _requests(api, i)
    gc.collect()
    found = ours(gc.garbage)
    assert not found, f"Baton objects left in reference cycles by 50 requests: {found.most_common(10)}"
