"""A run record reads the same whichever version wrote it: records of earlier versions stored
started_at, heartbeat_at and updated_at, deleted the lease fields at the end and named the completing
node done_by; later ones derive the times and keep the last lease's fields; current ones also hold
no id (the key names the run), no scheduled_at equal to created_at, and no priority 0 or source
client (runtime/records.py)."""

from __future__ import annotations

import pytest

from runtime.records import Run

BASE = {"id": "r1", "job": "work", "queue": "default", "priority": "0", "created_at": "1000",
        "scheduled_at": "1000", "max_attempts": "3", "timeout_ms": "300000", "source": "client",
        "ready_at": "1000", "attempt": "1", "charged": "1", "attempt_started_at": "1100", "output": "5"}


#: one completed run as each version writes it
EARLIER = {**BASE, "status": "completed", "started_at": "1100", "heartbeat_at": "1500", "updated_at": "1500",
           "finished_at": "1500", "done_by": "node-a"}  # ff7b34a and before: times stored, lease fields gone
LATER = {**BASE, "status": "completed", "finished_at": "1500", "lease_token": "node-a/1",
         "lease_node": "node-a", "lease_expires_at": "31100", "cc": ""}  # b1f3250: times derived, last lease kept
#: and now without the lease token (lease_node and attempt give it)
CURRENT = {k: v for k, v in LATER.items() if k not in ("id", "scheduled_at", "priority", "source", "lease_token")}


@pytest.mark.parametrize("record", [EARLIER, LATER, CURRENT], ids=["earlier", "later", "current"])
def test_a_completed_record_reads_the_same_whichever_version_wrote_it(record: dict[str, str]) -> None:
    run = Run.from_hash(record, run_id="r1")
    assert (run.id, run.created_at_ms, run.scheduled_at_ms) == ("r1", 1000, 1000)
    assert (run.priority, run.source, run.triggered_by) == (0, "client", "client")
    # its times, its one attempt on node-a, and no lease
    assert (run.started_at_ms, run.heartbeat_at_ms, run.updated_at_ms) == (1100, 1500, 1500)
    assert [(a.number, a.status, a.worker_id, a.started_at_ms, a.finished_at_ms) for a in run.attempts] == [
        (1, "completed", "node-a", 1100, 1500)]
    assert (run.lease_node, run.lease_expires_at_ms) == (None, None)


def test_an_executing_record_shows_its_lease_and_a_retried_one_its_first_start() -> None:
    # Given a run on its second attempt (the first failed and was recorded), leased by node-b
    first = '[{"number":1,"status":"failed","started_at":1100,"finished_at":1200,"worker_id":"node-a","error":null}]'
    record = {**BASE, "status": "executing", "attempt": "2", "charged": "2", "attempts": first,
              "attempt_started_at": "2100", "heartbeat_at": "1200", "lease_token": "node-b/2",
              "lease_node": "node-b", "lease_expires_at": "32100", "cc": ""}
    run = Run.from_hash(record, run_id="r1")
    # Then it started with its first attempt, beat last at its lease's start, and holds node-b's lease
    assert (run.started_at_ms, run.heartbeat_at_ms, run.updated_at_ms) == (1100, 2100, 2100)
    assert (run.lease_node, run.lease_expires_at_ms) == ("node-b", 32100)


def test_a_later_start_is_kept_and_a_delayed_record_reads_its_own() -> None:
    record = {k: v for k, v in BASE.items() if k != "id"} | {"status": "delayed", "scheduled_at": "9000"}
    assert Run.from_hash(record, run_id="r1").scheduled_at_ms == 9000
