"""The invariant checker: reads Redis and the run records after a scenario and says what broke.

Checked for every acknowledged submission (run id known from its stream entry):

- lost: no run record exists;
- stuck: the run is not in a terminal status after the quiesce wait;
- recorded twice: its stored timeline has more than one terminal status event
  (runs watched by a live reader store them), or more than one completed attempt
  (a terminal record was overwritten);
- overwritten output: a completed ``work`` run's output names another node or
  attempt than the attempt recorded as completed (a stale node's write landed);
- attempts unexplained: the attempt list disagrees with the leases taken (the
  ``attempt`` counter), or an attempt has a status outside the known outcomes;
- steps re-run after completing: a step function started although the step was
  already recorded completed (recorded by the step itself, see jobs.py; one whose
  note was delayed past the completion but that had started before it is a note);
- drift: what ``Baton.reconcile()`` repaired in the indices and limit sets;
- submission stream: entries still pending in the intake group, entries rejected.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from actors.intake import SILENT_CONSUMER_MS
from runtime import Baton
from runtime.records import TERMINAL_STATUSES, Run, read_runs

from .jobs import ORDINARY_JOBS, Marks

__all__ = ["ATTEMPT_OUTCOMES", "UNDER_WAY", "Verdict", "check"]

#: statuses an attempt may end with (runtime/lua/includes/settle.lua)
ATTEMPT_OUTCOMES = frozenset({"completed", "failed", "timed_out", "crashed", "canceled", "released", "waiting"})
#: runs read per pipelined round trip
CHUNK = 500
#: past SILENT_CONSUMER_MS, how long the live nodes have to claim a killed node's pending entries (their dead
#: check runs every second) before an entry still pending is a violation
CLAIM_MARGIN_S = 5.0
#: examples kept per violation
EXAMPLES = 5


@dataclass
class Verdict:
    """What the checker found; ``violations`` maps an invariant to the run ids (or details) that break it."""

    submitted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    attempt_outcomes: Counter[str] = field(default_factory=Counter)
    violations: dict[str, list[str]] = field(default_factory=dict)
    #: facts that are allowed but worth reading (steps run twice after a crash mid-step, ...)
    notes: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, int] = field(default_factory=dict)
    #: longest time from a node fault (kill, stop) to the next attempt of a run that node held, and that run
    worst_wait_ms: int | None = None
    worst_wait_run: str = ""
    #: longest time from a run's XADD (its entry id's time) to its first attempt's start, and that run
    worst_pickup_ms: int | None = None
    worst_pickup_run: str = ""

    def add(self, invariant: str, example: str) -> None:
        """Record one violation of ``invariant``."""
        self.violations.setdefault(invariant, []).append(example)

    def count(self, invariant: str) -> int:
        """How many times ``invariant`` was violated."""
        return len(self.violations.get(invariant, []))

    @property
    def ok(self) -> bool:
        """True when nothing was violated."""
        return not self.violations


async def check(
    app: Baton, acked: dict[str, str], marks: Marks, node_faults: dict[str, list[int]] | None = None,
    ordinary_jobs: frozenset[str] = ORDINARY_JOBS, bad_entries: int = 0,
) -> Verdict:
    """Check every acknowledged run (id -> job) and the deployment's shared state.

    ``node_faults`` maps a node id to the wall-clock ms of each fault it suffered (killed, stopped,
    cut off), in order: the runs it held measure how long a run waited past a fault. ``bad_entries``
    invalid entries were submitted: exactly that many must be in the rejected stream.
    """
    v = Verdict(submitted=len(acked))
    redis = app.redis
    ids = sorted(acked)
    multi_exec = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        runs = await read_runs(redis, app.keys, chunk)
        pipe = redis.pipeline(transaction=False)
        for run_id in chunk:
            pipe.xrange(app.keys.partition_of_run(run_id).events(run_id))
            pipe.hgetall(marks.executions(run_id))
        raw = await pipe.execute()
        for i, (run_id, run) in enumerate(zip(chunk, runs, strict=True)):
            events, executions = raw[2 * i], raw[2 * i + 1]
            multi_exec += sum(1 for n in executions.values() if int(n) > 1)
            _check_run(v, run_id, acked[run_id], run, events, ordinary_jobs)
            if run is not None and node_faults:
                _wait_past_fault(v, run, node_faults)
    reruns, stale_starts = [], []
    for p in app.keys.partitions:
        reruns += await redis.lrange(marks.reruns(p), 0, -1)
        stale_starts += await redis.lrange(marks.stale_starts(p), 0, -1)
    under_way = 0
    for blob in reruns:
        rerun = orjson.loads(blob)
        e = rerun["entry"]
        if _under_way_when_completed(e, rerun.get("completed_at"), rerun.get("record")):
            under_way += 1
            continue
        v.add("steps re-run after completing", f"{e['run']} step {e['step']} on {e['node']} attempt {e['attempt']} "
                                               f"at {e.get('started_ms')}, completed at {rerun.get('completed_at')}; "
                                               f"the run record said {rerun.get('record')}")
    if under_way:
        v.notes[UNDER_WAY] = under_way
    late_notes = 0
    for blob in stale_starts:
        stale = orjson.loads(blob)
        e = stale["entry"]
        # the run's attempts, for the cause (who gave the lease up, when): a rare violation is not rerun at will
        [run] = await read_runs(redis, app.keys, [e["run"]])
        attempts = run.attempts if run else []
        if _started_under_its_lease(e, attempts):
            late_notes += 1
            continue
        history = "; ".join(f"{a.number} {a.status} on {a.worker_id} {a.started_at_ms}-{a.finished_at_ms}"
                            + (f" ({a.error.get('message')})" if a.error else "")
                            for a in attempts)
        v.add("steps started without the lease", f"{e['run']} step {e['step']} on {e['node']} attempt "
                                                 f"{e['attempt']} at {e.get('started_ms')}; the run record "
                                                 f"said {stale['record']}; attempts: {history or 'none'}")
    if late_notes:
        v.notes["step starts noted after their lease ended, the step having started before it (the note's "
                "Redis call delayed by the fault)"] = late_notes
    v.notes["step functions executed more than once (allowed after a crash mid-step)"] = multi_exec
    v.drift = await app.reconcile()
    if v.drift.get("total"):
        v.add("index drift (reconcile repaired)", ", ".join(f"{k} {n}" for k, n in v.drift.items() if n))
    await _check_streams(v, app, bad_entries)
    return v


#: the note counting step executions noted after their step was completed that had started before it
UNDER_WAY = ("step executions already under way when another attempt completed the step (their note delayed "
             "by the fault: a node stopped mid-step)")


def _under_way_when_completed(entry: dict[str, Any], completed_at: Any, record: Any) -> bool:
    """Whether a step execution noted after its step was completed had started before that completion
    (by the nodes' estimates of the Redis clock, which may run milliseconds ahead of it: strict), the
    run having moved on to another attempt by the note (``record``: status, attempt, lease node): a
    node stopped between the step's start and its note, whose lease another attempt took meanwhile.
    Not a re-run: the execution began before the step was completed, as after a crash mid-step. A step started after
    the completion (a stalled node going on to a step done elsewhere), or noted while its own attempt
    still held the run (so none other could have completed it), is still caught."""
    started = entry.get("started_ms")
    held = isinstance(record, list) and record == ["executing", str(entry.get("attempt")), entry.get("node")]
    return (isinstance(started, int | float) and isinstance(completed_at, int | float) and started < completed_at
            and not held)


def _started_under_its_lease(entry: dict[str, Any], attempts: list[Any]) -> bool:
    """Whether a step noted after its lease ended had started before that end: its attempt (number
    and node) ended after the step's start by the node's estimate of the Redis clock. The estimate
    never runs behind Redis (it may run ahead by the claim's send delay, milliseconds: strict), so a
    step that started after the end is always caught."""
    started = entry.get("started_ms")
    for a in attempts:
        if a.number == entry["attempt"] and a.worker_id == entry["node"]:
            return started is not None and a.finished_at_ms is not None and started < a.finished_at_ms
    return False


def _check_run(v: Verdict, run_id: str, job: str, run: Run | None, events: list[Any], ordinary: frozenset[str]) -> None:
    if run is None:
        v.add("runs lost", run_id)
        return
    v.statuses[run.status] += 1
    if run.entry_id and run.attempts and run.attempts[0].started_at_ms is not None:
        pickup = run.attempts[0].started_at_ms - int(run.entry_id.split("-")[0])
        if v.worst_pickup_ms is None or pickup > v.worst_pickup_ms:
            v.worst_pickup_ms, v.worst_pickup_run = pickup, run_id
    for a in run.attempts:
        v.attempt_outcomes[a.status] += 1
    if run.status not in TERMINAL_STATUSES:
        v.add("runs stuck (not terminal after the quiesce wait)", f"{run_id} {run.status}")
    elif job in ordinary and run.status != "completed":
        v.add("ordinary runs not completed", f"{run_id} {run.status}")
    kinds = [_event_status(fields) for _, fields in events]
    terminal_events = [s for s in kinds if s in TERMINAL_STATUSES]
    completed_attempts = [a for a in run.attempts if a.status == "completed"]
    if len(terminal_events) > 1 or len(completed_attempts) > 1:
        v.add("results recorded twice", f"{run_id} terminal events {terminal_events}, "
                                         f"completed attempts {len(completed_attempts)}")
    if run.status == "completed" and job in ordinary and isinstance(run.output, dict) and completed_attempts:
        last = completed_attempts[-1]
        if (run.output.get("node"), run.output.get("attempt")) != (last.worker_id, last.number):
            v.add("terminal record overwritten", f"{run_id} output from {run.output.get('node')} attempt "
                                                 f"{run.output.get('attempt')}, completed attempt {last.number} "
                                                 f"on {last.worker_id}")
    unknown = [a.status for a in run.attempts if a.status not in ATTEMPT_OUTCOMES]
    if run.finished and (len(run.attempts) != run.attempt or unknown):
        v.add("attempts unexplained", f"{run_id} attempt counter {run.attempt}, {len(run.attempts)} attempt "
                                      f"records, unknown outcomes {unknown}")


def _wait_past_fault(v: Verdict, run: Run, node_faults: dict[str, list[int]]) -> None:
    by_number = {a.number: a for a in run.attempts}
    for a in run.attempts:
        later = by_number.get(a.number + 1)
        if a.status not in ("crashed", "released") or later is None or later.started_at_ms is None:
            continue
        # the node's last fault before the next attempt started (a node may suffer several)
        before = [ms for ms in node_faults.get(a.worker_id, ()) if ms <= later.started_at_ms]
        if not before:
            continue
        wait = later.started_at_ms - before[-1]
        if v.worst_wait_ms is None or wait > v.worst_wait_ms:
            v.worst_wait_ms, v.worst_wait_run = wait, run.id


def _event_status(fields: dict[Any, Any]) -> str:
    """The status a timeline event sets ('' for other events)."""
    f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    kind = f.get("type", b"")
    if (kind.decode() if isinstance(kind, bytes) else kind) != "status":
        return ""
    data = orjson.loads(f.get("data") or b"{}")
    return str(data.get("status", "")) if isinstance(data, dict) else ""


async def _check_streams(v: Verdict, app: Baton, bad_entries: int) -> None:
    redis = app.redis
    stream, group = app.keys.submit_stream, app.keys.intake_group
    try:
        pending = await redis.xpending(stream, group)
    except Exception as exc:  # noqa: BLE001 - no group means no node ever read the stream: reported
        v.add("submission stream unreadable", repr(exc))
        return
    # every run ending (the quiesce) can come before the entries a killed node had read are acknowledged:
    # a live node's intake claims them once that node's consumer has been silent for SILENT_CONSUMER_MS
    # (or its heartbeat is stale), and creating their runs again finds them made. What is still pending
    # after that is left pending for good
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SILENT_CONSUMER_MS / 1000 + CLAIM_MARGIN_S
    while pending["pending"] and loop.time() < deadline:
        await asyncio.sleep(0.2)
        pending = await redis.xpending(stream, group)
    if pending["pending"]:
        v.add("stream entries left pending", f"{pending['pending']} entries")
    rejected = await redis.xrevrange(app.keys.rejected_stream, count=EXAMPLES)
    total = int(await redis.xlen(app.keys.rejected_stream))
    v.notes["entries in the rejected stream"] = total
    if total > bad_entries:
        v.add("valid entries rejected", f"{total - bad_entries} more than the {bad_entries} bad ones, "
                                        f"e.g. {[dict(f) for _, f in rejected][:2]}")
    elif total < bad_entries:
        v.add("bad entries not rejected", f"{bad_entries - total} of {bad_entries}")
