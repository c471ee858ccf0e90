"""The Baton application: job definitions plus the Python client API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from . import signals
from .admission import publish_job_caps
from .affinity import DEFAULT_PREFER_WAIT_S, sticky_options
from .connection import connect, pool_size, socket_timeout_s
from .controls import Controls
from .creation import CREATE_CHUNK, Creation
from .cron import CronSchedule, ScheduleRegistry
from .errors import ConfigError, RedisUnavailable, SubmissionError
from .jobs import Backoff, JobOptions, JobRegistry
from .keys import Keys, Partition
from .partition_outages import PartitionOutages
from .ranges import shown
from .records import text
from .redis_faults import despite_outages
from .run_access import RunAccess
from .scripts import Scripts
from .settings import Settings
from .shared_limits import (
    SharedLimits,
    check_routing,
    publish_definitions,
)
from .submission import DEFAULT_SOURCE, PlainSpecs, RunSpec, build_spec, json_text
from .tokens import Tokens
from .tracing import current_traceparent
from .webhooks import WebhookProjects
from .workflow import Workflow, WorkflowRun

__all__ = ["Baton", "Submission"]

_OUTCOMES = {1: "created", 0: "existing", 2: "idempotent", 3: "debounced"}

@dataclass(frozen=True)
class Submission:
    """What a submission did: ``created`` a run, found an ``existing`` id, hit an
    ``idempotent`` key, or was ``debounced`` into run ``id``."""

    id: str
    outcome: str

F = TypeVar("F", bound=Callable[..., Any])


class Baton(Controls, RunAccess, Creation):
    """A Baton application: define jobs with ``@app.job``, trigger and inspect runs.

    The same object is used by producers (``await app.trigger(...)``) and by the
    worker daemon (``baton worker --app module:app``), which runs its jobs.
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self.jobs = JobRegistry()
        self.schedules = ScheduleRegistry()
        #: named limits jobs share (pools, rates): define_pool, define_rate_limit
        self.shared_limits = SharedLimits()
        self._redis: Any = None
        self._scripts: Scripts | None = None
        self._remote_jobs: dict[str, JobOptions] = {}
        #: partitions whose Redis Cluster master this process's own calls found down: new runs with
        #: ids Baton draws are created elsewhere meanwhile, and API listings leave them out
        self.outages = PartitionOutages(self, logging.getLogger("baton.client"), "new runs with drawn ids and listings")
        self.configure(settings.with_changes(**overrides) if settings and overrides else (
            settings or Settings.from_env(**overrides)))

    def configure(self, settings: Settings) -> None:
        """Use these settings, and everything derived from them (keys, validated job specs).

        The one place settings are applied: at construction, and by ``baton worker``
        / ``baton api`` once their flags are read (the app module built ``app`` from
        the environment alone). Only before the app talks to Redis.
        """
        if self._redis is not None:
            raise ConfigError("settings can change only before the app connects to Redis")
        self.settings = settings
        self.keys = Keys(settings.prefix, settings.partitions)
        #: the short path of submissions that are just a job and an input
        self.plain_specs = PlainSpecs(settings, self.keys)
        #: which projects have webhooks (their runs' outcomes go to the outbox, see runtime/hooks.py)
        self.webhook_projects = WebhookProjects(self.keys)

    # -- defining jobs -------------------------------------------------------

    def job(
        self,
        name: str | None = None,
        *,
        queue: str = "default",
        max_attempts: int | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        priority: int = 0,
        max_concurrency: int = 0,
        max_concurrency_per_key: int = 0,
        version: str = "",
        rate_limit: tuple[int, float] | None = None,
        rate_limit_per_key: tuple[int, float] | None = None,
        rate_key: str = "concurrency_key",
        accepts_versions: tuple[str, ...] = (),
        ttl: float | None = None,
        cron: str | Sequence[str | CronSchedule] | CronSchedule | None = None,
        node_labels: Mapping[str, str] | None = None,
        prefer_labels: Mapping[str, str] | None = None,
        prefer_wait_s: float = DEFAULT_PREFER_WAIT_S,
        batch_size: int = 1,
        batch_wait_s: float = 0.0,
        batch_key: str = "",
        on_success: str | Callable[..., Any] = "",
        on_failure: str | Callable[..., Any] = "",
        on_dead_letter: str | Callable[..., Any] = "",
        pool: str = "",
        shared_rate: str = "",
        fairness_weight: int = 1,
        max_queued: int = 0,
    ) -> Callable[[F], F]:
        """Register the decorated function as a job.

        The handler is called as ``handler(ctx, input)``; ``async def`` handlers
        run on the event loop, plain ones in a worker thread. ``backoff`` is a
        :class:`Backoff` (default ``Backoff()``: exponential from 1 s to 300 s, jitter 0.2).
        ``rate_limit=(n, window_s)`` caps starts of the job across all nodes;
        ``rate_limit_per_key`` does so per rate key (``rate_key``: the concurrency
        key, ``label:<name>`` or ``input:<field>``). ``version`` pins runs to
        workers serving it (plus ``accepts_versions``); ``ttl`` expires runs not
        started in time; ``cron`` adds schedules (see :class:`CronSchedule`).
        ``node_labels`` / ``prefer_labels`` (``prefer_wait_s``) say which nodes lease its runs
        (runtime/affinity.py). ``batch_size`` >= 2 makes a batch handler, called as
        ``handler(batch, inputs)`` (runtime/batching.py).
        ``on_success``, ``on_failure`` and ``on_dead_letter`` name jobs (or their handler functions) started
        as runs of their own when a run of this job finishes so (see runtime/hooks.py).
        ``pool`` and ``shared_rate`` name limits shared with other jobs (``define_pool``,
        ``define_rate_limit``); ``fairness_weight`` is the default weight of a run's concurrency key in the
        fair rotation.
        ``max_queued`` caps the runs admitted and not yet started (a trigger past it raises QueueFull).
        """
        if backoff is not None and not isinstance(backoff, Backoff):
            # one form only: Backoff("fixed", initial_s=..., max_s=..., jitter=...)
            raise ConfigError(f"backoff must be a Backoff, e.g. Backoff('exponential', initial_s=1), not {backoff!r}")
        policy = backoff or Backoff()
        options = JobOptions(
            queue=queue, max_attempts=max_attempts, timeout_s=timeout, backoff=policy, priority=priority,
            max_concurrency=max_concurrency, max_concurrency_per_key=max_concurrency_per_key, version=version,
            rate_limit=rate_limit, rate_limit_per_key=rate_limit_per_key, rate_key=rate_key,
            accepts_versions=tuple(accepts_versions), ttl_s=ttl, node_labels=dict(node_labels or {}),
            prefer_labels=dict(prefer_labels or {}), prefer_wait_s=prefer_wait_s, batch_size=batch_size,
            batch_wait_s=batch_wait_s, batch_key=batch_key,
            on_success=self._hook_target(on_success),
            on_failure=self._hook_target(on_failure), on_dead_letter=self._hook_target(on_dead_letter),
            pool=pool, shared_rate=shared_rate, fairness_weight=fairness_weight,
            max_queued=max_queued,
        )

        def register(fn: F) -> F:
            job_name = name or fn.__name__
            self.jobs.add(job_name, fn, options)
            for schedule in _schedules(job_name, cron):
                self.schedules.add(schedule)
            return fn

        return register

    def _hook_target(self, target: str | Callable[..., Any]) -> str:
        """A hook's job name: given, or the name a handler function is registered under (its own
        name when it is not registered yet)."""
        if isinstance(target, str):
            return target
        return next((j.name for j in self.jobs if j.handler is target), getattr(target, "__name__", ""))

    # -- connection ----------------------------------------------------------

    @property
    def redis(self) -> Any:
        """The redis.asyncio client (created on first use from settings.redis_url)."""
        if self._redis is None:
            if not self.settings.redis_url:
                raise RedisUnavailable("no redis_url set (BATON_REDIS_URL or REDIS_URL)")
            s = self.settings
            self._redis = connect(s.redis_url, cluster=s.redis_cluster,
                                  max_connections=pool_size(s.concurrency, s.partitions),
                                  socket_timeout=socket_timeout_s(s.redis_timeout_ms, s.durable_timeout_ms))
        return self._redis

    @property
    def scripts(self) -> Scripts:
        """Typed Lua script wrappers bound to this app's client."""
        if self._scripts is None:
            self._scripts = Scripts(self.redis, self.keys, self.settings)
        return self._scripts

    def use_redis(self, client: Any) -> None:
        """Use an existing client (the worker shares one across actors)."""
        self._redis = client
        self._scripts = None

    async def close(self) -> None:
        """Close the Redis connection pool."""
        await self.outages.close()
        await self.webhook_projects.close()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
            self._scripts = None

    async def __aenter__(self) -> Baton:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- job registry --------------------------------------------------------

    def lookup(self, job: str) -> JobOptions | None:
        """Options of a job defined here or registered in Redis by a worker."""
        local = self.jobs.get(job)
        return local.options if local else self._remote_jobs.get(job)

    async def refresh_registry(self) -> None:
        """Reload the jobs workers registered in Redis (for producers without handlers)."""
        raw = await self.redis.hgetall(self.keys.registry)
        remote = {}
        for name, blob in raw.items():
            remote[name.decode() if isinstance(name, bytes) else name] = JobOptions.from_json(blob)
        self._remote_jobs = remote

    def define_pool(self, name: str, size: int) -> None:
        """A concurrency pool jobs share by name (``@app.job(pool=name)``): at most ``size`` of their runs
        execute at once across all nodes. Changeable at runtime (``PUT /v1/limits/{name}``)."""
        self.shared_limits.define_pool(name, size)

    def define_rate_limit(self, name: str, count: int, window_s: float) -> None:
        """A rate limit jobs share by name (``@app.job(shared_rate=name)``): at most ``count`` of their runs
        start per ``window_s`` across all nodes. Changeable at runtime (``PUT /v1/limits/{name}``)."""
        self.shared_limits.define_rate_limit(name, count, window_s)

    async def register_jobs(self) -> None:
        """Publish this app's jobs, their limits and their schedules to Redis: the node-wide records,
        then each partition's limits (a partition whose master is down does not stop the others')."""
        await self.publish_jobs()
        await despite_outages(self.keys.partitions, self.apply_limits_in)

    async def publish_jobs(self) -> None:
        """Publish this app's jobs and schedules to the node-wide records (not the partitions' limits:
        a node starting applies those to each partition when it answers, apply_limits_in)."""
        check_routing(self.keys, list(self.jobs))
        if len(self.schedules):
            await self.redis.hset(self.keys.schedules, mapping={s.name: s.to_json() for s in self.schedules})
        if len(self.jobs):
            await self.redis.hset(self.keys.registry, mapping={j.name: j.options.to_json() for j in self.jobs})

    async def apply_limits_in(self, p: Partition) -> None:
        """Apply this app's limits in partition ``p``: named limits, max_queued caps, job limits."""
        await publish_definitions(self, p)
        jobs = list(self.jobs)
        if not jobs:
            return
        await publish_job_caps(self, jobs, p)
        stored = await self.redis.hmget(p.jobs, [j.name for j in jobs])
        for j, current in zip(jobs, stored, strict=True):
            # unchanged limits (a node restarting) cost nothing more; changed ones go through
            # limits_apply, which moves the job's executing runs into the lease sets they count in
            if text(current or b"") != (j.options.limit_spec or ""):
                await self.scripts.limits_apply(p, j.name, "code", j.options.limit_spec or "")

    # -- triggering ----------------------------------------------------------

    def served_jobs(self) -> list[str]:
        """What this node tells the claim script it runs: "job" or "job@v1|v2"."""
        return [j.name + j.options.served_spec for j in self.jobs]

    async def submit(self, job: str, input: Any = None, **options: Any) -> Submission:
        """Like :meth:`trigger`, but says what happened: created, existing id,
        idempotency hit, or absorbed by a debounced run."""
        [spec] = [await self._spec({"job": job, "input": input, **options})]
        [(run_id, code)] = await self.create_detailed([spec])
        return Submission(run_id, _OUTCOMES.get(code, "created"))

    async def trigger(self, job: str, input: Any = None, **options: Any) -> str:
        """Submit one run; returns its id (an existing run's id on an idempotency hit).

        Options: ``id``, ``queue``, ``priority``, ``delay`` (seconds), ``run_at``
        (datetime, ISO string or epoch ms), ``idempotency_key``, ``idempotency_ttl``,
        ``concurrency_key``, ``labels``, ``tags``, ``metadata``, ``max_attempts``,
        ``timeout``, ``version``, ``node_labels``, ``prefer_labels``, ``prefer_wait`` (runtime/affinity.py).
        """
        # straight to one script call: no tasks, each of which costs the
        # caller loop turns (this path is in every one-at-a-time pickup)
        [(run_id, _code)] = await self.create_detailed([await self._spec({"job": job, "input": input, **options})])
        return run_id

    def workflow(self, name: str) -> Workflow:
        """A new workflow: add tasks with ``wf.task(job, parents=[...])``, run it with :meth:`run_workflow`."""
        return Workflow(self, name)

    async def run_workflow(self, workflow: Workflow, input: Any = None) -> WorkflowRun:
        """Create one run per task of ``workflow`` at once (each after its parents; see runtime/workflow.py)."""
        return await workflow.run(input)

    async def trigger_batch(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Submit many runs in batched Lua calls; ids in input order.

        Large batches go out in chunks, each sent as soon as it is validated, so
        Redis creates one chunk while this process validates the next.
        """
        pending: list[asyncio.Future[list[str]]] = []
        chunk: list[RunSpec] = []
        for item in items:
            chunk.append(await self._spec(item))
            if len(chunk) == CREATE_CHUNK:
                pending.append(asyncio.ensure_future(self.create(chunk)))
                chunk = []
                await _let_io_run()
        if chunk:
            if not pending:  # one chunk: no task needed
                return await self.create(chunk)
            pending.append(asyncio.ensure_future(self.create(chunk)))
        ids: list[str] = []
        for part in await asyncio.gather(*pending):
            ids.extend(part)
        return ids

    async def _spec(
        self, item: Mapping[str, Any], source: str = DEFAULT_SOURCE, extra: Mapping[str, Any] | None = None,
    ) -> RunSpec:
        if not isinstance(item, Mapping):
            raise SubmissionError("bad_item", f"a submission must be a mapping of options, got {shown(item)}")
        job, queue = item.get("job"), item.get("queue")
        unknown_job = isinstance(job, str) and self.lookup(job) is None
        if unknown_job or (isinstance(queue, str) and not self.queue_known(queue)):
            # a job or queue registered by another deployment since we last looked
            await self.refresh_registry()
        # the caller's trace (a span current here: a request handler, a run's step) travels with the run
        traceparent = current_traceparent()
        if extra is None and item.keys() <= _PLAIN_ITEM and isinstance(job, str):
            input_json = json_text("input", item.get("input"))
            plain = self.plain_specs.spec(self.lookup, job, input_json, source, avoid=self.outages.out_now)
            if plain is not None:
                return plain._replace(trace_context=traceparent) if traceparent else plain
        if "sticky" in item:  # a child run's option: labels naming the node its parent runs on
            if source != "child":
                raise SubmissionError("bad_sticky", "sticky is an option of child runs (ctx.trigger)")
            item = sticky_options(item, self.settings.node_id)
        item = dict(item)
        job = item.pop("job", None)
        unknown = sorted(str(k) for k in item if k not in _OPTION_NAMES)
        if unknown:
            raise SubmissionError("unknown_field", f"unknown trigger option(s): {shown(', '.join(unknown), 200)}")
        kwargs = {_OPTION_NAMES[k]: v for k, v in item.items()}
        if traceparent and not kwargs.get("trace_context"):
            kwargs["trace_context"] = traceparent
        return build_spec(self.settings, self.keys, self.lookup, job=job, source=source, extra=extra,
                          queue_known=self.queue_known, avoid=self.outages.out_now, **kwargs)

    def queue_known(self, queue: str) -> bool:
        """Whether runs may be submitted to ``queue``: the queue of a job defined here or
        registered by a worker, or one listed in ``BATON_QUEUES``."""
        if queue in self.settings.queue_list or any(j.options.queue == queue for j in self.jobs):
            return True
        return any(options.queue == queue for options in self._remote_jobs.values())

    # -- messages to runs (runtime/signals.py, runtime/tokens.py) -------------

    async def signal(self, run_id: str, name: str, data: Any = None) -> bool:
        """Send signal ``name`` to one run's ``ctx.wait_for_signal(name)``; True when it was waiting (it
        resumes now), False when the signal was kept for its next wait (see runtime/signals.py)."""
        return await signals.send_signal(self, run_id, name, data)

    async def query(self, run_id: str) -> Any:
        """The state the run's handler last published with ``ctx.set_state`` (None when none)."""
        published = await signals.query_state(self, run_id)
        return None if published is None else published["state"]

    @property
    def tokens(self) -> Tokens:
        """Waitpoint tokens: ``get``, ``list``, ``complete``, ``expire`` (see runtime/tokens.py)."""
        return Tokens(self)


#: Trigger options a caller may give, and build_spec's name for each.
_OPTION_NAMES = {
    "input": "input", "id": "run_id", "queue": "queue", "priority": "priority", "delay": "delay_s",
    "run_at": "run_at", "idempotency_key": "idempotency_key", "idempotency_ttl": "idempotency_ttl_s",
    "concurrency_key": "concurrency_key", "labels": "labels", "tags": "tags", "metadata": "metadata",
    "max_attempts": "max_attempts", "timeout": "timeout_s", "version": "version", "ttl": "ttl_s",
    "debounce": "debounce", "derived_id": "derived_id", "traceparent": "trace_context",
    "node_labels": "node_labels", "prefer_labels": "prefer_labels", "prefer_wait": "prefer_wait_s",
    "fairness_weight": "fairness_weight",
    "depends_on": "depends_on",
}

#: Items of a plain submission (see PlainSpecs).
_PLAIN_ITEM = frozenset({"job", "input"})


async def _let_io_run() -> None:
    """Give the event loop the few turns a request needs (pool checkout, encode,
    write) to be on the wire before the caller goes back to CPU-bound work."""
    for _ in range(6):
        await asyncio.sleep(0)


def _schedules(job: str, cron: str | Sequence[str | CronSchedule] | CronSchedule | None) -> list[CronSchedule]:
    if cron is None:
        return []
    items = [cron] if isinstance(cron, str | CronSchedule) else list(cron)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, CronSchedule):
            out.append(item if item.job else item.for_job(job))
        else:
            out.append(CronSchedule(name=job if i == 0 else f"{job}#{i}", job=job, expression=item))
    return out
