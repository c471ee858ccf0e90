"""Every Prometheus metric of a node, created on one injected registry.

Names follow Prometheus conventions: ``baton_`` prefix, base units, ``_total``
for counters, bounded labels only (job, queue, status, reason, actor).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

# from a millisecond no-op job to multi-hour batch work
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                    300, 900, 3600, 4 * 3600)


class Metrics:
    """The node's metrics. Tests pass a fresh CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs_started = Counter("baton_runs_started_total", "Attempts started by this node", ["job"], registry=r)
        self.runs_finished = Counter(
            "baton_runs_finished_total", "Attempts recorded by this node, by resulting run status",
            ["job", "status"], registry=r,
        )
        self.run_duration = Histogram(
            "baton_run_duration_seconds", "Handler wall time per attempt", ["job"],
            buckets=DURATION_BUCKETS, registry=r,
        )
        self.pickup_latency = Histogram(
            "baton_pickup_latency_seconds", "Time from a run becoming ready to its lease (Redis clock)",
            buckets=DURATION_BUCKETS, registry=r,
        )
        self.leases_acquired = Counter("baton_leases_acquired_total", "Leases taken by this node", registry=r)
        self.leases_renewed = Counter("baton_leases_renewed_total", "Lease renewals by this node", registry=r)
        self.leases_lost = Counter(
            "baton_leases_lost_total", "Leases this node lost (renewal or completion fenced off)", registry=r
        )
        self.leases_reclaimed = Counter(
            "baton_leases_reclaimed_total", "Expired leases of any node reclaimed by this node", registry=r
        )
        self.lease_ttl = Gauge("baton_lease_ttl_seconds", "Configured lease time-to-live", registry=r)
        self.slots_total = Gauge("baton_executor_slots", "Handler slots of this node", registry=r)
        self.slots_busy = Gauge("baton_executor_slots_busy", "Handler slots in use", registry=r)
        self.intake_read = Counter("baton_intake_entries_read_total", "Submission stream entries read", registry=r)
        self.intake_rejected = Counter(
            "baton_intake_entries_rejected_total", "Submission entries rejected", ["reason"], registry=r
        )
        self.actor_restarts = Counter("baton_actor_restarts_total", "Actor restarts by the supervisor",
                                      ["actor"], registry=r)
        self.redis_errors = Counter("baton_redis_errors_total", "Redis errors seen by actors", ["actor"], registry=r)
