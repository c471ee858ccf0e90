"""Every Prometheus metric of a node, created on one injected registry.

Names follow Prometheus conventions: ``baton_`` prefix, base units in the name
(``_seconds``), ``_total`` for counters, bounded labels only (job_name, queue,
partition, state, status, outcome, reason, stage, actor, command) - never run
ids or tokens. The job label is ``job_name`` because Prometheus itself attaches
``job`` (the scrape job) to every series it scrapes. The README's "Metrics"
table lists every metric (a test keeps the two equal); the dashboards and
alerts in ``grafana/`` depend on these names, so renaming one is a breaking
change (a test compares them with a live ``/metrics``).

Two kinds of metric live here:

- *node* metrics count what this node did (runs it executed, leases it took);
  sum them across nodes;
- *cluster* gauges (``baton_queue_*``, ``baton_partition_runs``,
  ``baton_leases_overdue``, ``baton_nodes_live``, ``baton_intake_*_entries``)
  are read from Redis by the observer of one elected node (the holder of the
  scheduler lease) and exported by it alone; during a hand-over two nodes may
  export them for a moment, so aggregate them with ``max``, not ``sum``.

Beside Baton's own metrics every registry carries the client library's process
(``process_*``), Python (``python_info``, ``python_gc_*``) collectors and
``baton_build_info``. Counters and histograms export no ``_created`` series
(they doubled the series count and nothing here reads them).
"""

from __future__ import annotations

import platform
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from .statuses import FINISHED_BY_OUTCOME, AttemptOutcome

__all__ = ["CLAIM_REASONS", "CLUSTER_GAUGES", "DEDUP_REASONS", "DELIVERY_OUTCOMES", "DURATION_BUCKETS",
           "FINAL_STATUSES", "LAG_BUCKETS", "LEASE_BUCKETS", "LOST_STAGES", "OUTCOMES", "REDIS_BUCKETS", "Metrics",
           "baton_version", "observe_many", "process_metrics"]

#: run statuses counted by baton_runs_finished_total
FINAL_STATUSES = tuple(str(s) for s in FINISHED_BY_OUTCOME)
#: attempt outcomes counted by baton_attempts_total
OUTCOMES = tuple(str(o) for o in AttemptOutcome)

# process-wide: a _created series per counter and histogram child doubles the series for nothing
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated

#: where a lease can be found lost (baton_leases_lost_total's stage label)
LOST_STAGES = ("renew", "finish", "fence", "stall", "outage")
#: why intake took over another consumer's pending entries (baton_intake_entries_claimed_total)
CLAIM_REASONS = ("dead_node", "idle")
#: what an earlier submission held when an entry created nothing (baton_intake_entries_deduplicated_total)
DEDUP_REASONS = ("id", "idempotency_key", "debounced")

# from a millisecond no-op job to multi-hour batch work
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                    300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600)
# a loopback round trip is ~0.1 ms; a slow or failing-over server takes seconds
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                 10)
# time a lease had left when it was renewed (the TTL is 30 s by default)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LEASE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 25, 30, 45, 60, 120, 300)


def baton_version() -> str:
    """The installed package's version ("unknown" when run from a source tree that is not installed)."""
    try:
        return version("baton")
    except PackageNotFoundError:
        return "unknown"


def process_metrics(registry: CollectorRegistry) -> Gauge:
    """Register the process and Python collectors and ``baton_build_info`` on a registry (every Baton
    process's: a worker's and ``baton api``'s); returns the build info gauge."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    build = Gauge("baton_build_info", "Always 1: the Baton version and Python version of this process",
                  ["version", "python_version"], registry=registry)
    build.labels(version=baton_version(), python_version=platform.python_version()).set(1)
    return build


#: attribute names of the cluster-wide gauges of :class:`Metrics` (exported by the elected node only)
CLUSTER_GAUGES = ("queue_depth", "queue_oldest_age", "partition_runs", "leases_overdue", "nodes_live", "intake_lag",
                  "intake_pending", "intake_stream_length", "jobs_unmatched", "outbox_lag")
#: how a webhook delivery attempt ended (baton_webhook_deliveries_total)
DELIVERY_OUTCOMES = ("delivered", "retried", "dead_letter")


class Metrics:
    """The node's metrics. Tests pass a fresh CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.build_info = process_metrics(r)
        self._exporting_cluster = True

        # -- runs (this node) ----------------------------------------------------
        self.runs_started = Counter(
            "baton_runs_started_total", "Attempts started by this node", ["job_name"], registry=r
        )
        self.runs_finished = Counter(
            "baton_runs_finished_total",
            "Runs that reached a final status (completed, failed, canceled, dead_letter) through this node",
            ["job_name", "status"], registry=r,
        )
        self.runs_retried = Counter(
            "baton_runs_retried_total", "Attempts that failed, timed out or crashed and were scheduled for a retry",
            ["job_name"], registry=r,
        )
        self.attempts = Counter(
            "baton_attempts_total",
            "Attempts recorded by this node, by outcome (completed, failed, timed_out, canceled, released, "
            "crashed = reclaimed from a dead node)",
            ["job_name", "outcome"], registry=r,
        )
        self.run_duration = Histogram(
            "baton_run_duration_seconds", "Handler wall time per attempt", ["job_name"],
            buckets=DURATION_BUCKETS, registry=r,
        )
        self.pickup_latency = Histogram(
            "baton_pickup_latency_seconds", "Time from a run becoming ready (queued) to its lease (Redis clock)",
            ["job_name"], buckets=DURATION_BUCKETS, registry=r,
        )

        # -- leases (this node) --------------------------------------------------
        self.leases_acquired = Counter("baton_leases_acquired_total", "Leases taken by this node", registry=r)
        self.leases_handed_off = Counter(
            "baton_leases_handed_off_total",
            "Leases granted to this node by the call that created the run, while it waited (part of acquired)",
            registry=r,
        )
        self.leases_renewed = Counter("baton_leases_renewed_total", "Lease renewals by this node", registry=r)
        self.lease_renewal_failures = Counter(
            "baton_lease_renewal_failures_total",
            "Leases whose renewal call failed with a Redis error (retried at the next interval)", registry=r,
        )
        self.leases_lost = Counter(
            "baton_leases_lost_total",
            "Leases this node lost to fencing: the token no longer held the run at renewal (renew), at completion "
            "(finish), before fenced work: a step, a child trigger, a handler start (fence), after an event-loop "
            "stall (stall), or to a Redis outage that outlasted it (outage)",
            ["stage"], registry=r,
        )
        self.leases_reclaimed = Counter(
            "baton_leases_reclaimed_total", "Expired leases of any node reclaimed by this node's reaper",
            ["queue"], registry=r,
        )
        self.leases_held = Gauge("baton_leases_held", "Leases this node holds now", registry=r)
        self.lease_remaining_min = Gauge(
            "baton_lease_remaining_min_seconds",
            "Least time left on any lease of this node (the lease TTL when it holds none)", registry=r,
        )
        self.lease_remaining_at_renewal = Histogram(
            "baton_lease_remaining_at_renewal_seconds", "Time a lease had left when this node renewed it",
            buckets=LEASE_BUCKETS, registry=r,
        )
        self.lease_ttl = Gauge("baton_lease_ttl_seconds", "Configured lease time-to-live", registry=r)
        self._earliest_lease: float | None = None
        self._lease_ttl_s = 0.0
        self.lease_remaining_min.set_function(self._lease_remaining_min)

        # -- cluster-wide gauges (read from Redis by the observer) ---------------
        self.queue_depth = Gauge(
            "baton_queue_depth", "Runs queued (ready to run) in a queue partition; cluster-wide, from Redis",
            ["queue", "partition"], registry=r,
        )
        self.queue_oldest_age = Gauge(
            "baton_queue_oldest_age_seconds",
            "Age since it became ready of the oldest queued run among the run next in line and the oldest "
            "priority-0 run (exact when a queue uses one priority); cluster-wide, Redis clock",
            ["queue", "partition"], registry=r,
        )
        self.partition_runs = Gauge(
            "baton_partition_runs",
            "Runs per status in a partition (queued, delayed, executing, waiting, completed, failed, canceled, "
            "dead_letter); cluster-wide, from the status indices",
            ["partition", "state"], registry=r,
        )
        self.leases_overdue = Gauge(
            "baton_leases_overdue", "Leases past their expiry (Redis clock) and not reclaimed yet; cluster-wide",
            ["partition"], registry=r,
        )
        self.nodes_live = Gauge(
            "baton_nodes_live", "Nodes with a heartbeat within two lease TTLs; cluster-wide", registry=r,
        )
        self.jobs_unmatched = Gauge(
            "baton_jobs_without_label_match", "Registered jobs whose required node labels no live node offers "
            "(their runs wait); cluster-wide", registry=r,
        )
        self.intake_lag = Gauge(
            "baton_intake_lag_entries", "Submission stream entries not yet delivered to the intake group",
            registry=r,
        )
        self.intake_pending = Gauge(
            "baton_intake_pending_entries", "Submission stream entries delivered but not yet acknowledged",
            registry=r,
        )
        self.intake_stream_length = Gauge(
            "baton_intake_stream_entries", "Entries in the submission stream (trimmed once acknowledged)",
            registry=r,
        )

        self.outbox_lag = Gauge(
            "baton_outbox_lag_entries", "Finished runs in the outboxes whose hooks and webhook deliveries are not "
            "yet made (unread plus read but unacknowledged)", registry=r,
        )

        # -- executor, intake, Redis, actors (this node) -------------------------
        self.slots_total = Gauge("baton_executor_slots", "Handler slots of this node", registry=r)
        self.slots_busy = Gauge("baton_executor_slots_busy", "Handler slots in use", registry=r)
        self.intake_read = Counter("baton_intake_entries_read_total", "Submission stream entries read", registry=r)
        self.intake_rejected = Counter(
            "baton_intake_entries_rejected_total", "Submission entries rejected", ["reason"], registry=r
        )
        self.intake_deduplicated = Counter(
            "baton_intake_entries_deduplicated_total",
            "Submission entries that created nothing because an earlier submission holds their id, idempotency "
            "key or debounce key", ["reason"], registry=r,
        )
        self.intake_claimed = Counter(
            "baton_intake_entries_claimed_total",
            "Pending submission entries taken over from another consumer, by why (dead_node, idle)",
            ["reason"], registry=r,
        )
        self.redis_duration = Histogram(
            "baton_redis_command_duration_seconds",
            "Round-trip time of Redis calls (a Lua script by name, or a pipeline)", ["command"],
            buckets=REDIS_BUCKETS, registry=r,
        )
        self.redis_errors = Counter("baton_redis_errors_total", "Redis errors seen by actors", ["actor"], registry=r)
        self.redis_reconnects = Counter(
            "baton_redis_reconnects_total",
            "Reconnections after a lost Redis connection (the actor restarts with a fresh connection)",
            ["actor"], registry=r,
        )
        self.actor_restarts = Counter("baton_actor_restarts_total", "Actor restarts by the supervisor",
                                      ["actor"], registry=r)
        self.partitions_out = Gauge(
            "baton_partitions_out", "Partitions an actor of this node skips for now because their Redis master "
            "does not answer (Redis Cluster; every partition while one server is down); 0 normally",
            ["actor"], registry=r,
        )
        self.schedules_failing = Gauge(
            "baton_schedules_failing", "Cron schedules that cannot fire (unreadable, no tick to compute), or "
            "whose last tick started no run (its job gone, its options refused, its queue full) until a tick "
            "fires; the others fire on. 0 normally and on nodes not holding the scheduler lease", registry=r,
        )
        self.reconcile_drift = Gauge(
            "baton_reconcile_drift", "Index entries the last reconciliation found out of step with the run "
            "records and repaired (expected 0)", ["index"], registry=r,
        )
        self.reconcile_runs = Counter("baton_reconcile_runs_total", "Reconciliations run by this node", registry=r)
        self.heartbeat_timestamp = Gauge(
            "baton_heartbeat_timestamp_seconds", "Unix time of this node's last successful heartbeat", registry=r,
        )
        self.event_loop_lag = Histogram(
            "baton_event_loop_lag_seconds", "How late the event loop ran a 100 ms timer (blocking code delays it)",
            buckets=LAG_BUCKETS, registry=r,
        )
        self.handlers_abandoned = Counter(
            "baton_handlers_abandoned_total",
            "Handlers that ignored cancellation past the grace; their outcome was recorded without them", registry=r,
        )
        self.redis_outages_found = Counter(
            "baton_redis_outages_found_total",
            "Outages of Redis itself this node's reaper found (no node had reached Redis for longer than a lease "
            "TTL), once each: the grace of one TTL before expired leases are reaped, begun by its call or found "
            "in effect (every node counts an outage it sees)", registry=r,
        )
        self.leases_granted_again = Counter(
            "baton_leases_granted_again_total",
            "Grants of an attempt already running on this node (same lease token), not started twice (expected 0)",
            registry=r,
        )
        self.hook_runs_started = Counter(
            "baton_hook_runs_started_total", "Completion hook runs this node's notifier created (or found made)",
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "baton_webhook_deliveries_total", "Webhook delivery attempts by this node, by outcome", ["outcome"],
            registry=r,
        )
        self.event_loop_stalls = Counter(
            "baton_event_loop_stalls_total", "Times the event loop was blocked for 0.5 s or more", registry=r,
        )

    def export_cluster_gauges(self, exporting: bool) -> None:
        """Add the cluster-wide gauges to the registry, or take them out (and forget their values), so that
        only the elected node exports them (called by the observer, from the event loop)."""
        if exporting == self._exporting_cluster:
            return
        self._exporting_cluster = exporting
        for name in CLUSTER_GAUGES:
            gauge = getattr(self, name)
            if exporting:
                self.registry.register(gauge)
            else:
                self.registry.unregister(gauge)
                if gauge._labelnames:
                    gauge.clear()

    def set_lease_ttl(self, seconds: float) -> None:
        """The configured lease TTL (also what the least-time-left gauge shows with no lease held)."""
        self._lease_ttl_s = seconds
        self.lease_ttl.set(seconds)

    def publish_earliest_lease(self, deadline: float | None) -> None:
        """The leaser's earliest lease deadline (monotonic), or None when it holds none.

        The one value the event loop shares with the metrics server's thread: a
        float replaced whole (atomic under the GIL), read at scrape time by
        ``baton_lease_remaining_min_seconds`` so the gauge counts down between renewals.
        """
        self._earliest_lease = deadline

    def _lease_remaining_min(self) -> float:
        deadline = self._earliest_lease
        if deadline is None:
            return self._lease_ttl_s
        return max(deadline - time.monotonic(), 0.0)

    def observe_redis(self, command: str, seconds: float) -> None:
        """Record one Redis round trip (the Scripts.on_call hook)."""
        self.redis_duration.labels(command=command).observe(seconds)

    def count_released(self, jobs: Iterable[str]) -> None:
        """Attempts given back uncharged outside the reporter (runs no handler started: Scripts.give_back),
        one job name each."""
        for job in jobs:
            self.attempts.labels(job_name=job, outcome="released").inc()

    def init_jobs(self, jobs: Iterable[str]) -> None:
        """Create the per-job series at 0, so that ``rate()`` and ``increase()`` see a job's first event."""
        for job in jobs:
            self.runs_started.labels(job_name=job)
            self.runs_retried.labels(job_name=job)
            for status in FINAL_STATUSES:
                self.runs_finished.labels(job_name=job, status=status)
            for outcome in OUTCOMES:
                self.attempts.labels(job_name=job, outcome=outcome)

    def init_node(self, queues: Iterable[str], actors: Iterable[str]) -> None:
        """Create the node's labelled counters at 0 for every label value known at start (the queues it
        serves, lease-loss stages, its actors, intake reasons).

        A series born at its first increment starts at 1 or more, and ``increase()`` reads its first
        burst as 0: a pod's first mass reclaim or first lost lease would never fire an alert.
        """
        for queue in queues:
            self.leases_reclaimed.labels(queue=queue)
        for stage in LOST_STAGES:
            self.leases_lost.labels(stage=stage)
        for actor in actors:
            self.actor_restarts.labels(actor=actor)
            self.redis_errors.labels(actor=actor)
            self.redis_reconnects.labels(actor=actor)
            self.partitions_out.labels(actor=actor)
        for reason in CLAIM_REASONS:
            self.intake_claimed.labels(reason=reason)
        for reason in DEDUP_REASONS:
            self.intake_deduplicated.labels(reason=reason)
        for outcome in DELIVERY_OUTCOMES:
            self.webhook_deliveries.labels(outcome=outcome)

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: at thousands of runs per second
        labels() is a measurable cost on the run path (label sets are bounded)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def count_status(self, job: str, status: str) -> None:
        """Count the run status an attempt's outcome led to: a retry, or a final status."""
        counter = self.status_counter(job, status)
        if counter is not None:
            counter.inc()

    def status_counter(self, job: str, status: str) -> Any:
        """The counter the run status an attempt's outcome led to adds to (None: not counted)."""
        if status == "delayed":
            return self.child(self.runs_retried, job)
        if status not in ("queued", "waiting", "executing", "paused"):
            return self.child(self.runs_finished, job, status)
        return None


def observe_many(histogram: Any, amounts: Sequence[float]) -> None:
    """``histogram.observe(a)`` for every amount, in one go: an add per bucket they fall in and one to
    the sum. Each observe() takes two locked increments and scans the buckets (~2 us here), which
    the drain path paid twice per run (pickup latency, run duration). It reaches into the client
    library's histogram (its bounds, buckets and sum, as observe() uses them since 0.20); a
    histogram not laid out so is observed one amount at a time.
    """
    if not amounts:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for amount in amounts:
            histogram.observe(amount)
        return
    # observe() counts an amount in the first bucket whose bound is >= it (the last bound is +Inf)
    for index, n in Tally(bisect_left(bounds, amount) for amount in amounts).items():
        buckets[index].inc(n)
    total.inc(sum(amounts))
