"""A run record reads the same whichever version wrote it: records of earlier versions stored
started_at, heartbeat_at and updated_at, deleted the lease fields at the end and named the completing
node done_by; current ones derive the times and keep the last lease's fields (runtime/records.py)."""

from __future__ import annotations

from runtime.records import Run

BASE = {"id": "r1", "job": "work", "queue": "default", "priority": "0", "created_at": "1000",
        "scheduled_at": "1000", "max_attempts": "3", "timeout_ms": "300000", "source": "client",
        "ready_at": "1000", "attempt": "1", "charged": "1", "attempt_started_at": "1100", "output": "5"}


def test_a_completed_record_of_an_earlier_version() -> None:
    # Given a record as ff7b34a and earlier wrote it: times stored, lease fields gone, done_by
    record = {**BASE, "status": "completed", "started_at": "1100", "heartbeat_at": "1500",
              "updated_at": "1500", "finished_at": "1500", "done_by": "node-a"}
    run = Run.from_hash(record, run_id="r1")
    # Then it reads with its stored times and its one attempt, on node-a
    assert (run.started_at_ms, run.heartbeat_at_ms, run.updated_at_ms) == (1100, 1500, 1500)
    assert [(a.number, a.status, a.worker_id, a.started_at_ms, a.finished_at_ms) for a in run.attempts] == [
        (1, "completed", "node-a", 1100, 1500)]
    assert (run.lease_node, run.lease_expires_at_ms) == (None, None)


def test_a_completed_record_of_this_version_reads_the_same() -> None:
    # Given the same run as this version writes it: no derived times, the last lease's fields kept
    record = {**BASE, "status": "completed", "finished_at": "1500", "lease_token": "node-a/1",
              "lease_node": "node-a", "lease_expires_at": "31100", "cc": ""}
    run = Run.from_hash(record, run_id="r1")
    # Then every time, the attempt and the absence of a lease read as before
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
