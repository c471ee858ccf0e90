"""Views: the status mapping table of each seed system, and the format checks the seed-client tests
(test_client_*.py, which play each seed system's client against a live node) rely on."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from runtime.api import views
from runtime.api.views import status_durably, status_hatchet, status_strait, status_trigger, statuses_for
from runtime.records import Attempt, Run
from tests.api.conftest import ApiNode
from tests.api.seeds import FORMATS, STRAIT_STATUSES
from tests.nodes import eventually


def test_strait_vocabulary_is_the_seeds() -> None:
    # Given seed 003's status list, Then the view's is the same, and each word filters to the native
    # statuses that show it (Strait's waiting is Baton's waiting or paused; words Baton never shows: none)
    assert views.STRAIT_STATUSES == STRAIT_STATUSES
    assert statuses_for("strait", ["waiting"]) == {"waiting", "paused"}
    assert statuses_for("strait", ["dequeued", "timed_out", "crashed", "system_failed"]) == frozenset()
    assert statuses_for("native", ["waiting"]) == {"waiting"}


def test_format_checks_are_real() -> None:
    # Given the format checker the view tests use: date-time and uuid are really checked
    assert not FORMATS.conforms("yesterday", "date-time") and FORMATS.conforms("2024-01-02T03:04:05.678Z",
                                                                               "date-time")
    assert not FORMATS.conforms("not-a-uuid", "uuid")


def _run(status: str, attempt: int = 0, last: str | None = None) -> Run:
    run = Run.from_hash({"id": "r", "job": "j", "status": status, "attempt": str(attempt)})
    return replace(run, attempts=[Attempt(1, last, 1, 2, "n", None)] if last else [])


@pytest.mark.parametrize(("native", "attempt", "last", "trigger", "hatchet", "durably", "strait"), [
    ("queued", 0, None, "QUEUED", "QUEUED", "pending", "queued"),
    ("delayed", 0, None, "DELAYED", "QUEUED", "pending", "delayed"),
    ("delayed", 1, "failed", "REATTEMPTING", "QUEUED", "pending", "delayed"),
    ("executing", 1, None, "EXECUTING", "RUNNING", "leased", "executing"),
    ("waiting", 1, "waiting", "WAITING_TO_RESUME", "RUNNING", "pending", "waiting"),
    ("paused", 0, None, "WAITING_TO_RESUME", "QUEUED", "pending", "waiting"),
    ("completed", 1, "completed", "COMPLETED_SUCCESSFULLY", "COMPLETED", "completed", "completed"),
    ("failed", 1, "failed", "COMPLETED_WITH_ERRORS", "FAILED", "failed", "failed"),
    ("dead_letter", 3, "failed", "COMPLETED_WITH_ERRORS", "FAILED", "failed", "dead_letter"),
    ("dead_letter", 3, "crashed", "CRASHED", "FAILED", "failed", "dead_letter"),
    ("dead_letter", 3, "timed_out", "TIMED_OUT", "FAILED", "failed", "dead_letter"),
    ("canceled", 1, "canceled", "CANCELLED", "CANCELLED", "cancelled", "canceled"),
    ("expired", 0, None, "EXPIRED", "FAILED", "failed", "expired"),
])
def test_status_mapping(native: str, attempt: int, last: str | None, trigger: str, hatchet: str, durably: str,
                        strait: str) -> None:
    # Given a native run in a status (and its last attempt's outcome)
    run = _run(native, attempt, last)
    # Then each view names it as the module's table says
    assert (status_trigger(run), status_hatchet(native), status_durably(native), status_strait(native)) == (
        trigger, hatchet, durably, strait)


async def test_a_status_filter_takes_the_words_of_its_view_only(api: ApiNode) -> None:
    # (a word the view never shows would select nothing, silently: "pending" is durably's, "crashed" Strait's)
    run_id = await api.trigger("echo", 1, delay=60)
    for view, word in (("native", "pending"), ("native", "crashed"), ("strait", "paused"),
                       ("durably", "crashed")):
        status, answer = await api.call("GET", "/v1/runs", params={"status": word, "view": view})
        assert status == 400 and answer["code"] == "invalid_parameter", (view, word, answer)
        assert f"'{word}' is not a status of the {view} view" in answer["error"], answer
    # And each view's own words select what they say
    for view, word in (("native", "delayed"), ("durably", "pending"), ("strait", "delayed")):
        status, page = await api.call("GET", "/v1/runs", params={"status": word, "view": view})
        listed = page if view == "strait" else page["data"]  # (Strait lists are bare arrays)
        assert status == 200 and [r["id"] for r in listed] == [run_id], (view, word, page)
    # And a bulk action's filter is held to the same words
    status, answer = await api.call("POST", "/v1/bulk-actions", json={"action": "cancel",
                                                                      "filter": {"status": ["cancelled"]}})
    assert status == 400 and answer["code"] == "invalid_body" and "cancelled" in answer["error"], answer


async def test_a_native_run_says_when_its_latest_attempt_started(api: ApiNode) -> None:
    # Given a run whose first attempt failed and whose second is brought forward and fails too
    run_id = await api.trigger("retrying", 1)
    first = await api.wait_status(run_id, "delayed")
    assert first["attempt_started_at"] == first["started_at"] == first["attempts"][0]["started_at"], first
    status, _ = await api.call("POST", f"/v1/runs/{run_id}/reschedule", json={"delay": 0})
    assert status == 200

    async def second_attempt() -> dict[str, Any] | None:
        run = await api.run(run_id)
        return run if len(run["attempts"]) == 2 else None

    run = await eventually(second_attempt, 15)
    # Then started_at stays the first attempt's start, and attempt_started_at is the second's
    assert run["started_at"] == run["attempts"][0]["started_at"], run
    assert run["attempt_started_at"] == run["attempts"][1]["started_at"] > run["started_at"], run
