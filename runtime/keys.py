"""Every Redis key, stream and channel name Baton uses, built in one place.

Keys of one queue partition share the hash tag ``{<prefix>:p<N>}`` so each Lua
script touches a single Redis Cluster slot. Node-wide keys (the submission
stream, the rejected stream, node heartbeats, the job registry) share the tag
``{<prefix>}``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

__all__ = ["LEASED_ANCHOR", "LEASED_ANCHOR_SCORE", "LEASED_RANGE", "Keys", "Partition"]

#: A member every partition's leased set holds from its first lease on, with the score +inf: never a
#: run id (runs' ids are far shorter). Longer than Redis's zset-max-listpack-value (64 by default), it
#: keeps the set in its skiplist encoding, where ZADD and ZREM are O(log n). A set of up to 128
#: members is otherwise a listpack, which every ZADD scans and moves: on a node of 100 slots that was
#: 9% of Redis's instructions per drained run (bench.script_instructions, redis-server 7.0).
LEASED_ANCHOR = "leased-set-encoding-anchor:" + "~" * 53
#: the anchor's score: after every lease's expiry
LEASED_ANCHOR_SCORE = "+inf"
#: ZCOUNT / ZRANGEBYSCORE bounds of the leases in a leased set: every score but the anchor's
LEASED_RANGE = ("-inf", f"({LEASED_ANCHOR_SCORE}")


@dataclass(frozen=True)
class Partition:
    """Key names of one queue partition."""

    index: int
    prefix: str  #: e.g. "{baton:p0}:"; every key of the partition starts with it

    @property
    def tag(self) -> str:
        """The partition's hash tag, e.g. "baton:p0": its keys' slot is this string's."""
        return self.prefix[1:self.prefix.index("}")]

    def run(self, run_id: str) -> str:
        """The run record (HASH). A field equal to its default is left out (RECORD_DEFAULTS in
        runtime/submission.py: max_attempts, timeout_ms; also priority 0, the client source, the
        default backoff), as is ready_at while the run is ready since its creation:
        readers take the defaults."""
        return f"{self.prefix}run:{run_id}"

    @property
    def submit_stream(self) -> str:
        """This partition's own submission stream (STREAM): producers may XADD here instead of
        the node-wide one to spread submissions over Cluster masters; a run's default id is
        ``<entry id>.p<N>``."""
        return f"{self.prefix}submit"

    def entry_ref(self, entry_id: str) -> str:
        """How Baton names an entry of this partition's stream (and the run id it defaults to):
        entry ids repeat between streams, so the partition is part of it."""
        return f"{entry_id}.p{self.index}"

    def ready(self, queue: str) -> str:
        """Queued runs of one queue without a concurrency key (ZSET, score = priority then
        ready order); keyed ones are in ``keyed_group`` and ``keyed_ready``."""
        return f"{self.prefix}ready:{queue}"

    @property
    def queues(self) -> str:
        """Names of queues that have had runs in this partition (SET)."""
        return f"{self.prefix}queues"

    def input(self, run_id: str) -> str:
        """A run's input, JSON (STRING; kept apart so the record stays listpack-encoded)."""
        return f"{self.prefix}in:{run_id}"

    def project_index(self, project: str = "default") -> str:
        """Every run of a project by creation time (STREAM; entry id ``<created_at ms>-<seq>``, field
        ``r`` = run id; ~46 bytes a run where a sorted set took ~129). The record locates its entry:
        field ``ps`` holds the seq when it is not 0, ``pi`` the whole id when its time is not created_at
        (the stream's last id was ahead of the clock). A finished run leaves it when its retention
        ends, a capped index deletes it, or it is deleted."""
        return f"{self.prefix}created:{project}"

    def project_runs(self, project: str = "default") -> str:
        """Runs created before the project index became a stream (``project_index``), by creation
        time (ZSET, score = created_at ms): listings still read it and the runs leave it as they
        leave the stream, so it empties as their retention ends; new runs never enter it."""
        return f"{self.prefix}runs:{project}"

    def alias(self, entry_id: str) -> str:
        """The run a deduplicated stream entry resolved to (STRING; run id, expires with the idempotency window)."""
        return f"{self.prefix}alias:{entry_id}"

    def uuid_alias(self, value: str) -> str:
        """The run a UUID the hatchet view derived from a caller-chosen run id stands for (STRING; run id,
        in the UUID's partition, written when the view emits it, expires like finished runs)."""
        return f"{self.prefix}uuid:{value}"

    def steps(self, run_id: str) -> str:
        """Step records of a run (HASH; step name -> JSON StepRecord)."""
        return f"{self.prefix}steps:{run_id}"

    def events(self, run_id: str) -> str:
        """The run's timeline (STREAM; type/data/ts, capped, expires with the run). Most runs never
        have one (their status changes are derived from the record); the first event marks the
        record (`sat_ev`), and only a marked timeline is expired when the run ends; the trim that
        ends the run's retention deletes it in any case."""
        return f"{self.prefix}ev:{run_id}"

    def checkpoints(self, run_id: str) -> str:
        """Checkpoints of a run (STREAM; sequence/source/state/created_at, and at: its place in the handler)."""
        return f"{self.prefix}cp:{run_id}"

    def children(self, run_id: str) -> str:
        """Child runs of a run (SET; run ids; children live in their parent's partition)."""
        return f"{self.prefix}children:{run_id}"

    def dependents(self, run_id: str) -> str:
        """Runs created with ``depends_on`` this run that wait for it (HASH; dependent id -> JSON
        [policy, name]; dependents live in their parents' partition, see includes/deps.lua)."""
        return f"{self.prefix}dents:{run_id}"

    def deps_pending(self, run_id: str) -> str:
        """Parents a dependent run still waits for (SET; run ids)."""
        return f"{self.prefix}deps:{run_id}"

    def parent_outputs(self, run_id: str) -> str:
        """Outputs of a dependent run's completed parents (HASH; parent name or id -> output JSON)."""
        return f"{self.prefix}pout:{run_id}"

    @property
    def max_queued(self) -> str:
        """Admission limits (HASH; "j:<job>" the code's max_queued, "jo:<job>" a runtime override,
        "q:<queue>" a queue's; a positive count of runs admitted and not yet started)."""
        return f"{self.prefix}maxq"

    def admitted(self, scope: str) -> str:
        """Runs admitted under a max_queued and not yet started (SET; run ids); scope "j:<job>" or
        "q:<queue>" (see includes/admission.lua)."""
        return f"{self.prefix}adm:{scope}"

    def waits_on(self, run_id: str) -> str:
        """Unfinished children a waiting run waits for (SET; run ids)."""
        return f"{self.prefix}wait:{run_id}"

    @property
    def waiting(self) -> str:
        """Runs in a durable wait (ZSET, score = wake deadline ms, 1e15 = none)."""
        return f"{self.prefix}waiting"

    def event(self, key: str) -> str:
        """The last event sent with a key (STRING; with a TTL)."""
        return f"{self.prefix}event:{key}"

    def event_waiters(self, key: str) -> str:
        """Runs of this partition waiting for an event key (SET; run ids)."""
        return f"{self.prefix}evw:{key}"

    def event_takers(self, key: str) -> str:
        """Runs of this partition that received the kept event of a key (SET; run ids and an empty member,
        made with the event and expiring with it): each run receives an event once, however many of its
        waits begin while it is kept."""
        return f"{self.prefix}evt:{key}"

    def signals(self, run_id: str) -> str:
        """Signals sent to a run that no wait has taken yet, oldest first (LIST; entries
        ``<name>\\n<JSON data>``, capped, expire with the run; see runtime/signals.py)."""
        return f"{self.prefix}sig:{run_id}"

    def query_state(self, run_id: str) -> str:
        """The state a run's handler published with ctx.set_state (STRING; JSON ``{updated_at, state}``,
        expires with the run)."""
        return f"{self.prefix}qstate:{run_id}"

    def token(self, token_id: str) -> str:
        """A waitpoint token (HASH; run_id, project, status, tags, created_at, expires_at, output ...;
        expires after its timeout and the finished-run TTL; see runtime/tokens.py)."""
        return f"{self.prefix}wpt:{token_id}"

    @property
    def tokens(self) -> str:
        """Waitpoint tokens of this partition by creation time (ZSET, score = created_at ms; entries
        past their token's retention are trimmed as tokens are created)."""
        return f"{self.prefix}wpts"

    @property
    def seq(self) -> str:
        """Counter ordering runs as they become ready, FIFO within a priority (STRING; integer)."""
        return f"{self.prefix}seq"

    @property
    def paused(self) -> str:
        """Paused runs (ZSET, score = time paused); never leased until resumed."""
        return f"{self.prefix}paused"

    def records(self, run_id: str) -> str:
        """Usage, tool-call and structured-output records of a run (STREAM, capped, expires with the run)."""
        return f"{self.prefix}rec:{run_id}"

    def chunks(self, run_id: str) -> str:
        """Chunks a handler streamed with ctx.stream (STREAM, capped, expires with the run)."""
        return f"{self.prefix}chunks:{run_id}"

    @property
    def delayed(self) -> str:
        """Runs waiting for their time (ZSET, score = due ms)."""
        return f"{self.prefix}delayed"

    @property
    def reaper(self) -> str:
        """When a reaper last reached the partition, and the grace after Redis itself was out (HASH;
        seen, grace_until, gap_from; expires a day after the last reap)."""
        return f"{self.prefix}reaper"

    @property
    def renewers(self) -> str:
        """Each node's last renewal here (HASH; node id -> `incarnation|first|at|margin`, Redis ms: the
        node process's renewals began at `first`, and its last ran at `at` and held every lease granted
        to it `margin` before; expires a day after the last, and a process's entry goes once it is
        silent for a day and a lease TTL): the reaper tells a lease its holder never got from one it
        held (leases_reap.lua)."""
        return f"{self.prefix}renewers"

    @property
    def leased(self) -> str:
        """Executing runs (ZSET, score = lease expiry ms by the Redis clock), and LEASED_ANCHOR:
        read the leases in LEASED_RANGE."""
        return f"{self.prefix}leased"

    @property
    def jobs_override(self) -> str:
        """Limits changed at runtime (HASH; job -> limit spec); wins over ``jobs``."""
        return f"{self.prefix}jobs:override"

    @property
    def paused_queues(self) -> str:
        """Queues no node leases from (SET)."""
        return f"{self.prefix}paused_queues"

    def keyed_group(self, queue: str, concurrency_key: str) -> str:
        """Queued runs of one concurrency key of a queue, in claim order (ZSET). The runs
        without a key are the queue's ``ready`` set itself (group_set in includes/ready_sets.lua)."""
        return f"{self.prefix}kready:{queue}|{concurrency_key}"

    def group_turns(self, queue: str) -> str:
        """Counter of a queue's group rotation (STRING; integer): a group that gets queued runs
        again takes the next turn, so ``groups`` serves keys round robin."""
        return f"{self.prefix}grr:{queue}"

    @property
    def lease_sets(self) -> str:
        """Names of the per-job and per-key lease sets in use (SET), so reconcile can visit them."""
        return f"{self.prefix}ccsets"

    def job_rate(self, job: str) -> str:
        """A job's rate limit: the theoretical arrival time of its next run (STRING; ms, GCRA, expires)."""
        return f"{self.prefix}rl:{job}"

    def key_rate(self, job: str, rate_key: str) -> str:
        """A job's per-key rate limit for one key (STRING; ms, GCRA, expires)."""
        return f"{self.prefix}rlk:{job}|{rate_key}"

    def debounce(self, job: str, debounce_key: str) -> str:
        """The run holding a debounce window of a job and key (STRING; run id, expires)."""
        return f"{self.prefix}deb:{job}|{debounce_key}"

    def keyed_ready(self, queue: str) -> str:
        """Queued runs of a queue that have a concurrency key, in claim order (ZSET): with
        ``ready`` (the unkeyed ones) it counts and ages the queue without visiting groups."""
        return f"{self.prefix}kidx:{queue}"

    def groups(self, queue: str) -> str:
        """Concurrency keys of a queue with queued runs, in serving order (ZSET)."""
        return f"{self.prefix}groups:{queue}"

    def waiter(self, node_id: str) -> str:
        """A node waiting for work, with its claim arguments and its handed count when it registered (STRING, JSON,
        expiring)."""
        return f"{self.prefix}waiter:{node_id}"

    def waiters(self, queue: str) -> str:
        """Nodes registered as waiting for a queue's runs (SET; members may have expired)."""
        return f"{self.prefix}waiters:{queue}"

    @property
    def handed(self) -> str:
        """Runs handed to each node by runs_create, in total (HASH; node id -> count)."""
        return f"{self.prefix}handed"

    def handoff(self, node_id: str) -> str:
        """Runs leased to a waiting node, each push a JSON batch with the room its registration has left (LIST, the
        node blocks on it)."""
        return f"{self.prefix}handoff:{node_id}"

    def handoff_taken(self, node_id: str) -> str:
        """When a node last took runs from its hand-off list (STRING, expiring): under durable writes it
        writes this after a pop and waits for the replicas, as that wait covers the runs it took."""
        return f"{self.prefix}taken:{node_id}"

    @property
    def ttl(self) -> str:
        """Runs with a time-to-live (ZSET, score = expires_at ms)."""
        return f"{self.prefix}ttl"

    @property
    def jobs(self) -> str:
        """Limits of jobs that have them (HASH; job -> "max,per_key,rate_n,rate_ms,key_n,key_ms" and, for a job
        sharing named limits, ",pool,shared_rate")."""
        return f"{self.prefix}jobs"

    def status(self, status: str) -> str:
        """Index of runs in a terminal status (ZSET, score = time entered)."""
        return f"{self.prefix}st:{status}"

    def throughput(self, queue: str, hour: int) -> str:
        """Runs of a queue that finished per minute, in one hour (HASH; epoch minute -> count, expires two
        hours after its last new minute; written where a run finishes, read by runtime/queues.py)."""
        return f"{self.prefix}tput:{queue}|{hour}"

    @property
    def outbox(self) -> str:
        """Finished runs to notify about: runs whose job has completion hooks or whose project had webhooks
        when they were created (STREAM; id/status, capped; appended by make_terminal in the script that
        records the outcome, read by the notifier actors' consumer group, see runtime/notify.py)."""
        return f"{self.prefix}outbox"

    def job_leases(self, job: str) -> str:
        """Leased runs of a job with max_concurrency (SET; run ids): its exact concurrency count
        (jobs without that limit keep none; see limits_apply.lua)."""
        return f"{self.prefix}cc:j:{job}"

    def idempotency(self, job: str, key: str) -> str:
        """Idempotency key -> run id (STRING; with a TTL). '|' never occurs in job names."""
        return f"{self.prefix}idem:{job}|{key}"

    def key_leases(self, job: str, concurrency_key: str) -> str:
        """Leased runs of one concurrency key of a job with max_concurrency_per_key (SET; run ids)."""
        return f"{self.prefix}cc:k:{job}|{concurrency_key}"

    @property
    def shared_limits(self) -> str:
        """Named limits the code defined (HASH; name -> "pool_size,rate_n,rate_window_ms", 0 = none), shared by
        the jobs that name them (``pool=``, ``shared_rate=``; see runtime/shared_limits.py)."""
        return f"{self.prefix}limits"

    @property
    def shared_limits_override(self) -> str:
        """Named limits changed at runtime (HASH; name -> "pool_size,rate_n,rate_window_ms"); wins over
        ``shared_limits``."""
        return f"{self.prefix}limits:override"

    def pool_leases(self, pool: str) -> str:
        """Leased runs of every job in a named pool (SET; run ids): the pool's exact occupancy."""
        return f"{self.prefix}cc:p:{pool}"

    def shared_rate(self, name: str) -> str:
        """A named rate limit shared by jobs: the theoretical arrival time of its next run (STRING; ms, GCRA,
        expires)."""
        return f"{self.prefix}rls:{name}"


class Keys:
    """Key names of one Baton deployment (one prefix, N partitions)."""

    def __init__(self, prefix: str = "baton", partitions: int = 1) -> None:
        self.prefix = prefix
        self.partition_count = partitions
        self.partitions = [Partition(i, f"{{{prefix}:p{i}}}:") for i in range(partitions)]
        self._node = f"{{{prefix}}}:"
        #: the hash tag of the node-wide keys (the registry, the node-wide stream ...)
        self.node_tag = prefix

    def partition_for(self, routing_key: str) -> Partition:
        """The partition a routing key (run id, concurrency key ...) maps to."""
        if self.partition_count == 1:
            return self.partitions[0]
        return self.partitions[zlib.crc32(routing_key.encode()) % self.partition_count]

    def partition_of_run(self, run_id: str) -> Partition:
        """The partition holding a run: always a function of its id alone."""
        return self.partition_for(run_id)

    @property
    def submit_stream(self) -> str:
        """The submission stream producers XADD to (STREAM)."""
        return f"{self._node}submit"

    @property
    def rejected_stream(self) -> str:
        """Rejected submissions, each with the reason (STREAM, capped)."""
        return f"{self._node}rejected"

    @property
    def intake_group(self) -> str:
        """Consumer group of the intake actors on the submission stream."""
        return "baton-intake"

    @property
    def outbox_group(self) -> str:
        """Consumer group of the notifier actors on every partition's outbox."""
        return "baton-notify"

    @property
    def webhooks(self) -> str:
        """Registered outgoing webhooks (HASH; webhook id -> JSON: project, url, events, secret)."""
        return f"{self._node}webhooks"

    def webhook_delivery(self, delivery_id: str) -> str:
        """One webhook delivery: its body, status, attempts and last error (HASH; expires a week after it ends)."""
        return f"{self._node}whd:{delivery_id}"

    @property
    def webhook_due(self) -> str:
        """Deliveries to attempt (ZSET, score = when: the next try, or the end of a claimed try's timeout)."""
        return f"{self._node}whdue"

    def webhook_deliveries(self, webhook_id: str) -> str:
        """Deliveries of one webhook by creation time (ZSET; capped, entries of expired ones dropped lazily)."""
        return f"{self._node}whlog:{webhook_id}"

    @property
    def deployment(self) -> str:
        """What every node and producer of a deployment must agree on, as the first node to start
        recorded it (HASH; partitions)."""
        return f"{self._node}deployment"

    @property
    def registry(self) -> str:
        """Registered jobs (HASH; name -> JSON options), written by workers."""
        return f"{self._node}jobs"

    @property
    def nodes(self) -> str:
        """Live nodes (ZSET; node id -> last heartbeat ms)."""
        return f"{self._node}nodes"

    def node(self, node_id: str) -> str:
        """One node's heartbeat record (HASH; with a TTL)."""
        return f"{self._node}node:{node_id}"

    @property
    def schedules(self) -> str:
        """Registered cron schedules (HASH; name -> JSON definition)."""
        return f"{self._node}schedules"

    def schedule_state(self, name: str) -> str:
        """One schedule's state: next_fire_at, last_run_id, paused, counts (HASH)."""
        return f"{self._node}schedule:{name}"

    def session(self, digest: str) -> str:
        """A dashboard sign-in session (HASH project/csrf/key digest, expiring), keyed by the SHA-256 of
        the cookie's session id so that reading Redis never yields a live cookie."""
        return f"{self._node}session:{digest}"

    def drain_request(self, node_id: str) -> str:
        """An operator's request that a node drain and exit (STRING; expires after an hour, taken by the
        node's heartbeat)."""
        return f"{self._node}drain:{node_id}"

    def bulk_action(self, action_id: str) -> str:
        """A background bulk action: its request and progress (HASH; expires a day after it ends)."""
        return f"{self._node}bulk:{action_id}"

    def trigger_batch(self, batch_id: str) -> str:
        """A batch made through Trigger.dev's batch API: its request, then each item's run id or why it made
        none (HASH; meta -> JSON, r<index> -> run id, e<index> -> JSON error; kept as long as runs are)."""
        return f"{self._node}tbatch:{batch_id}"

    def bulk_lease(self, action_id: str) -> str:
        """Which API process runs a bulk action now (STRING; its token, expires unless renewed)."""
        return f"{self._node}bulk:{action_id}:lease"

    @property
    def bulk_actions(self) -> str:
        """Background bulk actions (ZSET, score = start time)."""
        return f"{self._node}bulks"

    @property
    def scheduler_lease(self) -> str:
        """Which node fires schedules (STRING; with a TTL)."""
        return f"{self._node}scheduler"

    @property
    def wake_channel(self) -> str:
        """Pub/sub channel: runs became ready in a partition (payload = its prefix), or a run becomes due there in so
        many ms (payload = "due <ms> <its prefix>": runtime/messages.py, wake_notice)."""
        return f"{self.prefix}:wake"

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel: cancellation requested for an executing run (payload = id)."""
        return f"{self.prefix}:cancel"
