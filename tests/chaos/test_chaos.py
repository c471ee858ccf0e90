"""The chaos harness's short scenarios (bench/chaos), asserting Baton's invariants under real faults.

Each scenario runs once per session (the first test that reads it) against real processes the
harness starts and stops by pid: a redis-server, worker nodes, a producer
XADDing to the submission stream, a TCP fault proxy. The tests then read the
checker's verdict. ``python -m bench.chaos`` runs the full-size scenarios.

Each defect the harness found (D1-D4, a handler swallowing cancellation,
unbounded outputs, heartbeats on a node's own clock) has a test here that
failed before its fix.
"""

from __future__ import annotations

import asyncio

from bench.chaos.scenarios import SCENARIOS
from bench.chaos.stage import Result

_results: dict[str, Result] = {}


def _run(name: str) -> Result:
    """The short scenario's result: run once per session, read by the tests that check it."""
    if name not in _results:
        _results[name] = asyncio.run(SCENARIOS[name](True))
    return _results[name]


def _holds(result: Result, *invariants: str) -> None:
    broken = {k: v[:3] for k, v in result.verdict.violations.items() if k in invariants}
    assert not broken, f"{result.name}: {broken}"


#: what must hold in every scenario, defects or not: nothing acknowledged is lost or recorded twice
CORE = ("runs lost", "results recorded twice", "terminal record overwritten", "checker could not read the results")


def test_kill_9_under_load_keeps_every_invariant() -> None:
    kill9 = _run("kill9")
    # Given a few hundred runs submitted through the stream while random nodes are killed with SIGKILL
    # Then every run completed once, nothing was lost, no completed step ran again, the indices agree
    assert kill9.verdict.submitted >= 300 and len(kill9.faults) >= 1
    assert kill9.verdict.ok, kill9.verdict.violations
    assert kill9.verdict.statuses == {"completed": kill9.verdict.submitted}
    assert kill9.verdict.attempt_outcomes["crashed"] + kill9.verdict.attempt_outcomes["released"] >= 1


def test_sigstop_past_the_ttl_lands_no_late_record() -> None:
    sigstop = _run("sigstop")
    # Given a node frozen past its lease TTL while it holds runs, which another node then completes
    # Then the frozen node's late writes are fenced: no result recorded twice or overwritten
    _holds(sigstop, *CORE)
    assert sigstop.verdict.statuses == {"completed": sigstop.verdict.submitted}
    assert sigstop.verdict.attempt_outcomes["crashed"] >= 1


def test_sigstop_past_the_ttl_starts_no_step() -> None:
    sigstop = _run("sigstop")
    # Then the continued node starts no step function: no step re-runs after it completed elsewhere
    _holds(sigstop, "steps re-run after completing", "steps started without the lease")


def test_a_rolling_update_under_load_keeps_every_invariant() -> None:
    rolling = _run("rolling_restart")
    # Given runs arriving through the stream while each node in turn is stopped with SIGTERM and a new
    # incarnation takes its place (a Kubernetes rollout), some runs longer than the stop's grace
    # Then every stopped node exited 0 within its grace, every run completed once, nothing was lost,
    # no completed step ran again, and the runs that outlasted the grace were given back, not crashed
    assert rolling.verdict.ok, rolling.verdict.violations
    assert rolling.verdict.submitted >= 300 and len(rolling.faults) >= 3
    assert rolling.verdict.statuses == {"completed": rolling.verdict.submitted}
    assert rolling.verdict.attempt_outcomes["released"] >= 1
    assert rolling.verdict.attempt_outcomes["crashed"] == 0


def test_redis_kill_9_with_appendfsync_always_loses_nothing() -> None:
    redis_restart = _run("redis_restart")
    # Given redis-server (appendonly yes, appendfsync always) killed with SIGKILL during load, restarted
    # Then every acknowledged submission still exists and was recorded once
    _holds(redis_restart, *CORE)
    assert redis_restart.verdict.submitted >= 300


def test_redis_kill_9_every_node_rides_it_out() -> None:
    redis_restart = _run("redis_restart")
    # Then no node exits, and every run (delayed ones included) ends: all invariants hold
    assert redis_restart.verdict.ok, redis_restart.verdict.violations


def test_a_redis_out_of_memory_under_load_keeps_every_invariant() -> None:
    oom = _run("redis_oom")
    # Given Redis refusing every write (maxmemory 1 byte, noeviction) for 3x the lease TTL during load
    # Then no node exits (a crash loop on OutOfMemoryError stopped them), every acknowledged run
    # completed once, no completed step ran again, and the indices agree
    assert oom.verdict.ok, oom.verdict.violations
    assert oom.verdict.submitted >= 300 and len(oom.faults) == 1
    assert oom.verdict.statuses == {"completed": oom.verdict.submitted}


def test_a_sentinel_failover_under_load_keeps_every_invariant() -> None:
    failover = _run("sentinel_failover")
    # Given a master with one replica and three sentinels, durable writes (durable_replicas=1 on the
    # nodes, WAIT after the producer's XADDs), and the master killed with SIGKILL during load
    # Then the nodes follow the promoted replica without exiting, and every acknowledged run completed
    # once: nothing lost, no result recorded twice, no step re-run, the indices agree
    assert failover.verdict.ok, failover.verdict.violations
    assert failover.verdict.submitted >= 300 and len(failover.faults) == 1
    # and the sentinels really failed over (at least once: a busy machine may add one of its own)
    assert failover.verdict.notes["Sentinel failovers"] >= 1


def test_a_cluster_failover_under_load_keeps_every_invariant() -> None:
    failover = _run("cluster_failover")
    # Given a Redis Cluster of three masters, each with a replica, durable writes, runs over three
    # partitions, and the master of the submission stream and of partition 0 killed with SIGKILL during load
    # Then its replica takes over, the nodes go on without exiting or any actor crashing, and every
    # acknowledged run completed once: nothing lost, no result recorded twice, no step re-run, no drift
    assert failover.verdict.ok, failover.verdict.violations
    assert failover.verdict.submitted >= 300 and len(failover.faults) == 1
    assert failover.verdict.statuses == {"completed": failover.verdict.submitted}


def test_dropped_connections_keep_every_invariant() -> None:
    network = _run("network")
    # Given every connection between the nodes and Redis dropped by the proxy during load
    # Then every invariant holds and runs completed again after the drop
    assert network.verdict.ok, network.verdict.violations
    assert network.recovery_s is not None and network.recovery_s != float("inf")


def test_one_node_cut_off_while_the_others_run_keeps_every_invariant() -> None:
    cut = _run("partition_one")
    # Given one node alone behind a proxy that black-holes its Redis traffic past the lease TTL (it
    # goes on running its handlers meanwhile) and later drops its connections, the others unaffected
    # Then the others take over its runs, it records nothing late and starts no step without its
    # lease, it stays up, and every run completed once
    assert cut.verdict.ok, cut.verdict.violations
    assert cut.verdict.submitted >= 240 and len(cut.faults) == 2
    assert cut.verdict.statuses == {"completed": cut.verdict.submitted}
    assert cut.verdict.attempt_outcomes["crashed"] >= 1  # its leases expired and others took them


def test_poison_handlers_do_not_stop_ordinary_runs() -> None:
    poison = _run("poison")
    # Given os._exit, a cancellation-swallowing loop, a loop blocker, a huge and a non-JSON output and a
    # recursion bomb among ordinary runs
    # Then every ordinary run completed, nothing was lost or recorded twice, the indices agree
    # (steps started without the lease are not asserted here: bytes a step handed to its socket just
    # before another handler blocked the loop leave after the stall, see the README's fencing notes;
    # the runs it gave back and the tasks they started are covered by tests/integration/test_watchdog.py)
    _holds(poison, *CORE, "ordinary runs not completed", "index drift (reconcile repaired)")
    assert poison.verdict.statuses["completed"] >= poison.verdict.submitted - 6


def test_poison_runs_all_end() -> None:
    poison = _run("poison")
    # Then each poison run ends in a terminal status too
    _holds(poison, "runs stuck (not terminal after the quiesce wait)")


def test_poison_huge_output_is_refused() -> None:
    poison = _run("poison")
    # Then an output far past any sane size is refused with an error instead of stored
    _holds(poison, "oversized output stored whole")


def test_one_node_an_hour_behind_keeps_every_invariant() -> None:
    skew = _run("clock_skew")
    # Given one node whose wall clock is an hour behind (faketime), with nodes killed meanwhile
    # Then leases still expire on time, the skewed node stays in the node registry, nothing is lost
    assert skew.verdict.ok, skew.verdict.violations


def test_bad_stream_entries_are_rejected_and_the_rest_flows() -> None:
    bad = _run("bad_entries")
    # Given poison stream entries (non-UTF-8 names, 1e308 delays, 23-digit integers ...) among good ones
    # Then each bad entry is rejected with a reason, every good one is created and run, no node exits
    assert bad.verdict.ok, bad.verdict.violations


def test_redis_answering_nothing_past_the_leases_keeps_every_invariant() -> None:
    stall = _run("redis_stall")
    # Given Redis answering nothing for 3x the lease TTL during load, twice: every client paused
    # (CLIENT PAUSE ALL), then the server's loop blocked (DEBUG SLEEP); then blocked past the TTL
    # three times, 0.3 s apart (flapping: each outage begins inside the grace of the last)
    # Then no node exits, every acknowledged run completed once, no completed step ran again, no
    # step started without its lease, no attempt was charged as crashed, and the indices agree
    assert stall.verdict.ok, stall.verdict.violations
    assert stall.verdict.submitted >= 300 and len(stall.faults) == 3
    assert stall.verdict.statuses == {"completed": stall.verdict.submitted}
    assert stall.verdict.attempt_outcomes["crashed"] == 0, stall.verdict.attempt_outcomes
